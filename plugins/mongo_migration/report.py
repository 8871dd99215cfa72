"""The run report that ``verify`` logs and returns: what moved, how fast, and where the time went."""

from __future__ import annotations

from collections import Counter

STAGES = ("read_seconds", "convert_seconds", "copy_seconds")
SLOWEST_PAGES = 3


def summarize(page_results: list[dict], wall_seconds: float, caught_up: dict | None = None) -> dict:
    """Sum the pages' own metrics, with what the catch-up applied (``caught_up``, its result);
    ``wall_seconds`` is the run's time so far."""
    documents = sum(result["documents"] for result in page_results)
    slowest = sorted(page_results, key=lambda result: result["seconds"], reverse=True)[:SLOWEST_PAGES]
    absent, coerced = Counter(), Counter()
    for result in page_results:
        absent.update(result.get("absent", {}))
        coerced.update(result.get("coerced", {}))
    return {
        "documents": documents,
        "rejected": sum(result["rejected"] for result in page_results),
        "pages": len(page_results),
        "wall_seconds": round(wall_seconds, 1),
        "documents_per_second": round(documents / wall_seconds) if wall_seconds > 0 else None,
        "slowest_pages": [{"page": result["page"], "seconds": result["seconds"]} for result in slowest],
        **{stage: round(sum(result[stage] for result in page_results), 1) for stage in STAGES},
        "peak_memory_mb": max((result["peak_memory_mb"] for result in page_results), default=None),
        "absent": dict(absent),  # documents (or elements) without each nullable column's path
        "coerced": dict(coerced),  # values each column took by its declared coercion
        "changes": (caught_up or {}).get("changes", 0),  # from the change stream, by the catch-up
        "changed_documents": (caught_up or {}).get("documents", 0),
    }


def summary_line(summary: dict) -> str:
    """The whole run in one line: the log, and the extra of the table's asset event."""
    changes = summary.get("changes", 0)
    applied = (
        f"{changes} changes ({summary.get('changed_documents', 0)} documents) applied from the change stream"
    )
    if not summary["pages"]:  # an incremental run, or an empty collection
        return f"{applied}, {summary['wall_seconds']} s wall"
    line = f"{summary['documents']} documents ({summary['rejected']} rejected) in {summary['pages']} pages, "
    if changes:
        line = f"{line}{applied}, "
    slowest = summary["slowest_pages"][0]
    return line + (
        f"{summary['wall_seconds']} s wall, {summary['documents_per_second']} documents/s; "
        f"slowest page {slowest['page']} ({slowest['seconds']} s); "
        f"pages spent {summary['read_seconds']} s reading, {summary['convert_seconds']} s converting, "
        f"{summary['copy_seconds']} s copying; largest page process peaked at {summary['peak_memory_mb']} MB"
    )


def markdown_report(
    summary: dict,
    source: str,
    target: str,
    written: int,
    copy: str,
    point: str,
    rejects_by_column: dict[str, int],
    columns: list[dict] = (),
) -> str:
    """A short report for people: the counts, the point of the source copied, the rejects by column, the
    speed, the slowest pages; and, of a full copy, each column's NULLs against the live table's
    (``target.column_counts``), those the mapping changed marked."""
    slowest = ", ".join(f"page {page['page']} ({page['seconds']} s)" for page in summary["slowest_pages"])
    by_column = ", ".join(f"{column}: {count:,}" for column, count in rejects_by_column.items())
    rows = [
        ("Source (MongoDB)", f"`{source}`"),
        ("Target (PostgreSQL)", f"`{target}`"),
        ("Copy", copy),
        ("Consistent with the source", point),
        ("Documents read", f"{summary['documents']:,}"),
        ("Rows written", f"{written:,}"),
        ("Rejected (kept in `_rejects` with their reason)", f"{summary['rejected']:,}"),
        ("Changes applied from the change stream", f"{summary.get('changes', 0):,}"),
        ("Rejects in the target, by column", by_column or "none"),
        ("Pages", f"{summary['pages']:,}"),
        ("Wall time", f"{summary['wall_seconds']} s"),
        ("Throughput", f"{summary['documents_per_second'] or 0:,} documents/s"),
        ("Slowest pages", slowest or "none"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    report = f"### Migration report\n\n| | |\n| --- | --- |\n{table}\n"
    if columns:
        report += (
            "\n#### Columns\n\n"
            "| column | path | NULL in the copy | NULL in the live table | path absent | coerced |\n"
            "| --- | --- | --- | --- | --- | --- |\n"
        )
        report += "".join(_column_line(found) for found in columns)
    return report


def _column_line(found: dict) -> str:
    """A column's NULLs in the copy and the live table, and where its path was absent, as a table row."""
    copy = _share(found["nulls"], found["rows"])
    live = "no such column" if found["live_rows"] is None else _share(found["live_nulls"], found["live_rows"])
    path = ".".join(found["path"])
    changed = " (changed)" if found["judged"] else ""
    return (
        f"| {found['table']}.{found['column']}{changed} | `{path}` | {copy} | {live} | {found['absent']:,} | "
        f"{found['coerced']:,} |\n"
    )


def _share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,}" + (f" ({100 * part / whole:.1f}%)" if whole else "")


def copy_line(mode: str, reason: str | None, verified: str, changing: int) -> str:
    """How the run copied and what verify proved (``verified``), for the report's "Copy" row."""
    line = (f"{mode}: {reason}" if reason else mode) + f"; verified: {verified}"
    if changing:
        line += f", but {changing} documents changing in every round, as the stream showed them"
    return line


def published_line(result: dict) -> str:
    """What publish did, in one line (``target.publish``'s result)."""
    return (
        f"{result['method']}: {result['rows']} rows and {result['rejects']} rejects ({result['inserted']} "
        f"inserted, {result['updated']} updated, {result['deleted']} deleted)"
    )


def asset_extra(run_id: str, source: str, mode: str | None, summary: str, result: dict) -> dict:
    """The extra of the published table's asset event: the run, its source, how it copied, its summary and
    what publish did, with the versions but the mapping's whole shape (the published state keeps it)."""
    versions = {key: value for key, value in (result.get("versions") or {}).items() if key != "shape"}
    return {
        "run_id": run_id,
        "source": source,
        "mode": mode,
        "summary": summary,
        **result,
        "versions": versions,
    }
