"""Extended JSON, exact: the ``document`` column and ``jsonb`` columns (``extended_json``), and the spelling
of a Decimal128 from its bits, which both the JSON and a numeric column use. A value that cannot be
written faithfully raises ``Violation``, defined here and raised by the contract's writers too
(``contract.py``)."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import math
import re
from typing import Any

import orjson
from bson import json_util
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp


class Violation(ValueError):
    """A value its column cannot hold exactly; the message is the reason."""


_DECIMAL_SIGN = 1 << 127
_DECIMAL_SPECIAL = 0x1F << 122  # the combination field 11111: NaN, 11110: an infinity
_DECIMAL_INFINITY = 0x1E << 122
_DECIMAL_LARGE_FORM = 0x3 << 125  # the combination field 11: a coefficient beyond 34 digits, read as 0
_DECIMAL_BIAS = 6176
_DECIMAL_MOST = 10**34 - 1


def decimal128_text(value: Decimal128) -> str:
    """A Decimal128 as ``str()`` spells it (IEEE 754's to-scientific-string; every NaN is "NaN"), from
    its 128 bits: ``str()`` goes through Python's Decimal and costs four times as much."""
    bits = int.from_bytes(value.bid, "little")
    if bits & _DECIMAL_SPECIAL == _DECIMAL_SPECIAL:  # MongoDB takes every NaN, signed or signalling, for one
        return "NaN"
    sign = "-" if bits & _DECIMAL_SIGN else ""
    if bits & _DECIMAL_SPECIAL == _DECIMAL_INFINITY:
        return f"{sign}Infinity"
    if bits & _DECIMAL_LARGE_FORM == _DECIMAL_LARGE_FORM:
        exponent, coefficient = ((bits >> 111) & 0x3FFF) - _DECIMAL_BIAS, 0
    else:
        exponent, coefficient = ((bits >> 113) & 0x3FFF) - _DECIMAL_BIAS, bits & ((1 << 113) - 1)
        coefficient = coefficient if coefficient <= _DECIMAL_MOST else 0
    digits = str(coefficient)
    adjusted = exponent + len(digits) - 1
    if exponent <= 0 and adjusted >= -6:  # plain notation
        if exponent == 0:
            return sign + digits
        point = len(digits) + exponent
        if point > 0:
            return f"{sign}{digits[:point]}.{digits[point:]}"
        return f"{sign}0.{'0' * -point}{digits}"
    mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{sign}{mantissa}E{adjusted:+d}"


# --- Extended JSON: the document column and jsonb columns ----------------------------------------------

_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


_EXACT_DOUBLES = 2.0**53  # from here on, JSON numbers read back as integers


_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # an escaped NUL, not an escaped backslash before "u0000"


def extended_json(value: Any) -> str:
    """A BSON value (a whole document too) as relaxed Extended JSON that reads back as the same BSON.

    A violation where it cannot: the NUL character (jsonb cannot store it), a
    field name starting with ``$`` (it would read back as an Extended JSON type).
    """
    if _needs_care(value):
        value = _with_exact_doubles(value)
    try:
        written = orjson.dumps(value, default=_extended_json_value, option=_JSON_OPTIONS).decode()
    except orjson.JSONEncodeError as error:
        raise Violation(f"cannot be written as JSON: {error}") from None
    if "\\u0000" in written and _NUL.search(written):
        raise Violation("holds the NUL character (\\u0000), which PostgreSQL text and jsonb cannot store")
    return written


def _needs_care(value: Any) -> bool:
    """Whether a value holds a double plain JSON would change, or a field name starting with ``$``.

    One walk in Python (about 1 µs a user document) finds the few that do; values that can hold
    neither are passed over without a call.
    """
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if key[:1] == "$" or (type(item) not in _PLAIN and _needs_care(item)):
                return True
        return False
    if kind is list:
        for item in value:  # noqa: SIM110 (a loop, not any(): a generator costs more per document)
            if type(item) not in _PLAIN and _needs_care(item):
                return True
        return False
    if kind is float:
        return _inexact_in_json(value)
    if kind is Code or kind is DBRef:
        return _needs_care(_embedded(value))
    return False


# Values that hold no double and no field name: what the walk passes over.
_PLAIN = frozenset(
    {str, int, bool, type(None), Int64, Decimal128, ObjectId, dt.datetime, DatetimeMS, bytes, Binary}
    | {Timestamp, Regex, MinKey, MaxKey}
)


def _with_exact_doubles(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        for key in value:
            _check_field_name(key)
        return {key: _with_exact_doubles(item) for key, item in value.items()}
    if kind is list:
        return [_with_exact_doubles(item) for item in value]
    if kind is float and _inexact_in_json(value):
        return _ExactDouble(value)
    if kind is Code or kind is DBRef:  # written in canonical Extended JSON, which keeps their numbers exact
        _refuse_dollar_names(_embedded(value))
    return value


def _embedded(value: Code | DBRef) -> Any:
    """The values a code (its scope) or a DBRef (its ``$id`` and extra fields) carries inside it."""
    if type(value) is Code:
        return value.scope
    extra = {key: item for key, item in value.as_doc().items() if key not in ("$ref", "$id", "$db")}
    return [value.id, extra]


def _refuse_dollar_names(value: Any) -> None:
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            _check_field_name(key)
            _refuse_dollar_names(item)
    elif kind is list:
        for item in value:
            _refuse_dollar_names(item)
    elif kind is Code or kind is DBRef:
        _refuse_dollar_names(_embedded(value))


def _check_field_name(key: str) -> None:
    if key[:1] == "$":
        raise Violation(
            f"has the field name {key!r}: a name starting with $ reads back as an Extended JSON type"
        )


def _inexact_in_json(value: float) -> bool:
    """NaN, the infinities, -0.0 (jsonb drops its sign) and 2**53 or more (which read back as integers)."""
    return not -_EXACT_DOUBLES < value < _EXACT_DOUBLES or (value == 0.0 and math.copysign(1.0, value) < 0)


class _ExactDouble:
    """A double that Extended JSON must spell out (``orjson`` writes NaN as null, 1e20 as an integer)."""

    __slots__ = ("value",)

    def __init__(self, value: float):
        self.value = value


def _extended_json_value(value: Any) -> Any:
    """orjson calls this for each value it cannot write as plain JSON."""
    kind = type(value)
    if kind is ObjectId:
        return {"$oid": str(value)}
    if kind is dt.datetime:  # naive, in UTC
        if value.year >= 1970:
            return {"$date": value.isoformat(timespec="milliseconds") + "Z"}
        millis = calendar.timegm(value.timetuple()) * 1000 + value.microsecond // 1000
        return {"$date": {"$numberLong": str(millis)}}
    if kind is DatetimeMS:
        return {"$date": {"$numberLong": str(int(value))}}
    if kind is Int64:
        return {"$numberLong": str(int(value))}
    if kind is Decimal128:
        return {"$numberDecimal": decimal128_text(value)}
    if kind is _ExactDouble:
        return json.loads(json_util.dumps(value.value, json_options=json_util.CANONICAL_JSON_OPTIONS))
    # The rarer BSON types (binary, regex, code, timestamp, min/max key, DBRef)
    # take pymongo's own canonical Extended JSON, which keeps the type of every
    # number inside them (a code's scope, a DBRef's $id) too.
    return json.loads(json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS))
