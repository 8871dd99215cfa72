"""The run summary: pure functions."""

from mongo_migration.report import markdown_report, summarize, summary_line


def page(number, documents, seconds, rejected=0, absent=None):
    return {
        "absent": absent or {},
        "page": number,
        "documents": documents,
        "rejected": rejected,
        "seconds": seconds,
        "read_seconds": seconds / 2,
        "convert_seconds": seconds / 4,
        "copy_seconds": seconds / 4,
        "peak_memory_mb": 100 + number,
    }


def test_summary_adds_up_the_pages_and_names_the_slowest():
    summary = summarize(
        [
            page(0, 8000, 2.0, absent={"email": 5}),
            page(1, 8000, 6.0, rejected=3, absent={"email": 1, "items.sku": 2}),
            page(2, 4000, 1.0),
        ],
        wall_seconds=10.0,
    )

    assert summary == {
        "documents": 20000,
        "rejected": 3,
        "pages": 3,
        "wall_seconds": 10.0,
        "documents_per_second": 2000,
        "slowest_pages": [
            {"page": 1, "seconds": 6.0},
            {"page": 0, "seconds": 2.0},
            {"page": 2, "seconds": 1.0},
        ],
        "read_seconds": 4.5,
        "convert_seconds": 2.2,
        "copy_seconds": 2.2,
        "peak_memory_mb": 102,
        "absent": {"email": 6, "items.sku": 2},
        "coerced": {},
        "changes": 0,
        "changed_documents": 0,
    }
    assert "slowest page 1 (6.0 s)" in summary_line(summary)


def test_summary_of_a_run_without_pages_has_no_slowest_page():
    summary = summarize([], wall_seconds=3.0)
    assert summary["documents"] == summary["pages"] == 0
    assert summary["slowest_pages"] == []
    assert summary_line(summary) == "0 changes (0 documents) applied from the change stream, 3.0 s wall"
    report = markdown_report(summary, "app.users", "public.users", 0, "full", "as of a point", {})
    assert "| Slowest pages | none |" in report
    assert "| Rejects in the target, by column | none |" in report


def test_report_names_source_target_counts_speed_and_the_slowest_pages():
    pages = [page(n, 8000, float(n)) for n in range(5)]
    summary = summarize(pages, wall_seconds=20.0)

    by_column = {"(document)": 2, "age": 1_234}
    report = markdown_report(
        summary, "app.users", "public.users", 39_990, "incremental", "as of cluster time T", by_column
    )

    assert "| Source (MongoDB) | `app.users` |" in report
    assert "| Target (PostgreSQL) | `public.users` |" in report
    assert "| Copy | incremental |" in report
    assert "| Consistent with the source | as of cluster time T |" in report
    assert "| Documents read | 40,000 |" in report
    assert "| Rows written | 39,990 |" in report
    assert "| Rejects in the target, by column | (document): 2, age: 1,234 |" in report
    assert "| Throughput | 2,000 documents/s |" in report
    assert "| Slowest pages | page 4 (4.0 s), page 3 (3.0 s), page 2 (2.0 s) |" in report


def test_report_lists_each_columns_nulls_against_the_live_tables_and_where_its_path_was_absent():
    columns = [
        {"table": "orders", "column": "email", "path": ["customer", "emial"], "rows": 200, "nulls": 200}
        | {"live_rows": 200, "live_nulls": 20, "absent": 200, "coerced": 3, "judged": True},
        {"table": "orders", "column": "placed_at", "path": ["placed_at"], "rows": 200, "nulls": 0}
        | {"live_rows": None, "live_nulls": None, "absent": 0, "coerced": 0, "judged": False},
    ]

    report = markdown_report(summarize([], 1.0), "app.orders", "public.orders", 200, "full", "T", {}, columns)

    assert report.endswith(
        "| column | path | NULL in the copy | NULL in the live table | path absent | coerced |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        "| orders.email (changed) | `customer.emial` | 200 of 200 (100.0%) | 20 of 200 (10.0%) | 200 | 3 |\n"
        "| orders.placed_at | `placed_at` | 0 of 200 (0.0%) | no such column | 0 | 0 |\n"
    )


def test_an_incremental_run_is_summed_up_by_the_changes_it_applied_and_a_full_one_names_them_too():
    caught_up = {"changes": 102, "documents": 98, "position": None, "quiet": True}

    incremental = summarize([], wall_seconds=3.0, caught_up=caught_up)
    full = summarize([page(0, 8000, 2.0)], wall_seconds=4.0, caught_up=caught_up)

    assert (
        summary_line(incremental) == "102 changes (98 documents) applied from the change stream, 3.0 s wall"
    )
    assert summary_line(full).startswith(
        "8000 documents (0 rejected) in 1 pages, 102 changes (98 documents) applied from the change stream, "
        "4.0 s wall"
    )
    report = markdown_report(incremental, "app.users", "public.users", 10, "incremental", "T", {})
    assert "| Changes applied from the change stream | 102 |" in report
