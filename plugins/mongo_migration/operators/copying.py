"""The copy: plan the ``_id`` range pages, copy each page, and catch up from the change stream."""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from mongo_migration import copy_mode
from mongo_migration.changes import changed_since
from mongo_migration.connections import mongo_hook
from mongo_migration.documents import Conversion
from mongo_migration.operators.base import (
    NO_CHANGE_STREAM,
    OPTION_FIELDS,
    SOURCE_FIELDS,
    TARGET_FIELDS,
    SourceOperator,
    SourceToTargetOperator,
    catch_up_or_fail,
    owner_of,
    violations_fail_the_run,
)
from mongo_migration.page_copy import copy_page, read_page
from mongo_migration.pages import Page, fewer_pages, mismatch, plan_and_check
from mongo_migration.positions import Position, consistency, session_as_of


class PlanPagesOperator(SourceOperator):
    """Cut the source collection into ``_id`` ranges of ``items_per_page`` documents.

    The plan is checked against the source before any page runs: what its
    ranges match must be what its scan saw, and a collection that did not
    change while it was scanned must hold no more than the scan saw. A
    collection that changed since the change stream's ``start`` may differ:
    the catch-up applies those changes. An incremental run (``start``, from
    ``open_change_stream``) has no pages to copy.
    """

    template_fields: Sequence[str] = ("start", *SOURCE_FIELDS, *OPTION_FIELDS)

    def __init__(self, *, start: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.start = start

    def execute(self, context: Any) -> list[dict]:
        items_per_page = self.run_options().items_per_page
        self.declare_source_inlet()
        copy = copy_mode.Copy.from_xcom(self.start)
        if copy.mode == "incremental":  # plan_pages and migrate_page show skipped
            raise AirflowSkipException(
                f"an incremental run: no pages to copy; catch_up applies the changes of {self.source_name()} "
                f"since {Position.from_json(copy.position)}"
            )
        stream_start = copy.position
        with mongo_hook(self.mongo_conn_id) as hook:
            source = self.source(hook)
            # MongoDB reads a missing collection as an empty one; a typo must not "migrate" nothing.
            if not source.database.list_collection_names(filter={"name": self.mongo_collection}):
                raise AirflowFailException(
                    f"Collection {self.mongo_collection!r} does not exist in MongoDB database "
                    f"{self.mongo_database!r} (connection {self.mongo_conn_id!r})"
                )
            with session_as_of(source, stream_start) as session:  # on a secondary: as of the start or later
                pages, check = plan_and_check(source, items_per_page, session)
            if stream_start and changed_since(source, Position.from_json(stream_start)):
                changed = "%s changed while it was planned (%s): the catch-up applies those changes"
                self.log.info(changed, self.source_name(), check)
            elif not check.matches():  # retried: a write while planning (with no change stream) goes away
                raise AirflowException(mismatch(source, pages, check, streaming=bool(stream_start)))
        most = conf.getint("core", "max_map_length")  # the most tasks Airflow maps
        try:
            merged = fewer_pages(pages, most)
        except ValueError as error:
            hint = "raise [core] max_map_length"
            raise AirflowFailException(f"{self.source_name()} cannot be planned: {error}; {hint}") from None
        biggest = max((page.planned_documents for page in merged), default=0)
        if len(merged) < len(pages):
            self.log.warning(MERGED, len(pages), items_per_page, most, len(merged), biggest)
        planned = f"{len(merged)} pages of at most {biggest} documents for {check.planned} documents"
        self.log.info("Planned %s of %s", planned, self.source_name())
        return [page.to_xcom() for page in merged]


MERGED = (
    "%s pages of %s documents would be more than [core] max_map_length (%s) mapped tasks: merged into %s "
    "pages of up to %s documents (raise max_map_length, on the scheduler and the API server alike, to keep "
    "the smaller pages)"
)


class MigratePageOperator(SourceToTargetOperator):
    """Copy one page of the source collection into the staging table (see ``page_copy``).

    The page's old rows are deleted and its documents copied in one
    transaction, so running a page again replaces it exactly. It reads the
    source as of the run's ``start`` or later (``positions.session_as_of``), on a
    secondary too.
    """

    template_fields: Sequence[str] = ("start", *TARGET_FIELDS, *SOURCE_FIELDS)

    def __init__(self, *, page: dict, start: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.page = page
        self.start = start  # what open_change_stream chose

    def execute(self, context: Any) -> dict:
        page = Page.from_xcom(self.page)
        context["page_label"] = page.label()  # the map_index_template in the DAG shows it in the grid
        self.declare_source_inlet()
        started = time.monotonic()
        position = copy_mode.Copy.from_xcom(self.start).position
        tables = self.tables()
        with mongo_hook(self.mongo_conn_id) as mongo, self.target_connection() as conn:
            source = self.source(mongo)
            with session_as_of(source, position) as session, violations_fail_the_run():
                batches = read_page(source, page, session)
                stats = copy_page(batches, conn, tables, Conversion(self.mapping), owner_of(context), page)
        seconds = time.monotonic() - started
        self.log.info(
            "Page %s: copied %s documents into the staging tables of %s in %.2f s "
            "(read %.2f s, convert %.2f s, copy %.2f s)",
            page.number,
            stats.documents,
            tables,
            seconds,
            stats.read_seconds,
            stats.convert_seconds,
            stats.copy_seconds,
        )
        return {
            "page": page.number,
            "seconds": round(seconds, 3),
            **stats.as_dict(),
            "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }


class CatchUpOperator(SourceToTargetOperator):
    """Apply to the staging tables every change since this run's start in the source's stream (``changes``).

    Batch by batch, each with the position it reaches, so a retry resumes from
    the last batch committed. Read to its end, the stream leaves the staging
    tables equal to the source as of the last change applied.
    """

    template_fields: Sequence[str] = (*TARGET_FIELDS, *SOURCE_FIELDS)

    def execute(self, context: Any) -> dict:
        self.declare_source_inlet()
        started = time.monotonic()
        tables = self.tables()
        with mongo_hook(self.mongo_conn_id) as hook, self.target_connection() as conn:
            result = catch_up_or_fail(self, self.source(hook), conn, tables, owner_of(context))
        if result.position is None:
            self.log.warning(NO_CHANGE_STREAM, self.source_name())
        else:
            self.log.info(
                "Applied %s changes of %s (%s documents, %s of them set aside) in %s batches, %.1f s: "
                "the staging tables of %s equal the source %s",
                result.changes,
                self.source_name(),
                result.documents,
                result.rejected,
                result.batches,
                time.monotonic() - started,
                tables,
                consistency(result.position),
            )
        if not result.quiet:
            self.log.warning("The point of %s is not exact: %s", tables, result.position.get("inexact"))
        return {
            "changes": result.changes,
            "documents": result.documents,
            "position": result.position,
            "quiet": result.quiet,
        }
