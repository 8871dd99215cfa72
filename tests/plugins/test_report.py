"""The run summary: pure functions."""

from mongo_migration.report import summarize, summary_line


def page(number, documents, seconds, rejected=0):
    return {
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
        [page(0, 8000, 2.0), page(1, 8000, 6.0, rejected=3), page(2, 4000, 1.0)], wall_seconds=10.0
    )

    assert summary == {
        "documents": 20000,
        "rejected": 3,
        "pages": 3,
        "wall_seconds": 10.0,
        "documents_per_second": 2000,
        "slowest_page": {"page": 1, "seconds": 6.0},
        "read_seconds": 4.5,
        "convert_seconds": 2.2,
        "copy_seconds": 2.2,
        "peak_memory_mb": 102,
    }
    assert "slowest page 1 (6.0 s)" in summary_line(summary)


def test_summary_of_a_run_without_pages_has_no_slowest_page():
    summary = summarize([], wall_seconds=3.0)
    assert summary["documents"] == summary["pages"] == 0
    assert summary["slowest_page"] is None
    assert summary_line(summary).startswith("0 documents (0 rejected) in 0 pages")
