"""Page planning against the real MongoDB wire-protocol server."""

from bson.objectid import ObjectId

from mongo_migration.pages import Page, comparison_group, plan_pages, planned_range_filter, type_rank


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


def test_type_ranks_follow_mongodb_sort_order(mongo_collection, mixed_ids):
    mongo_collection.insert_many([{"_id": value} for value in mixed_ids])
    ranks = [type_rank(doc["_id"]) for doc in mongo_collection.find({}, sort=[("_id", 1)])]
    assert ranks == sorted(ranks)


def test_a_page_is_labelled_by_its_number_and_id_range():
    first, last = ObjectId("65a1b2c3d4e5f60718293a4b"), ObjectId("65a1b2c3d4e5f60718293a4c")

    assert Page(3, first, last, False, 2).label() == f"page 3: _id [{first}, {last})"
    assert Page(4, 7, "x" * 60, True, 2).label() == 'page 4: _id [7, "' + "x" * 38 + "…]"
    assert Page(5, None, None, True, 1).label() == "page 5: _id null"
