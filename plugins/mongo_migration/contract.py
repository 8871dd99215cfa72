"""The type contract: which BSON types each PostgreSQL column type takes, and its exact text for COPY.

``PG_TYPES`` is the whole contract in one table: for each column type of a
mapping, the BSON types it can hold without losing anything (the value read
back from PostgreSQL equals the BSON value) and the function that writes one
value as COPY text. A pair that is not in the table could lose something
(a double in ``numeric``, an int64 in ``integer``, a date in ``text``) and is
refused when the mapping is read, with the reason from ``REFUSED``.

A value that its column's type can hold in general but not this one (a date
beyond PostgreSQL's years, a string holding NUL, a Decimal128 with more digits
than ``numeric(p,s)`` allows) raises ``Violation``: the document is set aside
with the reason, never clamped, rounded or nulled.

BSON types are named as MongoDB's ``$type`` names them (``int``, ``long``,
``double``, ``decimal``, ``string``, ``date``, ...), plus ``uuid``: binary of
subtype 4, which ``binData`` then leaves out. ``bytea`` keeps no subtype: it holds
generic binary (subtype 0) and sets another subtype aside, which would read back
as a different value.

The ``document`` column and ``jsonb`` columns hold MongoDB Extended JSON
(relaxed, with int64 kept as ``$numberLong`` and doubles that JSON would change
as ``$numberDouble``), which ``bson.json_util`` reads back as the same BSON.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

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

from mongo_migration.extended_json import Violation, decimal128_text, extended_json

NULL = "\\N"  # COPY text's NULL


def bson_type(value: Any) -> str:
    """The BSON type of a decoded value, by MongoDB's ``$type`` name (``uuid``: binary subtype 4)."""
    kind = type(value)
    if kind is Binary:
        return "uuid" if value.subtype == 4 else f"binData (subtype {value.subtype})"
    if kind is Code:
        return "javascript" if value.scope is None else "javascriptWithScope"
    return _BSON_TYPES.get(kind, kind.__name__)


# Every BSON type, by MongoDB's ``$type`` name, in the contract's order, with the Python types pymongo
# decodes it into: the one registry of BSON types (a new one is a line here and its writers in PG_TYPES).
# A symbol decodes as a string and undefined as null: they cannot be told apart once decoded; a DBRef is
# an object; a binary of subtype 4 is a "uuid" and any other a "binData", and a javascript with a scope a
# "javascriptWithScope" (told apart by ``bson_type``).
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "double": (float,),
    "string": (str,),
    "object": (dict, DBRef),
    "array": (list,),
    "binData": (bytes, Binary),  # generic binary decodes as bytes, other subtypes but 4 as Binary
    "uuid": (Binary,),
    "objectId": (ObjectId,),
    "bool": (bool,),
    "date": (dt.datetime, DatetimeMS),
    "regex": (Regex,),
    "javascript": (Code,),
    "javascriptWithScope": (Code,),
    "int": (int,),
    "timestamp": (Timestamp,),
    "long": (Int64,),
    "decimal": (Decimal128,),
    "minKey": (MinKey,),
    "maxKey": (MaxKey,),
}


BSON_TYPES = tuple(PYTHON_TYPES)


# A decoded value's type → its BSON type, where the type alone says it (null is no column's type: a NULL).
_BSON_TYPES = {
    type(None): "null",
    **{
        python: name
        for name, pythons in PYTHON_TYPES.items()
        for python in pythons
        if python not in (Binary, Code)
    },
}


# --- one writer per target type: a decoded BSON value → COPY text -------------------------------------

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def text(value: str) -> str:
    """A string as COPY text, escaped only when it holds a special character; NUL is a violation."""
    if "\x00" in value:
        raise Violation("holds the NUL character, which PostgreSQL text cannot store")
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def object_id_text(value: ObjectId) -> str:
    return str(value)


def integer(value: int) -> str:
    return str(int(value))


def double(value: float | int) -> str:
    """``repr`` is the shortest text that reads back as the same double; PostgreSQL keeps -0."""
    if type(value) is int:
        return str(value)
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def decimal(value: Decimal128 | int) -> str:
    """Every digit of a Decimal128 (numeric holds them all), NaN and the infinities; -0 becomes 0."""
    if type(value) is not Decimal128:
        return str(int(value))
    return decimal128_text(value)  # "1.10E-100", "Infinity": PostgreSQL reads both


def bounded_decimal(precision: int, scale: int) -> Callable[[Decimal128 | int], str]:
    """The writer for ``numeric(precision, scale)``, which would round silently: a value it would
    change is a violation. Decided on the digits and the exponent alone (no arithmetic, which
    Python's Decimal would round to its context's 28 digits)."""

    def write(value: Decimal128 | int) -> str:
        text = decimal128_text(value) if type(value) is Decimal128 else str(int(value))
        if text == "NaN":
            return text
        if not _fits(text, precision, scale):
            raise Violation(f"{text} does not fit numeric({precision},{scale}) without rounding")
        return text

    return write


def _fits(text: str, precision: int, scale: int) -> bool:
    """Whether a number's text fits ``numeric(precision, scale)`` exactly."""
    if "Infinity" in text:
        return False
    _, digits, exponent = Decimal(text).as_tuple()  # exact: constructing a Decimal never rounds
    coefficient = "".join(map(str, digits)).lstrip("0")
    if not coefficient:
        return True  # zero fits any numeric(p,s)
    significant = coefficient.rstrip("0")
    exponent += len(coefficient) - len(significant)  # 1.50 needs one digit after the point
    after_point = max(-exponent, 0)
    before_point = max(len(significant) + exponent, 0)
    return after_point <= scale and before_point <= precision - scale


def boolean(value: bool) -> str:
    return "t" if value else "f"


# PostgreSQL's timestamptz range, in milliseconds since 1970: 4714-11-24 BC to 294276-12-31 AD.
FIRST_TIMESTAMP_MS = -210_866_803_200_000


END_TIMESTAMP_MS = 9_224_318_016_000_000  # 294277-01-01, excluded


_MS_PER_DAY = 86_400_000


def timestamp(value: dt.datetime | DatetimeMS) -> str:
    """A BSON date as ``timestamptz`` text, in UTC, milliseconds exact.

    Dates beyond Python's years 1-9999 arrive as milliseconds (``DatetimeMS``) and
    are written from them; beyond PostgreSQL's range they are a violation, never clamped.
    """
    if type(value) is dt.datetime:  # naive, in UTC
        return f"{value.isoformat()}+00"
    millis = int(value)
    if not FIRST_TIMESTAMP_MS <= millis < END_TIMESTAMP_MS:
        raise Violation(f"the date {millis} ms from 1970 is outside PostgreSQL's timestamptz range")
    days, rest = divmod(millis, _MS_PER_DAY)
    year, month, day = _civil_date(days)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    era = " BC" if year <= 0 else ""  # there is no year 0: 1 BC is year 0 of the proleptic calendar
    when = f"{abs(year - 1) if year <= 0 else year:04d}-{month:02d}-{day:02d}"
    return f"{when} {hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}+00{era}"


def _civil_date(days: int) -> tuple[int, int, int]:
    """The proleptic Gregorian (year, month, day) of a day number from 1970-01-01, any year
    (Howard Hinnant's ``civil_from_days``); PostgreSQL uses the same calendar."""
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    return year_of_era + era * 400 + (month <= 2), month, day


def bytea(value: bytes | Binary | ObjectId) -> str:
    """Bytes in ``bytea``'s hex form, its backslash escaped for COPY."""
    if type(value) is Binary:
        raise Violation(
            f"is binary of subtype {value.subtype}: bytea keeps no subtype, it would read back as "
            "generic binary"
        )
    data = value.binary if type(value) is ObjectId else value
    return "\\\\x" + data.hex()


def uuid_text(value: Binary) -> str:
    if value.subtype != 4:
        raise Violation(f"is binary of subtype {value.subtype}, not a UUID (subtype 4)")
    if len(value) != 16:
        raise Violation(f"is a UUID of {len(value)} bytes, not 16")
    return str(uuid.UUID(bytes=bytes(value)))


def timestamp_bigint(value: Timestamp) -> str:
    """A BSON Timestamp as one bigint, its seconds in the high 32 bits and its increment in the low."""
    if value.time >= 2**31:
        raise Violation(f"the Timestamp's seconds ({value.time}) do not fit the high half of a bigint")
    return str(value.time << 32 | value.inc)


def jsonb(value: Any) -> str:
    """Any BSON value as Extended JSON for a ``jsonb`` column, escaped for COPY."""
    written = extended_json(value)
    if "\\" in written:  # JSON escapes control characters itself; only its backslashes need escaping
        written = written.replace("\\", "\\\\")
    return written


# --- the contract -------------------------------------------------------------------------------------

# For each column type: the BSON types it holds exactly, each with its writer, and the ones a
# column of that type accepts when its mapping names none.
PG_TYPES: dict[str, dict[str, Callable[[Any], str]]] = {
    "integer": {"int": integer},
    "bigint": {"int": integer, "long": integer, "timestamp": timestamp_bigint},
    "numeric": {"int": decimal, "long": decimal, "decimal": decimal},
    "double precision": {"double": double, "int": double},
    "boolean": {"bool": boolean},
    "timestamptz": {"date": timestamp},
    "text": {"string": text, "objectId": object_id_text},
    "bytea": {"binData": bytea, "objectId": bytea},
    "uuid": {"uuid": uuid_text},
    "jsonb": dict.fromkeys(BSON_TYPES, jsonb),
}


DEFAULT_ACCEPTS: dict[str, tuple[str, ...]] = {
    "integer": ("int",),
    "bigint": ("int", "long"),
    "numeric": ("int", "long", "decimal"),
    "double precision": ("double", "int"),
    "boolean": ("bool",),
    "timestamptz": ("date",),
    "text": ("string",),
    "bytea": ("binData",),
    "uuid": ("uuid",),
    "jsonb": ("object", "array"),
}


# Other spellings PostgreSQL itself accepts for the same types.
PG_TYPE_ALIASES = {
    "int": "integer",
    "int4": "integer",
    "int8": "bigint",
    "float8": "double precision",
    "bool": "boolean",
    "timestamp with time zone": "timestamptz",
}


NUMERIC_WITH_SCALE = re.compile(r"numeric\(\s*(\d+)\s*,\s*(\d+)\s*\)")


# Why the pairs people most often ask for are refused.
REFUSED = {
    ("double", "numeric"): "numeric would hold the double's decimal expansion, not the double (and not -0): "
    "keep it double precision",
    ("long", "integer"): "an int64 may not fit integer: use bigint or numeric",
    ("long", "double precision"): "a double cannot hold every int64 (beyond 2**53): use bigint or numeric",
    ("decimal", "double precision"): "a double rounds a Decimal128: use numeric",
    ("double", "integer"): "a double may have a fraction: use double precision",
    ("double", "bigint"): "a double may have a fraction: use double precision",
    ("date", "text"): "use timestamptz: text would not read back as a date",
    ("timestamp", "timestamptz"): "a BSON Timestamp is an oplog position, not a date: use bigint or jsonb",
    ("uuid", "bytea"): "bytea keeps no binary subtype: use uuid",
    ("binData", "uuid"): "generic binary is not a UUID: use bytea",
}


def column_type(declared: str) -> str:
    """The contract's name of a declared PostgreSQL type, or ValueError naming the types allowed."""
    name = " ".join(declared.lower().split())
    name = PG_TYPE_ALIASES.get(name, name)
    if name in PG_TYPES:
        return name
    if match := NUMERIC_WITH_SCALE.fullmatch(name):
        precision, scale = int(match[1]), int(match[2])
        if not 1 <= precision <= 1000 or scale > precision:
            raise ValueError(f"{declared!r}: numeric(p,s) needs 1 <= p <= 1000 and s <= p")
        return f"numeric({precision},{scale})"
    raise ValueError(
        f"{declared!r} is not a type of the contract; use one of: {', '.join(PG_TYPES)}, numeric(p,s)"
    )


def writers(pg_type: str) -> dict[str, Callable[[Any], str]]:
    """The BSON types a column type holds exactly, each with its writer."""
    if match := NUMERIC_WITH_SCALE.fullmatch(pg_type):
        write = bounded_decimal(int(match[1]), int(match[2]))
        return dict.fromkeys(PG_TYPES["numeric"], write)
    return PG_TYPES[pg_type]


def base_type(pg_type: str) -> str:
    """The contract's type a declared type is a case of: ``numeric(12,2)`` is a ``numeric``."""
    return "numeric" if pg_type.startswith("numeric") else pg_type


def refusal(bson_name: str, pg_type: str) -> str | None:
    """Why a column of ``pg_type`` cannot accept ``bson_name``; None when it can."""
    if bson_name not in BSON_TYPES:
        return f"{bson_name!r} is not a BSON type name; use one of: {', '.join(BSON_TYPES)}"
    holds = writers(pg_type)
    if bson_name in holds:
        return None
    reason = REFUSED.get((bson_name, base_type(pg_type)), "it could not be read back as the same value")
    declared = [name for name in COERCIONS if not coercion_refusal(bson_name, name, pg_type)]
    offer = f"; or declare coerce: {{{bson_name}: {declared[0]}}}" if declared else ""
    return f"{pg_type} cannot hold {bson_name} exactly ({reason}); {pg_type} holds: {', '.join(holds)}{offer}"


# --- declared coercions ----------------------------------------------------------------------------------
#
# A value of a BSON type its column cannot hold exactly enters only by a conversion the mapping declares
# for that type (``coerce: {double: double_rounded}``), from this fixed set. Each is exact by its own
# definition and a violation where it cannot be; the document column keeps the original.

_EXACT = Context(prec=2400, rounding=ROUND_HALF_EVEN, Emax=999_999, Emin=-999_999)  # > 309 + 1000 digits


# re.ASCII: \d would match other scripts' digits too, which Decimal reads
_DECIMAL_STRING = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,6})?", re.ASCII)


_ISO_8601 = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?(?:Z|[+-]\d\d(?::?\d\d)?)", re.ASCII
)


# PostgreSQL's numeric: at most 131072 digits before the point and 16383 after.
_NUMERIC_BEFORE_POINT, _NUMERIC_AFTER_POINT = 131072, 16383


_LARGEST_OFFSET = dt.timedelta(hours=16)  # PostgreSQL refuses a time zone offset of 16 hours or more


def double_rounded(precision: int, scale: int) -> Callable[[float], str]:
    """A double in ``numeric(precision, scale)``: its exact binary value rounded half-even to ``scale``
    digits after the point (0.1 is 0.1000000000000000055511151231257827…, so 0.10 at scale 2); NaN stays
    NaN; an infinity, or a value with more digits before the point than the type has, is a violation."""
    quantum = Decimal(1).scaleb(-scale)

    def write(value: float) -> str:
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            raise Violation(f"the double {value} has no value in numeric({precision},{scale})")
        rounded = _EXACT.quantize(Decimal(value), quantum)  # Decimal(float) is exact
        text = f"{abs(rounded) if rounded.is_zero() else rounded:f}"  # numeric has no -0
        if not _fits(text, precision, scale):
            raise Violation(
                f"the double {value!r} does not fit numeric({precision},{scale}) once rounded to "
                f"{scale} places"
            )
        return text

    return write


def decimal_string(pg_type: str) -> Callable[[str], str]:
    """A string that is a decimal number (``12.50``, ``-1e3``: no spaces, no thousands separators) in a
    numeric column, exactly: a ``numeric(p,s)`` it does not fit without rounding is a violation."""
    match = NUMERIC_WITH_SCALE.fullmatch(pg_type)

    def write(value: str) -> str:
        if not _DECIMAL_STRING.fullmatch(value):
            raise Violation(f"the string {value[:40]!r} is not a decimal number (coerce: decimal_string)")
        _, digits, exponent = Decimal(value).as_tuple()
        if -exponent > _NUMERIC_AFTER_POINT or len(digits) + exponent > _NUMERIC_BEFORE_POINT:
            raise Violation(f"the string {value[:40]!r} is beyond PostgreSQL's numeric range")
        if match and not _fits(value, int(match[1]), int(match[2])):
            raise Violation(f"the string {value[:40]!r} does not fit {pg_type} without rounding")
        return value

    return write


def iso8601(value: str) -> str:
    """A string that is an ISO 8601 date and time with its offset (``2024-05-01T10:30:00.25+02:00``,
    ``...Z``) as timestamptz; one without an offset names no instant and is a violation, as are more
    than microseconds (PostgreSQL's precision) and dates that do not exist."""
    if not _ISO_8601.fullmatch(value):
        raise Violation(
            f"the string {value[:40]!r} is not an ISO 8601 date and time with an offset (Z or +hh:mm) "
            "(coerce: iso8601)"
        )
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise Violation(f"the string {value[:40]!r} is not a date and time: {error}") from None
    if abs(moment.utcoffset()) >= _LARGEST_OFFSET:
        raise Violation(f"the string {value[:40]!r} has an offset PostgreSQL does not take (beyond ±15:59)")
    return moment.isoformat()


# name: (the BSON types it takes, the column types it writes, its writer for a column type)
COERCIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Callable[[str], Callable[[Any], str]]]] = {
    "double_rounded": (("double",), ("numeric",), lambda pg_type: double_rounded(*_precision_scale(pg_type))),
    "decimal_string": (("string",), ("numeric",), decimal_string),
    "iso8601": (("string",), ("timestamptz",), lambda pg_type: iso8601),
    "digits": (("int", "long"), ("text",), lambda pg_type: integer),  # the integer's decimal digits
}


def _precision_scale(pg_type: str) -> tuple[int, int]:
    match = NUMERIC_WITH_SCALE.fullmatch(pg_type)
    return int(match[1]), int(match[2])


def coercion_refusal(bson_name: str, coercion: str, pg_type: str) -> str | None:
    """Why a column of ``pg_type`` cannot take ``bson_name`` by ``coercion``; None when it can."""
    if coercion not in COERCIONS:
        return f"{coercion!r} is not a coercion; coercions: {', '.join(COERCIONS)}"
    takes, writes, _ = COERCIONS[coercion]
    if bson_name not in takes:
        return f"{coercion} converts {', '.join(takes)}, not {bson_name}"
    if base_type(pg_type) not in writes:
        return f"{coercion} writes {', '.join(writes)}, not {pg_type}"
    if coercion == "double_rounded" and not NUMERIC_WITH_SCALE.fullmatch(pg_type):
        return "double_rounded needs numeric(p,s): the scale s is what it rounds to"
    if bson_name in writers(pg_type):
        return f"{pg_type} holds {bson_name} exactly: list it in accepts"
    return None


def coercion_writer(coercion: str, pg_type: str) -> Callable[[Any], str]:
    return COERCIONS[coercion][2](pg_type)
