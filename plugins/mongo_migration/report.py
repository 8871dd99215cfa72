"""The run summary that ``verify`` logs and returns: what moved, how fast, and where the time went."""

from __future__ import annotations

STAGES = ("read_seconds", "convert_seconds", "copy_seconds")


def summarize(page_results: list[dict], wall_seconds: float) -> dict:
    """Sum the pages' own metrics; ``wall_seconds`` is the run's time so far."""
    documents = sum(result["documents"] for result in page_results)
    slowest = max(page_results, key=lambda result: result["seconds"], default=None)
    return {
        "documents": documents,
        "rejected": sum(result["rejected"] for result in page_results),
        "pages": len(page_results),
        "wall_seconds": round(wall_seconds, 1),
        "documents_per_second": round(documents / wall_seconds) if wall_seconds > 0 else None,
        "slowest_page": slowest and {"page": slowest["page"], "seconds": slowest["seconds"]},
        **{stage: round(sum(result[stage] for result in page_results), 1) for stage in STAGES},
        "peak_memory_mb": max((result["peak_memory_mb"] for result in page_results), default=None),
    }


def summary_line(summary: dict) -> str:
    slowest = summary["slowest_page"]
    return (
        f"{summary['documents']} documents ({summary['rejected']} rejected) in {summary['pages']} pages, "
        f"{summary['wall_seconds']} s wall, "
        f"{summary['documents_per_second']} documents/s; "
        + (f"slowest page {slowest['page']} ({slowest['seconds']} s); " if slowest else "")
        + f"pages spent {summary['read_seconds']} s reading, {summary['convert_seconds']} s converting, "
        f"{summary['copy_seconds']} s copying; largest page process peaked at {summary['peak_memory_mb']} MB"
    )
