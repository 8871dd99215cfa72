"""Turning MongoDB documents into rows of the target table, as COPY text.

A row is the document's ``_id`` key, the typed user columns, and the whole
document as MongoDB Extended JSON (relaxed mode, with 64-bit integers kept in
their canonical ``$numberLong`` form so they come back as int64, and doubles
that JSON would not bring back as doubles, NaN, the infinities, -0.0 and those
of 2**53 or more, as ``$numberDouble``). A typed column whose field is missing or
of another type is NULL; the value is still in the ``document`` column.

A document that cannot be written faithfully (it does not decode, holds the
NUL character PostgreSQL cannot store, or has a field name starting with ``$``
that Extended JSON would read as a type) is not dropped: it becomes a
``Reject`` with its raw BSON and the reason, for the rejects table.

This is the hot path of a migration: a page arrives as raw BSON batches and
leaves as COPY text, with as little Python per document as the profile allowed
(see README, "Performance").
"""

from __future__ import annotations

import calendar
import datetime as dt
import gc
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import bson
import orjson
from bson import json_util
from bson.code import Code
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.errors import InvalidBSON
from bson.int64 import Int64
from bson.objectid import ObjectId

# Naive datetimes, which are UTC (decoding them timezone-aware costs a third
# more), and dates beyond Python's years 1-9999 as DatetimeMS, not an error.
CODEC_OPTIONS = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)

COLUMNS = ("_id", "username", "email", "age", "created_at", "document", "page")

NULL = "\\N"
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
_LENIENT_CODEC_OPTIONS = CODEC_OPTIONS.with_options(unicode_decode_error_handler="backslashreplace")
_EXACT_DOUBLES = 2.0**53  # from here on, JSON numbers read back as integers
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # an escaped NUL, not an escaped backslash before "u0000"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class RejectedDocument(ValueError):
    """A document that cannot be written faithfully; the message is the reason."""


@dataclass(frozen=True)
class Reject:
    key: str | None  # the _id key, when the _id could be read
    reason: str
    raw: bytes  # the document's BSON, as the server sent it


@dataclass
class Batch:
    rows: bytes  # COPY text, one line per written document
    documents: int  # documents read: written + rejected
    rejects: list[Reject]


def copy_rows(raw_batch: bytes, page: int) -> Batch:
    """A batch of raw BSON documents of ``page`` as COPY text rows, and the documents set aside.

    The cyclic garbage collector is paused meanwhile: decoding creates tens of
    thousands of containers, none in a cycle, and in a task process collecting
    them would walk Airflow's whole heap again and again (a third of the time).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _copy_rows(raw_batch, f"\t{page}\n")
    finally:
        if collecting:
            gc.enable()


def _copy_rows(raw_batch: bytes, end_of_row: str) -> Batch:
    raw_documents = None  # split only when a document is set aside
    try:
        decoded: list = bson.decode_all(raw_batch, CODEC_OPTIONS)
    except InvalidBSON:  # one or more documents do not decode: take them one by one
        raw_documents = split_documents(raw_batch)
        decoded = [_decode_or_error(raw) for raw in raw_documents]
    lines, rejects = [], []
    for number, document in enumerate(decoded):
        try:
            if isinstance(document, InvalidBSON):
                key = readable_id_key(raw_documents[number])
                raise RejectedDocument(f"does not decode as BSON: {document}")
            key = id_key(document["_id"])
            lines.append(copy_row(document, key) + end_of_row)
        except RejectedDocument as error:
            raw_documents = raw_documents or split_documents(raw_batch)
            rejects.append(Reject(key, str(error), raw_documents[number]))
    return Batch("".join(lines).encode(), len(decoded), rejects)


def _decode_or_error(raw: bytes) -> dict | InvalidBSON:
    try:
        return bson.decode(raw, CODEC_OPTIONS)
    except InvalidBSON as error:
        return error


def split_documents(raw_batch: bytes) -> list[bytes]:
    """The raw BSON documents of a batch, each as the server sent it."""
    documents, offset = [], 0
    while offset < len(raw_batch):
        size = int.from_bytes(raw_batch[offset : offset + 4], "little")
        documents.append(raw_batch[offset : offset + size])
        offset += size
    return documents


def last_id(raw_batch: bytes):
    """The ``_id`` of the last document of a raw batch, as it decodes leniently."""
    last = split_documents(raw_batch)[-1]
    return bson.decode(last, _LENIENT_CODEC_OPTIONS)["_id"]


def readable_id_key(raw: bytes) -> str | None:
    """The _id key of a document that does not decode as it is, reading broken text leniently."""
    try:
        return id_key(bson.decode(raw, _LENIENT_CODEC_OPTIONS)["_id"])
    except (InvalidBSON, KeyError):
        return None


def copy_row(document: dict, key: str) -> str:
    """One document as COPY text: its values in the order of ``COLUMNS``, but for the page.

    ``key`` is the document's ``id_key``, which the caller needs too.
    """
    age = document.get("age")
    created_at = document.get("created_at")
    extended_json = to_extended_json(document)
    if "\\u0000" in extended_json and _NUL.search(extended_json):
        raise RejectedDocument(
            "holds the NUL character (\\u0000), which PostgreSQL text and jsonb cannot store"
        )
    if "\\" in extended_json:  # JSON escapes control characters itself; only its backslashes need escaping
        extended_json = extended_json.replace("\\", "\\\\")
    return "\t".join(
        (
            _text(key),
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


def id_value(key: str) -> Any:
    """The ``_id`` an ``id_key`` was made from."""
    if _OBJECT_ID_KEY.fullmatch(key):  # canonical JSON is never 24 hex digits
        return ObjectId(key)
    return json_util.loads(key, json_options=_ID_JSON_OPTIONS)


_OBJECT_ID_KEY = re.compile("[0-9a-f]{24}")
_ID_JSON_OPTIONS = json_util.CANONICAL_JSON_OPTIONS.with_options(
    datetime_conversion=DatetimeConversion.DATETIME_AUTO
)


def id_keys(raw_batch: bytes) -> list[str]:
    """The ``id_key`` of each document of a raw batch (an ``_id`` that does not decode is read leniently)."""
    try:
        return [id_key(document["_id"]) for document in bson.decode_all(raw_batch, CODEC_OPTIONS)]
    except InvalidBSON:
        return [readable_id_key(raw) or "" for raw in split_documents(raw_batch)]


def to_extended_json(document: dict) -> str:
    if _needs_care(document):
        document = _with_exact_doubles(document)
    try:
        return orjson.dumps(document, default=_extended_json_value, option=_JSON_OPTIONS).decode()
    except orjson.JSONEncodeError as error:
        raise RejectedDocument(f"cannot be written as JSON: {error}") from None


def _needs_care(value: Any) -> bool:
    """Whether a document holds a double plain JSON would change, or a field name starting with ``$``.

    One walk in Python (about 3 µs a user document) finds the few that do.
    """
    kind = type(value)
    if kind is dict:
        return any(key[:1] == "$" or _needs_care(item) for key, item in value.items())
    if kind is list:
        return any(_needs_care(item) for item in value)
    if kind is float:
        return _inexact_in_json(value)
    if kind is Code or kind is DBRef:
        return _needs_care(_embedded(value))
    return False


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
        raise RejectedDocument(
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
    if kind is _ExactDouble:
        return json.loads(json_util.dumps(value.value, json_options=json_util.CANONICAL_JSON_OPTIONS))
    # The rarer BSON types (binary, regex, code, timestamp, min/max key, DBRef)
    # take pymongo's own canonical Extended JSON, which keeps the type of every
    # number inside them (a code's scope, a DBRef's $id) too.
    return json.loads(json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS))
