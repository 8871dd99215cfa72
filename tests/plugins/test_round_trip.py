"""Generated documents of every BSON type, through COPY into PostgreSQL and back.

Each one must come back from the ``document`` jsonb column as the same BSON,
types included, or be in the rejects table with its bytes as they were.
"""

import datetime as dt

import bson
from bson import json_util
from bson.binary import Binary
from bson.code import Code
from bson.codec_options import DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mongo_migration.documents import CODEC_OPTIONS, id_key
from mongo_migration.page_copy import copy_page
from mongo_migration.pages import Page
from tests.bson_equality import canonical_bson
from tests.staging import OUTSIDE_A_RUN, reset_staging, staged

EXTENDED_JSON = json_util.JSONOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)

text = st.text(
    st.sampled_from('\x00\t\n\\"\u2028é😀') | st.characters(exclude_categories=["Cs"]), max_size=12
)
keys = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), min_size=1, max_size=6)
scalars = st.one_of(
    text,
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    # NaN, the infinities, -0.0 and huge doubles included; a NaN keeps no sign or
    # payload (MongoDB takes every NaN for equal), so only the plain NaN is made.
    st.floats(allow_nan=False),
    st.just(float("nan")),
    st.builds(  # any finite Decimal128: up to 34 digits, exponents -6176 to 6111
        lambda digits, exponent: Decimal128(f"{digits}E{exponent}"),
        st.integers(-(10**34) + 1, 10**34 - 1),
        st.integers(-6176, 6111),
    ),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "-0", "1E+6144"]).map(Decimal128),
    st.booleans(),
    st.none(),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda value: value.replace(microsecond=value.microsecond // 1000 * 1000)
    ),
    st.integers(-(2**62), 2**62).map(DatetimeMS),
    st.binary(max_size=8).flatmap(
        lambda data: st.sampled_from([0, 3, 4, 5, 0x80]).map(lambda s: Binary(data, s))
    ),
    st.builds(ObjectId),
    st.builds(Regex, st.text(max_size=5).filter(lambda p: "\x00" not in p), st.sampled_from(["", "i", "ms"])),
    st.builds(Code, st.text(max_size=8).filter(lambda c: "\x00" not in c)),
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.just(MinKey()),
    st.just(MaxKey()),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=10,
)
documents = st.dictionaries(keys, values, max_size=5).map(lambda fields: {"_id": ObjectId(), **fields})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(documents, min_size=1, max_size=4))
def test_every_document_comes_back_as_the_same_bson_or_is_a_reject_with_its_bytes(
    pg_conn, target_table, batch
):
    raw_documents = [bson.encode(document) for document in batch]
    reset_staging(pg_conn, target_table)
    page = Page(0, batch[0]["_id"], batch[-1]["_id"], True, len(batch))

    stats = copy_page([b"".join(raw_documents)], pg_conn, target_table, OUTSIDE_A_RUN, page)

    rows = dict(pg_conn.execute(f"SELECT _id, document::text FROM {staged(target_table)}").fetchall())
    rejects = dict(pg_conn.execute(f"SELECT _id, document FROM {staged(target_table)}_rejects").fetchall())
    assert stats.documents == len(rows) + len(rejects) == len(batch)
    for raw in raw_documents:
        key = id_key(bson.decode(raw, CODEC_OPTIONS)["_id"])
        if key in rejects:
            assert bytes(rejects[key]) == raw
        else:
            back = json_util.loads(rows[key], json_options=EXTENDED_JSON)
            assert canonical_bson(back) == canonical_bson(bson.decode(raw, CODEC_OPTIONS))
