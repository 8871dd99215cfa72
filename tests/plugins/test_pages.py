"""Page planning against the real MongoDB wire-protocol server."""

import contextlib
import datetime as dt
import math
import re

import pytest
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
from bson.son import SON
from bson.timestamp import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient
from pymongo.errors import BulkWriteError

from mongo_migration.documents import CODEC_OPTIONS
from mongo_migration.pages import (
    Page,
    PlanCheck,
    comparison_group,
    fewer_pages,
    plan_pages,
    planned_range_filter,
    type_rank,
)
from tests.bson_strategies import ids
from tests.mongo_replies import Replies


def test_pages_cover_every_document_once_with_a_short_last_page(mongo_collection):
    mongo_collection.insert_many([{"_id": ObjectId(), "n": n} for n in range(25)])

    pages = plan_pages(mongo_collection, items_per_page=10)

    assert [page.planned_documents for page in pages] == [10, 10, 5]
    assert [page.upper_inclusive for page in pages] == [False, False, True]
    seen = [doc["n"] for page in pages for doc in mongo_collection.find(page.mongo_filter())]
    assert sorted(seen) == list(range(25))
    for page in pages:
        assert mongo_collection.count_documents(page.mongo_filter()) == page.planned_documents


def test_pages_of_an_exact_multiple_end_with_a_full_page(mongo_collection):
    mongo_collection.insert_many([{"_id": ObjectId()} for _ in range(20)])

    pages = plan_pages(mongo_collection, items_per_page=10)

    assert [page.planned_documents for page in pages] == [10, 10]
    assert mongo_collection.count_documents(planned_range_filter(pages)) == 20


def test_an_empty_collection_has_no_pages_and_its_planned_range_matches_nothing(mongo_collection):
    assert plan_pages(mongo_collection, items_per_page=10) == []
    mongo_collection.insert_one({"_id": ObjectId()})
    assert mongo_collection.count_documents(planned_range_filter([])) == 0


def test_documents_inserted_after_planning_beyond_the_last_page_are_not_in_any_page(mongo_collection):
    mongo_collection.insert_many([{"_id": ObjectId()} for _ in range(5)])
    pages = plan_pages(mongo_collection, items_per_page=10)

    mongo_collection.insert_one({"_id": ObjectId()})

    assert mongo_collection.count_documents(pages[0].mongo_filter()) == 5


def test_a_page_survives_xcom_with_its_bound_types():
    page = Page(number=3, lower=ObjectId(), upper=42, upper_inclusive=True, planned_documents=7)
    assert Page.from_xcom(page.to_xcom()) == page
    assert type(Page.from_xcom(page.to_xcom()).upper) is int


def test_mixed_id_types_each_land_in_exactly_one_page_of_a_single_type(mongo_collection, mixed_ids):
    collection = mongo_collection
    ids = mixed_ids
    collection.insert_many([{"_id": value, "n": n} for n, value in enumerate(ids)])

    pages = plan_pages(collection, items_per_page=3)

    seen = [doc["n"] for page in pages for doc in collection.find(page.mongo_filter())]
    assert sorted(seen) == list(range(len(ids)))
    assert all(comparison_group(page.lower) == comparison_group(page.upper) for page in pages)
    assert sum(page.planned_documents for page in pages) == len(ids)
    assert collection.count_documents(planned_range_filter(pages)) == len(ids)


# MongoDB's documented comparison order of BSON types, lowest first ("Comparison/Sort Order",
# MongoDB 8.0 manual), with values of each as pymongo decodes them.
DOCUMENTED_ORDER = [
    ("MinKey", [MinKey()]),
    ("Null (undefined decodes as None)", [None]),
    ("Numbers", [1, Int64(2), 2.5, float("nan"), float("-inf"), Decimal128("3"), Decimal128("NaN")]),
    ("Symbol, String (a symbol decodes as str)", ["a", ""]),
    ("Object (a DBRef is stored as one)", [{"a": 1}, SON([("b", 2)]), DBRef("users", 1)]),
    ("Array", [[1], []]),
    ("BinData", [b"x", Binary(b"x", 4)]),
    ("ObjectId", [ObjectId()]),
    ("Boolean", [False, True]),
    ("Date", [dt.datetime(2020, 1, 1), DatetimeMS(2**62)]),
    ("Timestamp", [Timestamp(1, 1)]),
    ("Regular Expression", [Regex("a", "i"), re.compile("a")]),
    ("JavaScript Code", [Code("x")]),
    ("JavaScript Code with Scope", [Code("x", {"y": 1})]),
    ("MaxKey", [MaxKey()]),
]


def test_type_ranks_follow_mongodb_documented_comparison_order():
    ranks = []
    for bracket, examples in DOCUMENTED_ORDER:
        bracket_ranks = {type_rank(value) for value in examples}
        assert len(bracket_ranks) == 1, bracket
        ranks.append(bracket_ranks.pop())
    assert ranks == sorted(set(ranks))  # strictly rising, bracket by bracket


def test_nan_is_a_group_of_its_own_matched_by_equality():
    assert comparison_group(float("nan")) == comparison_group(Decimal128("NaN")) != comparison_group(1.0)
    page = Page(0, float("nan"), float("nan"), True, 1)
    assert math.isnan(page.mongo_filter()["_id"])  # the NaN itself, not a range
    assert page.label() == 'page 0: _id {"$numberDouble": "NaN"}'


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param(["a", "b", Code("x"), Code("y")], id="strings and code"),
        pytest.param([float("nan"), float("-inf"), 1, 2, 3], id="NaN and numbers"),
        pytest.param([Code("f", {"s": 1}), Code("g", {"s": 1}), Code("h"), {"a": 1}], id="code with scope"),
    ],
)
def test_each_document_of_ids_a_range_cannot_mix_lands_in_exactly_one_page(mongo_collection, ids):
    mongo_collection.insert_many([{"_id": value, "n": n} for n, value in enumerate(ids)])

    pages = plan_pages(mongo_collection, items_per_page=8000)

    seen = [doc["n"] for page in pages for doc in mongo_collection.find(page.mongo_filter())]
    assert sorted(seen) == list(range(len(ids)))
    assert [mongo_collection.count_documents(page.mongo_filter()) for page in pages] == [
        page.planned_documents for page in pages
    ]
    assert mongo_collection.count_documents(planned_range_filter(pages)) == len(ids)


def test_a_page_is_labelled_by_its_number_and_id_range():
    first, last = ObjectId("65a1b2c3d4e5f60718293a4b"), ObjectId("65a1b2c3d4e5f60718293a4c")

    assert Page(3, first, last, False, 2).label() == f"page 3: _id [{first}, {last})"
    assert Page(4, 7, "x" * 60, True, 2).label() == 'page 4: _id [7, "' + "x" * 38 + "…]"
    assert Page(5, None, None, True, 1).label() == "page 5: _id null"


def test_planning_brings_one_id_per_page_into_python_not_every_id(mongo_collection):
    mongo_collection.insert_many(
        [{"_id": n} for n in range(1000)] + [{"_id": f"user-{n:04}"} for n in range(1050)]
    )
    replies = Replies()
    address = "mongodb://{}:{}/?directConnection=true".format(*mongo_collection.database.client.address)

    with MongoClient(address, event_listeners=[replies]) as client:
        pages = plan_pages(client[mongo_collection.database.name][mongo_collection.name], items_per_page=100)

    assert [page.planned_documents for page in pages] == [100] * 20 + [50]
    assert replies.documents == 21 + 1  # the first _id of each page, and the last


_YEAR_1, _YEAR_9999 = (int(DatetimeMS(moment)) for moment in (dt.datetime.min, dt.datetime.max))


def _storable_by_the_test_server(value) -> bool:
    """Left out: what MongoDB refuses (``$`` field names in an ``_id``) and known faults of the local server.

    SecantusDB fails ``$setWindowFields`` on a DBRef ``_id`` (an internal error) and refuses
    a query holding a date outside years 1 to 9999; MongoDB takes both.
    """
    if isinstance(value, dict):
        return not any(key.startswith("$") for key in value)
    if isinstance(value, DatetimeMS):
        return _YEAR_1 <= int(value) <= _YEAR_9999
    return not isinstance(value, DBRef)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ids.filter(_storable_by_the_test_server), min_size=1, max_size=12), st.integers(1, 4))
def test_ids_of_any_types_each_land_in_exactly_one_page_of_at_most_items_per_page(
    mongo_collection, values, items_per_page
):
    collection = mongo_collection.with_options(codec_options=CODEC_OPTIONS)  # as the operators read
    collection.delete_many({})
    with contextlib.suppress(BulkWriteError):  # values MongoDB takes for equal (1 and 1.0) are stored once
        collection.insert_many([{"_id": value, "n": n} for n, value in enumerate(values)], ordered=False)
    stored = sorted(document["n"] for document in collection.find())

    pages = plan_pages(collection, items_per_page)

    seen = [document["n"] for page in pages for document in collection.find(page.mongo_filter())]
    assert sorted(seen) == stored
    assert all(
        collection.count_documents(page.mongo_filter()) == page.planned_documents <= items_per_page
        for page in pages
    )
    groups = [comparison_group(page.lower) for page in pages]
    ends_of_groups = [
        group != following for group, following in zip(groups, [*groups[1:], None], strict=True)
    ]
    assert [page.upper_inclusive for page in pages] == ends_of_groups  # the others reach the next page


def test_more_pages_than_airflow_maps_merge_within_their_group_to_at_most_1024(mongo_collection):
    ids = [*range(2045), "a", "b"]  # the strings start off a merged page's boundary
    mongo_collection.insert_many([{"_id": value, "n": n} for n, value in enumerate(ids)])
    pages = plan_pages(mongo_collection, items_per_page=1)

    merged = fewer_pages(pages, 1024)

    assert len(pages) == 2047 and len(merged) == 1024
    assert [page.number for page in merged] == list(range(1024))
    assert all(comparison_group(page.lower) == comparison_group(page.upper) for page in merged)
    seen = [document["n"] for page in merged for document in mongo_collection.find(page.mongo_filter())]
    assert sorted(seen) == list(range(len(ids)))
    assert sum(page.planned_documents for page in merged) == len(ids)


def test_more_types_than_pages_allowed_cannot_merge():
    pages = [Page(number, value, value, True, 1) for number, value in enumerate([1, "a", ObjectId()])]

    with pytest.raises(ValueError, match="more types"):
        fewer_pages(pages, 2)


@pytest.mark.parametrize(
    ("before", "after", "planned", "in_ranges", "matches"),
    [
        (10, 10, 10, 10, True),  # a quiet collection, planned whole
        (10, 12, 11, 11, True),  # written to while scanned: the ranges match what the scan saw
        (10, 10, 10, 8, False),  # the ranges miss what the scan saw
        (12, 12, 10, 10, False),  # quiet, yet holding more than the scan saw
    ],
)
def test_a_plan_matches_when_its_ranges_match_its_scan_and_a_quiet_collection_holds_no_more(
    before, after, planned, in_ranges, matches
):
    check = PlanCheck(before, after, planned, in_ranges)

    assert check.matches() is matches
    assert str(check) == (
        f"{before} documents before the plan's scan and {after} after it, which saw {planned}; "
        f"its _id ranges now match {in_ranges}"
    )
