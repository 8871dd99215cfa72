"""Turning a MongoDB document into a row of the target table.

A row is the document's ``_id`` key, the typed user columns, and the whole
document as MongoDB Extended JSON (relaxed mode, with 64-bit integers kept in
their canonical ``$numberLong`` form so they come back as int64). A typed
column whose field is missing or of another type is NULL; the value is still
in the ``document`` column.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from typing import Any

import orjson
from bson import json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId

# How pages are read: timezone-aware UTC datetimes, and dates outside Python's
# range (before year 1 or after 9999) as DatetimeMS instead of an error.
CODEC_OPTIONS = CodecOptions(
    tz_aware=True,
    tzinfo=dt.UTC,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)

COLUMNS = ("_id", "username", "email", "age", "created_at", "document")

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def id_key(value: Any) -> str:
    """The target's primary key for an ``_id``: an ObjectId's hex, else canonical Extended JSON.

    Both keep the order of ObjectIds (fixed-length lowercase hex), and the two
    forms never collide (canonical JSON never looks like 24 hex digits).
    """
    if type(value) is ObjectId:
        return str(value)
    return json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS)


def to_row(document: dict) -> tuple:
    """One COPY row, in the order of ``COLUMNS``."""
    age = document.get("age")
    if type(age) not in (int, Int64) or not _INT32_MIN <= age <= _INT32_MAX:
        age = None
    created_at = document.get("created_at")
    return (
        id_key(document["_id"]),
        _text(document.get("username")),
        _text(document.get("email")),
        age,
        created_at if isinstance(created_at, dt.datetime) else None,
        to_extended_json(document),
    )


def to_extended_json(document: dict) -> str:
    return orjson.dumps(document, default=_extended_json_value, option=_JSON_OPTIONS).decode()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _extended_json_value(value: Any) -> Any:
    """orjson calls this for each value it cannot write as plain JSON."""
    kind = type(value)
    if kind is ObjectId:
        return {"$oid": str(value)}
    if kind is dt.datetime:
        if 1970 <= value.year <= 9999:
            return {"$date": f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"}
        millis = calendar.timegm(value.utctimetuple()) * 1000 + value.microsecond // 1000
        return {"$date": {"$numberLong": str(millis)}}
    if kind is DatetimeMS:
        return {"$date": {"$numberLong": str(int(value))}}
    if kind is Int64:
        return {"$numberLong": str(int(value))}
    if kind is Decimal128:
        return {"$numberDecimal": str(value)}
    # The rarer BSON types (binary, regex, code, timestamp, min/max key, DBRef)
    # take pymongo's own relaxed Extended JSON.
    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))
