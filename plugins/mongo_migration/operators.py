"""The operators of the DAGs that copy a collection, one DAG per mapping (``dags/mongo_to_postgres.py``).

Each one creates its hooks in ``execute`` and leaves the work to the modules
beside it: ``users`` (seeding), ``copy_mode`` (full or incremental, and why),
``pages`` (planning and the plan's check), ``page_copy`` (one page: read,
convert, COPY), ``documents`` (the rows of a document, by its mapping),
``changes`` (the change stream), ``verification`` and ``target`` (the SQL, the
staging tables and publishing). The mapping (``mapping.py``) gives every
operator that writes the target the shape of its tables.

Lineage: the source collection (the Mongo provider's
``mongodb://host:port/database/collection``) is the inlet of each task that
reads it, declared when the task runs, since its host comes from the
connection, which the DAG file must not read at import. The table
(``postgres://host:port/database/schema/table``) is what ``publish`` emits
through its outlet, the asset alias ``asset_alias(dag_id)``.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any

from airflow.providers.mongo.assets.mongo import create_asset as mongo_asset
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.assets.postgres import create_asset as postgres_asset
from airflow.sdk import Asset, AssetAlias, BaseHook, BaseOperator
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from psycopg import Connection
from pydantic import ValidationError
from pymongo.collection import Collection
from pymongo.read_concern import ReadConcern

from include import config
from mongo_migration import copy_mode, preflight, target
from mongo_migration.changes import (
    CATCH_UP_GRACE_SECONDS,
    CatchUp,
    ChangeHistoryLost,
    Position,
    StreamInvalidated,
    catch_up,
    changed_since,
    consistency,
    open_position,
    session_as_of,
)
from mongo_migration.connections import (
    UnreachableError,
    mongo_hook,
    mongo_hosts,
    postgres_connection,
)
from mongo_migration.documents import CODEC_OPTIONS, Conversion, ViolationFailsRun
from mongo_migration.mapping import Mapping
from mongo_migration.page_copy import copy_page, read_page
from mongo_migration.pages import Page, fewer_pages, mismatch, plan_and_check
from mongo_migration.report import summarize
from mongo_migration.run_options import RunOptions
from mongo_migration.target import Owner, Tables
from mongo_migration.users import seed_users
from mongo_migration.verification import (
    ROUNDS,
    Proof,
    count_staged,
    failure,
    prove,
    verify_against,
)


def asset_alias(dag_id: str) -> str:
    """The asset alias in whose events publish names the table it published."""
    return f"{dag_id}_target"


_SOURCE_FIELDS = ("mongo_database", "mongo_collection", "options")
_TARGET_FIELDS = ("target_table", "target_schema")


def _owner(context: Any) -> Owner:
    """This run, the owner of the staging tables it loads."""
    return Owner(dag_id=context["dag_run"].dag_id, run_id=context["dag_run"].run_id)


class _SourceOperator(BaseOperator):
    """An operator that reads the source collection through the ``mongo_conn_id`` connection, and the
    run's ``options`` (rendered from the Params by ``RunOptions.templates``; unset ones take their
    defaults)."""

    def __init__(
        self,
        *,
        mongo_database: str,
        mongo_collection: str,
        mongo_conn_id: str = "mongo_default",
        options: dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.mongo_database = mongo_database
        self.mongo_collection = mongo_collection
        self.mongo_conn_id = mongo_conn_id
        self.options = options or {}

    def run_options(self) -> RunOptions:
        try:
            return RunOptions.read(self.options)
        except ValidationError as error:  # a form the trigger did not check (the API, a CLI's --conf)
            raise AirflowFailException(f"the run's options cannot be used: {error}") from None

    def source(self, hook: MongoHook) -> Collection:
        """The collection, read at read concern "majority": what the change stream shows, so that a write
        a failover rolls back (which the stream never reports) is never copied."""
        return hook.get_collection(self.mongo_collection, self.mongo_database).with_options(
            codec_options=CODEC_OPTIONS, read_concern=ReadConcern("majority")
        )

    def source_name(self) -> str:
        return f"{self.mongo_database}.{self.mongo_collection}"

    def declare_source_inlet(self) -> Asset:
        """The source collection as this task's inlet, in the Mongo provider's asset form."""
        # A replica set's first listed member names it, as OpenLineage names a MongoDB by one address.
        [(host, port), *_] = mongo_hosts(BaseHook.get_connection(self.mongo_conn_id))
        asset = mongo_asset(
            host=host,
            port=port,
            database=self.mongo_database,
            collection=self.mongo_collection,
        )
        self.inlets = [asset]
        return asset


class _TargetOperator(BaseOperator):
    """An operator that works on the target table, shaped by ``mapping``, through the ``postgres_conn_id``
    connection."""

    def __init__(
        self,
        *,
        mapping: Mapping,
        target_table: str,
        target_schema: str = "public",
        postgres_conn_id: str = "postgres_default",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.mapping = mapping
        self.target_table = target_table
        self.target_schema = target_schema
        self.postgres_conn_id = postgres_conn_id

    def target_connection(self) -> AbstractContextManager[Connection]:
        return postgres_connection(self.postgres_conn_id, application_name=f"mongo_migration:{self.task_id}")

    def tables(self) -> Tables:
        """The target table with its rejects and child tables, as the mapping shapes them."""
        try:
            return Tables(self.target_schema, self.target_table, self.mapping)
        except ValueError as error:
            raise AirflowFailException(str(error)) from None

    def target_asset(self) -> Asset:
        """The live table, in the Postgres provider's asset form."""
        connection = BaseHook.get_connection(self.postgres_conn_id)
        return postgres_asset(
            host=connection.host or "localhost",
            port=connection.port or 5432,
            database=connection.schema or connection.login,  # libpq's default database is the user's name
            schema=self.target_schema,
            table=self.target_table,
        )


class _SourceToTargetOperator(_SourceOperator, _TargetOperator):
    """An operator that reads the source collection and works on the target table."""


class ResetTableOperator(_TargetOperator):
    """Recreate the staging tables of the target table, owned by this run; the live table stays."""

    template_fields: Sequence[str] = _TARGET_FIELDS

    def execute(self, context: Any) -> None:
        owner = _owner(context)

        def still_running(other: Owner) -> bool:
            states = ["queued", "running"]
            return context["ti"].get_dr_count(dag_id=other.dag_id, run_ids=[other.run_id], states=states) > 0

        tables = self.tables()
        with self.target_connection() as conn:
            previous = target.reset_table(conn, tables, owner, still_running)
        if previous:
            self.log.warning("Took the staging tables of %s over from %s, which has ended", tables, previous)
        self.log.info(
            "Recreated the staging tables of %s (%s) for %s", tables, ", ".join(tables.relations), owner
        )


class PreflightOperator(_SourceToTargetOperator):
    """Check the source and the target before anything is written, and fail listing every problem at once.

    The checks (``preflight``) read only: the source's version, change stream,
    collection and privileges; the target's schemas and privileges. With
    ``dry_run`` it then reports what the run would do (full or incremental and
    why, documents and pages, what publish would say of the live table) and
    skips the rest of the run: nothing is written anywhere.
    """

    template_fields: Sequence[str] = (*_TARGET_FIELDS, *_SOURCE_FIELDS)

    def execute(self, context: Any) -> dict:
        options = self.run_options()
        tables = self.tables()
        with ExitStack() as stack:
            found, opened = preflight.check(
                lambda: self.source(stack.enter_context(mongo_hook(self.mongo_conn_id))),
                lambda: stack.enter_context(self.target_connection()),
                (self.mongo_conn_id, self.postgres_conn_id),
                tables,
                must_exist=options.seed_users == 0,  # a run that seeds may find no collection yet
                mode=options.mode,
                versions=copy_mode.versions_of(self.mapping),
                note_mapping_change=not options.dry_run,  # a dry run's copy line names it
            )
            if refused := preflight.refusal(found, self.source_name(), tables):
                # A server that did not answer may answer the task's retry; a wrong privilege will not.
                raise UnreachableError(refused) if found.unreachable else AirflowFailException(refused)
            for note in found.notes:
                self.log.warning("Preflight: %s", note)
            for fact in found.facts:
                self.log.info("Preflight: %s", fact)
            self.log.info("Preflight: source %s and target %s are ready", self.source_name(), tables)
            if not options.dry_run:
                return {"notes": found.notes}
            most, dag_id = conf.getint("core", "max_map_length"), context["dag_run"].dag_id
            report = copy_mode.dry_run_report(
                opened.source, opened.conn, tables, self.mapping, options, most, dag_id
            )
            report += [f"- note: {note}" for note in found.notes + found.facts]
        self.log.info("Dry run: what this run would do, had it not been a dry run:\n%s", "\n".join(report))
        raise AirflowSkipException(
            "a dry run: nothing was written and the rest of the run is skipped; it would do:\n"
            + "\n".join(report)
        )


class SeedUsersOperator(_SourceOperator):
    """Ensure the source collection holds fake users 0 to ``users - 1`` (0 leaves it alone).

    It writes into the source, so it does so only where the deployment allows
    it (``config.seeding_allowed``) and only in a run a person triggered,
    never a scheduled one.
    """

    template_fields: Sequence[str] = _SOURCE_FIELDS

    def __init__(self, *, faker_seed: int, **kwargs):
        super().__init__(**kwargs)
        self.faker_seed = faker_seed

    def execute(self, context: Any) -> int:
        users = self.run_options().seed_users
        if users == 0:
            self.log.info("Seeding is off (seed_users = 0): %s is left as it is", self.source_name())
            return 0
        if context["dag_run"].run_type != "manual":  # scheduled, backfilled, triggered by an asset
            self.log.info(
                "Only a run a person triggers writes to the source: %s is unchanged", self.source_name()
            )
            return 0
        if not config.seeding_allowed():
            raise AirflowFailException(
                f"seed_users is {users}, but this deployment does not allow writing fake users into the "
                f"source {self.source_name()}: nothing was written. Set seed_users to 0, or set "
                f"{config.ALLOW_SEEDING_VARIABLE}=true where the source is a test database."
            )
        started = time.monotonic()
        with mongo_hook(self.mongo_conn_id) as hook:
            inserted = seed_users(self.source(hook), users, self.faker_seed)
        self.log.info(
            "Inserted %s users into %s in %.1f s: users 0 to %s are all there now",
            inserted,
            self.source_name(),
            time.monotonic() - started,
            users - 1,
        )
        return inserted


LABEL_LENGTH = 250  # Airflow keeps this much of a rendered map_index_template


class OpenChangeStreamOperator(_SourceToTargetOperator):
    """Choose how this run copies the source, and record where its change stream starts.

    Incremental (the ``mode`` Param's default) when the live table's last publish
    recorded a point of this same collection, the source still holds the changes
    since, and nobody changed the table's rows since: the staging tables start
    empty, the catch-up writes there the documents changed since that point, and
    verify and publish take the live rows for the others. Otherwise a full copy,
    saying why: the stream starts now, before anything of this run reads the
    collection. A source without change streams (a standalone ``mongod``) has no
    point at all: the run copies it in full, warning that the copy is consistent
    only if nothing writes to it meanwhile.
    """

    template_fields: Sequence[str] = (*_TARGET_FIELDS, *_SOURCE_FIELDS)

    def execute(self, context: Any) -> dict:
        mode = self.run_options().mode
        self.declare_source_inlet()
        owner = _owner(context)
        tables = self.tables()
        with mongo_hook(self.mongo_conn_id) as hook, self.target_connection() as conn:
            source = self.source(hook)
            start, fingerprint, reason = copy_mode.why_full(
                mode, copy_mode.versions_of(self.mapping), source, conn, tables
            )
            if reason is None and not target.start_incremental(conn, tables, owner, start, fingerprint):
                reason = copy_mode.CHANGED_BY_SOMEONE_ELSE.format(tables=tables)
            if reason is not None:
                position = open_position(source)
                start = position.to_json() if position else None
                target.record_start(conn, tables, owner, start)
        if reason is None:
            self.log.info(
                "Incremental: the changes of %s since %s, the point %s was published as of",
                self.source_name(),
                Position.from_json(start),
                tables,
            )
        elif mode == "full":
            self.log.info("A full copy of %s: %s", self.source_name(), reason)
        else:
            self.log.warning(
                "A full copy of %s instead of an incremental one: %s", self.source_name(), reason
            )
        if start is None:
            self.log.warning(NO_CHANGE_STREAM, self.source_name())
        elif reason is not None:
            self.log.info(
                "The change stream of %s starts at %s", self.source_name(), Position.from_json(start)
            )
        # The DAG's map_index_template shows it beside the task in the run's task list: no log to open.
        label = f"full: {reason}" if reason else f"incremental: the changes since {Position.from_json(start)}"
        cut = " … (its log has the rest)"
        context["copy_mode"] = label if len(label) <= LABEL_LENGTH else label[: LABEL_LENGTH - len(cut)] + cut
        return copy_mode.Copy("full" if reason else "incremental", reason, start).to_xcom()


STILL_CHANGING_IN_VERIFY = (
    "%s documents changed again in each of %s catch-up rounds, faster than verify reads them: each "
    "difference was a change the copy then applied, and their rows are as the stream showed them last "
    "(not proven against a read of the source): %s"
)
NO_CHANGE_STREAM = (
    "%s has no change stream (a standalone mongod?): this copy is consistent only if nothing "
    "writes to the collection while the run copies it"
)


class PlanPagesOperator(_SourceOperator):
    """Cut the source collection into ``_id`` ranges of ``items_per_page`` documents.

    The plan is checked against the source before any page runs: what its
    ranges match must be what its scan saw, and a collection that did not
    change while it was scanned must hold no more than the scan saw. A
    collection that changed since the change stream's ``start`` may differ:
    the catch-up applies those changes. An incremental run (``start``, from
    ``open_change_stream``) has no pages to copy.
    """

    template_fields: Sequence[str] = ("start", *_SOURCE_FIELDS)

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
                self.log.info(
                    "%s changed while it was planned (%s): the catch-up applies those changes",
                    source.full_name,
                    check,
                )
            elif not check.matches():  # retried: a write while planning (with no change stream) goes away
                raise AirflowException(mismatch(source, pages, check, streaming=bool(stream_start)))
        most = conf.getint("core", "max_map_length")  # the most tasks Airflow maps
        try:
            merged = fewer_pages(pages, most)
        except ValueError as error:
            hint = "raise [core] max_map_length"
            raise AirflowFailException(f"{self.source_name()} cannot be planned: {error}; {hint}") from None
        if len(merged) < len(pages):
            biggest = max(page.planned_documents for page in merged)
            self.log.warning(MERGED, len(pages), items_per_page, most, len(merged), biggest)
        self.log.info(
            "Planned %s pages of at most %s documents for %s documents of %s",
            len(merged),
            max((page.planned_documents for page in merged), default=0),
            check.planned,
            self.source_name(),
        )
        return [page.to_xcom() for page in merged]


MERGED = (
    "%s pages of %s documents would be more than [core] max_map_length (%s) mapped tasks: merged into %s "
    "pages of up to %s documents (raise max_map_length, on the scheduler and the API server alike, to keep "
    "the smaller pages)"
)


class MigratePageOperator(_SourceToTargetOperator):
    """Copy one page of the source collection into the staging table (see ``page_copy``).

    The page's old rows are deleted and its documents copied in one
    transaction, so running a page again replaces it exactly. It reads the
    source as of the run's ``start`` or later (``changes.session_as_of``), on a
    secondary too.
    """

    template_fields: Sequence[str] = ("start", *_TARGET_FIELDS, *_SOURCE_FIELDS)

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
            with session_as_of(source, position) as session, _violations_fail_the_run():
                batches = read_page(source, page, session)
                stats = copy_page(batches, conn, tables, Conversion(self.mapping), _owner(context), page)
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


class CatchUpOperator(_SourceToTargetOperator):
    """Apply to the staging tables every change since this run's start in the source's stream (``changes``).

    Batch by batch, each with the position it reaches, so a retry resumes from
    the last batch committed. Read to its end, the stream leaves the staging
    tables equal to the source as of the last change applied.
    """

    template_fields: Sequence[str] = (*_TARGET_FIELDS, *_SOURCE_FIELDS)

    def execute(self, context: Any) -> dict:
        self.declare_source_inlet()
        started = time.monotonic()
        tables = self.tables()
        with mongo_hook(self.mongo_conn_id) as hook, self.target_connection() as conn:
            result = _catch_up_or_fail(self, self.source(hook), conn, tables, _owner(context))
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


def _catch_up_or_fail(
    task: _SourceToTargetOperator,
    source: Collection,
    conn: Connection,
    tables: Tables,
    owner: Owner,
    watched: set[str] = frozenset(),
    grace_seconds: float = CATCH_UP_GRACE_SECONDS,
):
    """``changes.catch_up``, a stream that cannot resume failing the run by name."""
    try:
        with _violations_fail_the_run():
            conversion = Conversion(task.mapping)
            return catch_up(source, conn, tables, conversion, owner, watched, grace_seconds)
    except (ChangeHistoryLost, StreamInvalidated) as error:
        target.forget_published_point(conn, tables, str(error))
        raise AirflowFailException(
            f"{task.source_name()} cannot be caught up: {error}. Nothing was published; the next run "
            "copies the collection in full, finding the same"
        ) from None


class VerifyMigrationOperator(_SourceToTargetOperator):
    """Fail unless the staging tables hold exactly the ``_id`` values the source holds (``verification``).

    Every ``_id`` of the source is read again and compared with the staging
    tables. A difference that a change since the catch-up explains is caught
    up and read again; one that no change explains fails the run, naming the
    ``_id`` values, and so does an ``_id`` held twice. Returns the proof
    (``verification.Proof``) that publish checks.
    """

    template_fields: Sequence[str] = ("page_results", "caught_up", "start", *_TARGET_FIELDS, *_SOURCE_FIELDS)

    def __init__(
        self,
        *,
        page_results: list[dict],
        caught_up: dict | None = None,
        start: dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.page_results = page_results
        self.caught_up = caught_up  # what catch_up applied
        self.start = start  # what open_change_stream chose (copy_mode.Copy)

    def execute(self, context: Any) -> dict:
        # A slice fetches every page's result in one request, not one request per page.
        page_results = list((self.page_results or [])[:])
        self.declare_source_inlet()
        copy = copy_mode.Copy.from_xcom(self.start)
        content = self.run_options().verify_content  # every document's content, not only its _id
        owner, conversion = _owner(context), Conversion(self.mapping)
        with mongo_hook(self.mongo_conn_id) as hook, self.target_connection() as conn:
            source = self.source(hook)

            def catch_up_again(tables: Tables, keys: set[str]) -> CatchUp:
                return _catch_up_or_fail(self, source, conn, tables, owner, keys, grace_seconds=0)

            with _violations_fail_the_run():
                tables, check = verify_against(
                    source, conn, self.tables(), conversion, content, catch_up_again
                )
            wall_seconds = (datetime.now(UTC) - context["dag_run"].start_date).total_seconds()
            run = summarize(page_results, wall_seconds, self.caught_up)
            staged = count_staged(conn, tables, self.mapping, copy.mode == "full", run)
        self.log.info(
            "Source %s: %s _id values read again; target %s: %s rows and %s rejects; %s catch-up rounds",
            self.source_name(),
            check.source,
            tables,
            staged.rows,
            staged.rejected,
            check.rounds,
        )
        for column, reason, count in staged.reject_reasons:
            where = f"column {column}" if column else "the document as a whole"
            self.log.warning("%s documents set aside in %s for %s: %s", count, tables.rejects, where, reason)
        if differ := failure(check, self.source_name(), tables):
            raise AirflowFailException(differ)
        if check.changing:
            self.log.warning(STILL_CHANGING_IN_VERIFY, len(check.changing), ROUNDS, check.changing[:10])
        if staged.position is None:
            self.log.warning(NO_CHANGE_STREAM, self.source_name())
        seconds = _stream_seconds(copy.position)
        proof = prove(copy, check, staged, run, self.source_name(), tables, content, seconds)
        self.log.info(
            "Verified: the target holds every _id of the source, %s as rejects; consistent with it %s",
            staged.rejected,
            consistency(staged.position),
        )
        self.log.info("Run summary: %s", proof.summary)
        self.log.info("Run report:\n%s", proof.report)
        return proof.to_xcom()


def _stream_seconds(start: dict | None) -> float | None:
    """How long the source's oplog has had to keep this run's ``start`` so far: until verify's last
    catch-up read the stream on from it, whatever the collection's own changes (the oplog is every
    collection's); None: no change stream."""
    return round(time.time() - start["cluster_time"]["t"], 1) if start else None


class PublishOperator(_SourceToTargetOperator):
    """Make the live table equal to this run's verified staging table in one transaction (target.publish).

    It refuses an unverified, empty or shrunken copy, or one with more rejects
    than allowed, unless a Param allows it for the run. Then an event of the
    asset alias ``asset_alias`` names the table as an Asset
    (``postgres://host:port/database/schema/table``), with the
    source collection, the run summary and what changed in its extra.
    """

    template_fields: Sequence[str] = ("verified", *_TARGET_FIELDS, *_SOURCE_FIELDS)

    def __init__(self, *, verified: dict | None, asset_alias: str, **kwargs):
        super().__init__(outlets=[AssetAlias(asset_alias)], **kwargs)
        self.verified = verified
        self.asset_alias = asset_alias

    def execute(self, context: Any) -> dict:
        owner = _owner(context)
        source = self.declare_source_inlet()
        table = self.target_asset()
        options = self.run_options()
        proof = self.proof()
        guards = self.guards(proof, options)
        if proof is None:
            self.log.warning(
                "What a changed mapping emptied is not judged: verify returned no proof, and no column counts"
            )
        with self.target_connection() as conn:
            full_copy = proof.stream_seconds if proof and proof.mode == "full" else None
            result = target.publish(
                conn,
                self.tables(),
                owner,
                guards,
                options.publish_wait_seconds,
                copy_mode.versions_of(self.mapping),
                full_copy,
            )
        if result.get("already_published"):
            self.log.warning("%s was already published by %s (this is a retry)", table.name, owner)
        self.log.info(
            "Published %s, %s: %s rows and %s rejects (%s inserted, %s updated, %s deleted)",
            table.name,
            result["method"],
            result["rows"],
            result["rejects"],
            result["inserted"],
            result["updated"],
            result["deleted"],
        )
        context["outlet_events"][AssetAlias(self.asset_alias)].add(
            table,
            extra={
                "run_id": owner.run_id,
                "source": source.uri,
                "mode": proof.mode if proof else None,
                "summary": proof.summary if proof else "",
                **result,
                # the versions without the mapping's whole shape, which the published state keeps
                "versions": {
                    key: value for key, value in (result.get("versions") or {}).items() if key != "shape"
                },
            },
        )
        return result

    @staticmethod
    def guards(proof: Proof | None, options: RunOptions) -> target.Guards:
        """What publish refuses: a copy that is not the one verify proved, and what ``options`` limit."""
        return target.Guards(
            verified=(proof.target, proof.rejected) if proof else None,
            options=options,
            columns=proof.columns if proof else None,
        )

    def proof(self) -> Proof | None:
        """What verify proved; None: it returned nothing (marked successful by hand)."""
        if not self.verified:
            return None
        try:
            return Proof.from_xcom(self.verified)
        except TypeError as error:
            raise AirflowFailException(
                f"verify's result cannot be read ({error}): it was written by another version of this "
                "project. Nothing was published; run the DAG again"
            ) from None


@contextmanager
def _violations_fail_the_run() -> Iterator[None]:
    """A violation of a column whose mapping says ``on_violation: fail`` fails the run, not to be retried."""
    try:
        yield
    except ViolationFailsRun as error:
        raise AirflowFailException(str(error)) from None
