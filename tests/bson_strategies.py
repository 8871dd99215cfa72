"""Hypothesis strategies for documents of every BSON type and ``_id`` values of every type,
and what a correct conversion must do with them, written without the code under test.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

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
from hypothesis import strategies as st

# Characters that COPY, JSON or PostgreSQL treat specially appear often; NUL too
# (PostgreSQL cannot store it: such a document must be set aside).
text = st.text(
    st.sampled_from('\x00\t\n\r\\"\b\x7f\u2028 é€😀') | st.characters(exclude_categories=["Cs"]),
    max_size=12,
)
cstring = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=6)
# Field names: BSON forbids NUL in them; names with "." are kept, names starting with "$" set aside.
keys = st.one_of(
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), min_size=1, max_size=6),
    st.sampled_from(["a.b", ".", "x.", "$where", "$oid", "$", "a$"]),
)
# Only the plain NaN: a NaN keeps no sign or payload (MongoDB takes every NaN for equal: docs/guarantees.md).
doubles = st.floats(allow_nan=False) | st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0])
decimals = st.one_of(
    st.builds(  # any finite Decimal128: up to 34 digits, exponents -6176 to 6111
        lambda digits, exponent: Decimal128(f"{digits}E{exponent}"),
        st.integers(-(10**34) + 1, 10**34 - 1),
        st.integers(-6176, 6111),
    ),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "-0", "1E+6144"]).map(Decimal128),
)
dates = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
    lambda value: value.replace(microsecond=value.microsecond // 1000 * 1000)  # BSON keeps milliseconds
)
binaries = st.binary(max_size=8).flatmap(
    lambda data: st.sampled_from([0, 3, 4, 5, 0x80]).map(lambda subtype: Binary(data, subtype))
)
codes = st.builds(Code, text)
scalars = st.one_of(
    text,
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    doubles,
    decimals,
    st.booleans(),
    st.none(),
    dates,
    st.integers(-(2**62), 2**62).map(DatetimeMS),  # dates beyond Python's years 1-9999 too
    binaries,
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.builds(Regex, cstring, st.sampled_from(["", "i", "ms"])),
    codes,
    st.builds(Code, text, st.dictionaries(keys, st.integers(-(2**31), 2**31 - 1) | text, max_size=2)),
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.just(MinKey()),
    st.just(MaxKey()),
)


def _dbrefs(inner):
    """DBRefs whose $id and extra fields are any values, $ names among them."""
    extra_names = keys.filter(lambda key: key not in ("$ref", "$id", "$db"))
    return st.builds(
        lambda collection, id_, extra: DBRef(collection, id_, **extra),
        cstring.filter(bool),
        inner,
        st.dictionaries(extra_names, inner, max_size=2),
    )


values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3) | _dbrefs(inner),
    max_leaves=10,
)
# Every type MongoDB allows as _id (an array is not allowed).
ids = st.one_of(
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    doubles,
    decimals,
    text,
    st.dictionaries(keys, st.integers(-(2**31), 2**31 - 1) | text, max_size=2),
    binaries,
    st.booleans(),
    dates,
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.none(),
    st.just(MinKey()),
    st.just(MaxKey()),
    codes,
    st.builds(Code, text, st.dictionaries(keys, st.integers(-(2**31), 2**31 - 1) | text, max_size=2)),
    st.integers(-(2**62), 2**62).map(DatetimeMS),
    _dbrefs(st.integers(-(2**31), 2**31 - 1) | text),
)


def reference_key(value: Any) -> str:
    """The target's primary key as the docs define it: an ObjectId's hex, else canonical Extended JSON."""
    if type(value) is ObjectId:
        return str(value)
    return json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS)


def must_be_set_aside(value: Any) -> bool:
    """Whether a document holds what PostgreSQL cannot keep faithfully: NUL in a string, a $ field name."""
    if isinstance(value, str):  # Code too
        return "\x00" in value or must_be_set_aside(getattr(value, "scope", None))
    if isinstance(value, dict):
        return any(key.startswith("$") or must_be_set_aside(item) for key, item in value.items())
    if isinstance(value, list):
        return any(must_be_set_aside(item) for item in value)
    if isinstance(value, DBRef):
        extra = {key: item for key, item in value.as_doc().items() if key not in ("$ref", "$id", "$db")}
        return must_be_set_aside(value.collection) or must_be_set_aside([value.id, extra])
    return False


def documents(fields=values, max_size: int = 5):
    """A list of documents with distinct ``_id`` values of any type, each with any fields."""
    other_fields = st.dictionaries(keys.filter(lambda key: key != "_id"), fields, max_size=max_size)
    document = st.tuples(ids, other_fields)
    return st.lists(
        document.map(lambda pair: {"_id": pair[0], **pair[1]}),
        min_size=1,
        max_size=4,
        unique_by=lambda document: reference_key(document["_id"]),
    )
