"""The row of a document of the users mapping: pure functions, no services."""

import datetime as dt
import json
import uuid

import bson
import pytest
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

from mongo_migration.contract import extended_json
from mongo_migration.documents import CODEC_OPTIONS, Conversion, ViolationFailsRun, id_key
from mongo_migration.mapping import Mapping
from tests.staging import ORDERS, USERS

USERS_ROWS = Conversion(USERS)

UTC = dt.UTC
EXTENDED_JSON = json_util.JSONOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)


def as_read(document: dict) -> dict:
    """The document as a page task decodes it."""
    return bson.decode(bson.encode(document), CODEC_OPTIONS)


def user(**fields) -> dict:
    document = {
        "_id": ObjectId("65a1b2c3d4e5f60718293a4b"),
        "username": "ada.lovelace1",
        "email": "ada.lovelace1@example.org",
        "age": 36,
        "created_at": dt.datetime(2021, 3, 4, 5, 6, 7, 890000, tzinfo=UTC),
        "address": {"street": "12 Main St", "city": "London", "postcode": "N1", "country": "GB"},
        "tags": ["math", "poetry"],
    }
    document.update(fields)
    return as_read(document)


def copy_rows(raw_batch: bytes, page: int):
    return USERS_ROWS.rows(raw_batch, page)


def line(document: dict) -> str:
    """The document's row as COPY text, without its page."""
    batch = copy_rows(bson.encode(document), 0)
    assert batch.rejects == []
    return batch.rows.decode().removesuffix("\t0\n")


def values(document: dict) -> list[str]:
    return line(document).split("\t")


def test_row_is_one_copy_line_with_a_value_per_column_in_order():
    assert "\n" not in line(user())
    assert values(user())[:5] == [
        "65a1b2c3d4e5f60718293a4b",
        "ada.lovelace1",
        "ada.lovelace1@example.org",
        "36",
        "2021-03-04T05:06:07.890000+00",
    ]
    assert USERS_ROWS.columns == ("_id", "username", "email", "age", "created_at", "document", "page")
    assert len(values(user())) == len(USERS_ROWS.columns) - 1  # the page is added per batch


def test_document_column_holds_every_field_including_those_without_a_column():
    document = json.loads(values(user(nickname="Ada"))[-1])
    assert document["address"]["city"] == "London"
    assert document["tags"] == ["math", "poetry"]
    assert document["nickname"] == "Ada"
    assert document["_id"] == {"$oid": "65a1b2c3d4e5f60718293a4b"}
    assert document["created_at"] == {"$date": "2021-03-04T05:06:07.890Z"}


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("tab\there", "tab\\there"),
        ("new\nline", "new\\nline"),
        ("cr\rhere", "cr\\rhere"),
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_copy_special_characters_in_text_columns_are_escaped(text, escaped):
    assert values(user(username=text))[1] == escaped


def test_backslashes_of_the_json_are_escaped_for_copy():
    document = values(user(note='say "hi"\n'))[-1]
    assert '\\\\"hi\\\\"\\\\n' in document  # JSON's \" and \n, each backslash doubled for COPY


@pytest.mark.parametrize(
    ("age", "actual"),
    [("42", "string"), (4.2, "double"), (True, "bool"), (Int64(2**40), "long"), (Int64(42), "long")],
    ids=["string", "double", "bool", "beyond-int32", "int64"],
)
def test_age_of_another_type_sets_the_user_aside_naming_the_column_path_and_both_types(age, actual):
    raw = bson.encode(user(age=age))
    batch = copy_rows(raw, 3)
    assert batch.rows == b""
    [reject] = batch.rejects
    assert (reject.key, reject.raw) == ("65a1b2c3d4e5f60718293a4b", raw)
    assert (reject.column, reject.path, reject.expected, reject.actual) == ("age", ("age",), "int", actual)
    assert f"has the BSON type {actual}; the column accepts int" in reject.reason


def test_missing_and_null_fields_leave_their_nullable_columns_null():
    assert values(as_read({"_id": ObjectId("65a1b2c3d4e5f60718293a4b")}))[1:5] == ["\\N"] * 4
    assert values(user(age=None, email=None))[2:4] == ["\\N"] * 2


def test_a_raw_batch_becomes_one_line_per_document():
    documents = [user(_id=ObjectId()) for _ in range(3)]
    batch = copy_rows(b"".join(map(bson.encode, documents)), 12)
    assert (batch.documents, batch.rejects) == (3, [])
    assert batch.rows.decode() == "".join(line(document) + "\t12\n" for document in documents)


def test_extended_json_turns_back_into_the_same_bson_for_every_common_type():
    document = as_read(
        {
            "_id": ObjectId(),
            "int32": 7,
            "int64": Int64(7),
            "double": 7.0,
            "decimal": Decimal128("7.10"),
            "string": "tab\there, newline\nthere, back\\slash, ünïcode",
            "bool": False,
            "null": None,
            "date": dt.datetime(2020, 2, 29, 23, 59, 59, 999000, tzinfo=UTC),
            "date_on_a_second": dt.datetime(2020, 2, 29, 23, 59, 59, tzinfo=UTC),
            "date_before_1970": dt.datetime(1969, 7, 20, 20, 17, 0, 1000, tzinfo=UTC),
            "bytes": b"\x00\xff",
            "uuid": Binary(uuid.UUID(int=1).bytes, 4),
            "regex": Regex("^a.*z$", "i"),
            "code": Code("return x", {"x": 1}),
            "timestamp": Timestamp(1_700_000_000, 3),
            "min": MinKey(),
            "max": MaxKey(),
            "nested": {"list": [1, Int64(2), {"deep": [dt.datetime(2001, 1, 1, tzinfo=UTC)]}]},
        }
    )
    back = json_util.loads(extended_json(document))
    assert bson.encode(back) == bson.encode(document)


def test_id_key_of_an_objectid_is_its_hex_and_keeps_its_order():
    ids = sorted(ObjectId() for _ in range(50))
    keys = [id_key(value) for value in ids]
    assert keys == [str(value) for value in ids]
    assert keys == sorted(keys)


def test_id_keys_of_other_types_never_collide_with_an_objectid():
    value = ObjectId("65a1b2c3d4e5f60718293a4b")
    assert len({id_key(value), id_key(str(value)), id_key(1), id_key(Int64(1)), id_key(1.0)}) == 5


@pytest.mark.parametrize(
    ("millis", "written"),
    [
        (300_000_000_000_000, "11476-08-15 05:20:00.000+00"),  # as PostgreSQL writes to_timestamp(3e11)
        (-70_000_000_000_000, "0250-10-15 19:33:20.000+00 BC"),
    ],
    ids=["after-9999", "before-year-1"],
)
def test_dates_beyond_python_years_keep_their_milliseconds_in_the_column_and_the_document(millis, written):
    raw = bson.encode({"_id": 1, "created_at": DatetimeMS(millis)})
    document = bson.decode(raw, CODEC_OPTIONS)
    assert values(document)[4] == written
    back = json_util.loads(extended_json(document), json_options=EXTENDED_JSON)
    assert bson.encode(back) == raw


def test_a_batch_with_a_document_that_does_not_decode_sets_it_aside_and_keeps_the_rest():
    good = bson.encode({"_id": 1, "username": "fine"})
    broken = bytearray(bson.encode({"_id": 2, "username": "abc"}))
    broken[broken.index(b"abc")] = 0xFF  # not UTF-8

    batch = copy_rows(good + bytes(broken) + good.replace(b"\x01\x00\x00\x00", b"\x03\x00\x00\x00"), 5)

    assert batch.documents == 3
    assert [values_of_line(line)[0] for line in batch.rows.decode().splitlines()] == [
        '{"$numberInt": "1"}',
        '{"$numberInt": "3"}',
    ]
    [reject] = batch.rejects
    assert reject.key == '{"$numberInt": "2"}'
    assert reject.raw == bytes(broken)
    assert "does not decode" in reject.reason and "utf-8" in reject.reason


def values_of_line(line: str) -> list[str]:
    return line.split("\t")


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"username": "a\x00b"}, "NUL character"),
        ({"deep": [{"x": "\x00"}]}, "NUL character"),
        ({"$where": "1"}, "field name '$where'"),
        ({"meta": {"$oid": "x"}}, "field name '$oid'"),
    ],
    ids=["nul", "nested-nul", "dollar-key", "nested-dollar-key"],
)
def test_documents_that_cannot_be_written_faithfully_are_rejected_with_the_reason(document, reason):
    raw = bson.encode({"_id": 9, **document})
    batch = copy_rows(raw, 1)
    assert (batch.rows, batch.documents) == (b"", 1)
    assert [(reject.key, reject.raw) for reject in batch.rejects] == [('{"$numberInt": "9"}', raw)]
    assert reason in batch.rejects[0].reason


def test_an_escaped_backslash_before_u0000_is_not_mistaken_for_nul():
    batch = copy_rows(bson.encode({"_id": 1, "note": "C:\\u0000"}), 1)
    assert batch.rejects == []


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), float("-inf"), 1e20, -(2.0**64), 2.0**53], ids=str
)
def test_doubles_json_would_change_are_spelled_out_and_come_back_as_doubles(value):
    raw = bson.encode({"_id": 1, "d": [value, 1.5]})
    back = json_util.loads(extended_json(bson.decode(raw, CODEC_OPTIONS)))
    assert bson.encode(back) == raw


def test_a_column_whose_mapping_says_fail_fails_the_run_naming_the_document_and_the_column():
    strict = Mapping.model_validate(
        {
            "dag_id": "strict",
            "source": {"database": "d", "collection": "c"},
            "target": {"table": "t"},
            "columns": [{"name": "age", "path": ["age"], "type": "integer", "on_violation": "fail"}],
        }
    )

    with pytest.raises(ViolationFailsRun) as failure:
        Conversion(strict).rows(bson.encode({"_id": 1, "age": 7}) + bson.encode({"_id": 2, "age": "7"}), 0)

    assert str(failure.value) == (
        'document _id {"$numberInt": "2"} violates the mapping <memory>, whose column says '
        "on_violation: fail: age (integer, at age): has the BSON type string; the column accepts int"
    )


def test_a_field_on_a_columns_path_that_holds_no_object_is_a_violation_not_a_null():
    order = {
        "_id": 1,
        "number": "A-1",
        "status": "paid",
        "placed_at": dt.datetime(2024, 1, 1),
        "total": Decimal128("9.90"),
        "currency": "EUR",
        "customer": {"name": "Ada", "address": "12 rue X, Paris"},  # a string where city and country are
        "items": [],
    }
    [reject] = Conversion(ORDERS).rows(bson.encode(order), 0).rejects

    assert (reject.column, reject.path, reject.actual) == ("city", ("customer", "address"), "string")
    assert reject.reason.endswith("holds the BSON type string, not an object with 'city'")
    lands = {**order, "customer": {"name": "Ada", "address": None}}  # null: the fields are missing
    assert Conversion(ORDERS).rows(bson.encode(lands), 0).rejects == []
