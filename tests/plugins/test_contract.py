"""The type contract, pair by pair: the value PostgreSQL gives back equals the BSON value, or it is set aside.

Each case is written by the real conversion (a one-column mapping) with COPY
into a column of the declared type on the real PostgreSQL and read back; the
comparison with the BSON value is the test's own (``same``), exact to the bit
for doubles, to the digit for Decimal128 and to the millisecond for dates,
never through the code under test. The edge values come from MongoDB's BSON
corpus (limits of int32/int64, Decimal128's extremes, the ends of the date
range) and from what the other tools get wrong (-0.0, NaN, far dates, NUL).
"""

import datetime as dt
import math
import uuid

import bson
import pytest
from bson.binary import Binary
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.timestamp import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from mongo_migration.contract import decimal128_text
from mongo_migration.documents import CODEC_OPTIONS, Conversion
from mongo_migration.mapping import Mapping
from tests.bson_equality import same
from tests.bson_strategies import decimals

FIRST_MS = -210_866_803_200_000  # 4714-11-24 00:00:00 BC, PostgreSQL's first timestamptz (its docs)
END_MS = 9_224_318_016_000_000  # 294277-01-01, the first one it refuses
OBJECT_ID = ObjectId("65a1b2c3d4e5f60718293a4b")
A_UUID = uuid.UUID("8c0b4ec9-2d27-4a3b-9a6e-4c7f6b9f1e2d")

# (column type, BSON type, values written exactly)
EXACT = [
    ("integer", "int", [-(2**31), -1, 0, 2**31 - 1]),
    ("bigint", "int", [-(2**31), 2**31 - 1]),
    ("bigint", "long", [Int64(-(2**63)), Int64(0), Int64(2**63 - 1)]),
    ("bigint", "timestamp", [Timestamp(0, 0), Timestamp(1_700_000_000, 7), Timestamp(2**31 - 1, 2**32 - 1)]),
    ("numeric", "int", [-(2**31), 2**31 - 1]),
    ("numeric", "long", [Int64(-(2**63)), Int64(2**63 - 1)]),
    (
        "numeric",
        "decimal",
        [
            Decimal128(text)
            for text in [
                "0.1",
                "1.10",
                "-0",
                "1.10E-100",
                "1234567890123456789012345678901234",
                "9.999999999999999999999999999999999E+6144",
                "-1E-6176",
                "1.0E+3",
                "NaN",
                "Infinity",
                "-Infinity",
            ]
        ],
    ),
    (
        "numeric(5,2)",
        "decimal",
        [Decimal128("123.45"), Decimal128("-999.9"), Decimal128("0.10"), Decimal128("NaN")],
    ),
    ("numeric(5,2)", "int", [999, -999]),
    (
        "numeric(38,18)",
        "decimal",
        [Decimal128("12345678901.5"), Decimal128("99999999999999999999.99999999999999"), Decimal128("1.50")],
    ),
    ("numeric(38,18)", "long", [Int64(10**12), Int64(-(2**63))]),
    ("numeric(30,0)", "decimal", [Decimal128("9" * 30), Decimal128("1E+29")]),
    ("double precision", "double", [0.0, -0.0, 5e-324, 1.7976931348623157e308, -1.5, 0.1, 2.0**53 + 2]),
    ("double precision", "double", [math.nan, math.inf, -math.inf]),
    ("double precision", "int", [-(2**31), 2**31 - 1]),
    ("boolean", "bool", [True, False]),
    (
        "timestamptz",
        "date",
        [
            dt.datetime(1970, 1, 1),
            dt.datetime(1, 1, 1),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999000),
            dt.datetime(2024, 2, 29, 12, 30, 0, 1000),
            DatetimeMS(FIRST_MS),
            DatetimeMS(END_MS - 1),
            DatetimeMS(-62_135_596_800_001),  # the last millisecond of 1 BC
            DatetimeMS(253_402_300_800_000),  # 10000-01-01
        ],
    ),
    ("text", "string", ["", 'tab\t nl\n cr\r bs\\ quote" é 😀 \u2028', "x" * 10_000]),
    ("text", "objectId", [OBJECT_ID]),
    ("bytea", "binData", [b"", b"\x00\xff\\", bytes(range(256))]),
    ("bytea", "objectId", [OBJECT_ID]),
    ("uuid", "uuid", [Binary.from_uuid(A_UUID)]),
    ("jsonb", "object", [{"a": [1, Int64(2), 3.0, Decimal128("4.50")], "d": dt.datetime(2020, 1, 1)}]),
    ("jsonb", "array", [[math.nan, -0.0, 1e20, "s", None, {"x": Timestamp(1, 2)}]]),
    ("jsonb", "string", ["\\u0000 is not NUL"]),
    ("jsonb", "long", [Int64(2**63 - 1)]),
]
# (column type, BSON type, values the column cannot hold exactly, what the reason says)
SET_ASIDE = [
    ("timestamptz", "date", [DatetimeMS(FIRST_MS - 1), DatetimeMS(END_MS), DatetimeMS(2**62)], "outside"),
    ("text", "string", ["a\x00b"], "NUL"),
    ("jsonb", "string", ["a\x00b"], "NUL"),
    ("jsonb", "object", [{"$where": 1}], "field name '$where'"),
    ("bytea", "binData", [Binary(b"\x01", 5), Binary(b"\x01", 0x80)], "bytea keeps no subtype"),
    ("uuid", "uuid", [Binary(b"short", 4)], "not 16"),
    ("bigint", "timestamp", [Timestamp(2**31, 0), Timestamp(2**32 - 1, 1)], "do not fit"),
    (
        "numeric(5,2)",
        "decimal",
        [Decimal128("123.456"), Decimal128("1000"), Decimal128("Infinity")],
        "numeric(5,2)",
    ),
    ("numeric(5,2)", "int", [1000], "numeric(5,2)"),
    ("numeric(38,18)", "decimal", [Decimal128("1E+20"), Decimal128("1E-19")], "numeric(38,18)"),
    ("numeric(20,2)", "long", [Int64(10**18)], "numeric(20,2)"),
]


def mapping(pg_type: str, bson_type: str) -> Mapping:
    column = {"name": "c", "path": ["v"], "type": pg_type, "accepts": [bson_type]}
    source, table = {"database": "d", "collection": "c"}, {"table": "t"}
    return Mapping(dag_id="d", source=source, target=table, keep_document=False, columns=[column])


def written_and_read_back(pg_conn, pg_type: str, bson_type: str, values: list) -> tuple[list, list]:
    """The values as PostgreSQL gives them back (dates as milliseconds since 1970), and the rejects."""
    raw = b"".join(bson.encode({"_id": number, "v": value}) for number, value in enumerate(values))
    batch = Conversion(mapping(pg_type, bson_type)).rows(raw, 0)
    read = "(extract(epoch FROM c) * 1000)::numeric" if pg_type == "timestamptz" else "c"
    read = "c::text" if pg_type == "jsonb" else read
    with pg_conn.transaction():
        pg_conn.execute(
            f"CREATE TEMPORARY TABLE contract (_id text, c {pg_type}, page integer) ON COMMIT DROP"
        )
        with pg_conn.cursor() as cursor, cursor.copy("COPY contract FROM STDIN") as copy:
            copy.write(batch.rows)
        rows = pg_conn.execute(
            f"SELECT {read} FROM contract ORDER BY (_id::jsonb->>'$numberInt')::int"
        ).fetchall()
    return [row[0] for row in rows], batch.rejects


@pytest.mark.parametrize(
    ("pg_type", "bson_type", "values"), EXACT, ids=lambda x: x if isinstance(x, str) else ""
)
def test_each_allowed_pair_reads_back_as_the_same_value(pg_conn, pg_type, bson_type, values):
    stored = [bson.decode(bson.encode({"v": value}), CODEC_OPTIONS)["v"] for value in values]

    back, rejects = written_and_read_back(pg_conn, pg_type, bson_type, values)

    assert rejects == []
    for value, read in zip(stored, back, strict=True):
        assert same(pg_type, read, value), (value, read)


@pytest.mark.parametrize(
    ("pg_type", "bson_type", "values", "reason"), SET_ASIDE, ids=lambda x: x if isinstance(x, str) else ""
)
def test_a_value_its_column_cannot_hold_exactly_is_set_aside_never_clamped_rounded_or_nulled(
    pg_conn, pg_type, bson_type, values, reason
):
    back, rejects = written_and_read_back(pg_conn, pg_type, bson_type, values)

    assert back == []
    assert len(rejects) == len(values)
    for reject in rejects:
        assert reason in reject.reason
        assert (reject.column, reject.path, reject.expected) == ("c", ("v",), bson_type)


def test_a_value_of_a_type_the_column_does_not_accept_is_set_aside_with_both_types(pg_conn):
    back, rejects = written_and_read_back(pg_conn, "bigint", "long", [5, "5", 5.0, None])

    assert back == [None]  # null: the column is nullable
    assert [reject.actual for reject in rejects] == ["int", "string", "double"]
    assert all("the column accepts long" in reject.reason for reject in rejects)


@settings(max_examples=3000, deadline=None)
@given(st.binary(min_size=16, max_size=16) | decimals.map(lambda value: value.bid))
def test_a_decimal128_is_spelled_from_its_bits_as_bson_spells_it(bits):
    value = Decimal128.from_bid(bits)
    assert decimal128_text(value) == str(value)  # bson's own, through Python's Decimal
