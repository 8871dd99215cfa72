"""Comparing documents the way BSON does: values and their types, not Python's looser equality."""

import calendar
import datetime as dt
import math
from decimal import Decimal

import bson
from bson import json_util
from bson.binary import Binary
from bson.code import Code
from bson.codec_options import DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.objectid import ObjectId
from bson.timestamp import Timestamp

from mongo_migration.documents import CODEC_OPTIONS


def canonical_bson(document: dict) -> bytes:
    """The document's BSON with keys sorted at every level, in a code's scope and a DBRef too
    (jsonb keeps no key order).

    Equal only if every value and its type are: Python alone would take 1, 1.0
    and Int64(1) for equal.
    """

    def sort(value):
        if isinstance(value, dict):
            return {key: sort(value[key]) for key in sorted(value)}
        if isinstance(value, list):
            return [sort(item) for item in value]
        if isinstance(value, Code) and value.scope is not None:
            return Code(str(value), sort(value.scope))
        if isinstance(value, DBRef):
            extra = {key: item for key, item in value.as_doc().items() if key not in ("$ref", "$id", "$db")}
            return DBRef(value.collection, sort(value.id), value.database, **sort(extra))
        return value

    return bson.encode(sort(document), codec_options=CODEC_OPTIONS)


EXTENDED_JSON = json_util.JSONOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)


def same(pg_type: str, back, value) -> bool:
    """Whether PostgreSQL gave back exactly the BSON value: ``back`` as psycopg reads a column of
    ``pg_type``, but a timestamptz as milliseconds since 1970 and a jsonb as its text."""
    if pg_type == "jsonb":
        return canonical_bson({"v": json_util.loads(back, json_options=EXTENDED_JSON)}) == canonical_bson(
            {"v": value}
        )
    if type(value) is Timestamp:
        return back == value.time * 2**32 + value.inc
    if type(value) is Decimal128:
        expected = value.to_decimal()
        if not expected.is_finite():
            return back.is_nan() if expected.is_nan() else back == expected
        if pg_type != "numeric":  # numeric(p,s) writes every value with s digits after the point
            return back == expected
        digits_after_point = max(-expected.as_tuple().exponent, 0)  # kept, trailing zeros too
        return back == expected and max(-back.as_tuple().exponent, 0) == digits_after_point
    if pg_type == "double precision" and type(value) is int:
        return type(back) is float and back == value
    if type(value) is float:
        if math.isnan(value):
            return math.isnan(back)
        return back == value and math.copysign(1, back) == math.copysign(1, value)
    if type(value) is dt.datetime:
        return back == calendar.timegm(value.timetuple()) * 1000 + value.microsecond // 1000
    if type(value) is DatetimeMS:
        return back == int(value)
    if type(value) is ObjectId:
        return back == (str(value) if pg_type == "text" else value.binary)
    if type(value) is Binary:
        return back == value.as_uuid()
    if type(value) is bytes:
        return bytes(back) == value
    return type(back) in (int, str, bool, Decimal) and back == value
