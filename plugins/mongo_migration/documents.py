"""Turning MongoDB documents into rows of the target table, as COPY text.

A row is the document's ``_id`` key, the typed user columns, and the whole
document as MongoDB Extended JSON (relaxed mode, with 64-bit integers kept in
their canonical ``$numberLong`` form so they come back as int64). A typed
column whose field is missing or of another type is NULL; the value is still
in the ``document`` column.

This is the hot path of a migration: a page arrives as raw BSON batches and
leaves as COPY text, with as little Python per document as the profile allowed
(see README, "Performance").
"""

from __future__ import annotations

import calendar
import datetime as dt
import gc
import json
from typing import Any

import bson
import orjson
from bson import json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId

# Naive datetimes, which are UTC (decoding them timezone-aware costs a third
# more), and dates beyond Python's years 1-9999 as DatetimeMS, not an error.
CODEC_OPTIONS = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)

COLUMNS = ("_id", "username", "email", "age", "created_at", "document", "page")

NULL = "\\N"
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_rows(raw_batch: bytes, page: int) -> tuple[bytes, int]:
    """A batch of raw BSON documents of ``page`` as COPY text rows, and how many documents it held.

    The cyclic garbage collector is paused meanwhile: decoding creates tens of
    thousands of containers, none in a cycle, and in a task process collecting
    them would walk Airflow's whole heap again and again (a third of the time).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        documents = bson.decode_all(raw_batch, CODEC_OPTIONS)
        end_of_row = f"\t{page}\n"
        return "".join([copy_row(document) + end_of_row for document in documents]).encode(), len(documents)
    finally:
        if collecting:
            gc.enable()


def copy_row(document: dict) -> str:
    """One document as COPY text: its values in the order of ``COLUMNS``, but for the page."""
    age = document.get("age")
    created_at = document.get("created_at")
    extended_json = to_extended_json(document)
    if "\\" in extended_json:  # JSON escapes control characters itself; only its backslashes need escaping
        extended_json = extended_json.replace("\\", "\\\\")
    return "\t".join(
        (
            _text(id_key(document["_id"])),
            _text(document.get("username")),
            _text(document.get("email")),
            str(age) if type(age) in (int, Int64) and _INT32_MIN <= age <= _INT32_MAX else NULL,
            f"{created_at.isoformat()}+00" if type(created_at) is dt.datetime else NULL,
            extended_json,
        )
    )


def id_key(value: Any) -> str:
    """The target's primary key for an ``_id``: an ObjectId's hex, else canonical Extended JSON.

    Both keep the order of ObjectIds (fixed-length lowercase hex), and the two
    forms never collide (canonical JSON never looks like 24 hex digits).
    """
    if type(value) is ObjectId:
        return str(value)
    return json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS)


def to_extended_json(document: dict) -> str:
    return orjson.dumps(document, default=_extended_json_value, option=_JSON_OPTIONS).decode()


def _text(value: Any) -> str:
    """A string as a COPY text value (escaped only when it holds a special character), else NULL."""
    if type(value) is not str:
        return NULL
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


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
        return {"$numberDecimal": str(value)}
    # The rarer BSON types (binary, regex, code, timestamp, min/max key, DBRef)
    # take pymongo's own relaxed Extended JSON.
    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))
