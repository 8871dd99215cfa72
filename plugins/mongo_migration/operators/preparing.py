"""The tasks before any page: reset the staging tables, check the source and the target (or report a dry
run), seed the users, and choose the copy and open the change stream."""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from psycopg import Connection
from pymongo.collection import Collection

from include import config
from mongo_migration import copy_mode, preflight, target
from mongo_migration.changes import ChangeHistoryLost, StreamInvalidated, catch_up, open_position
from mongo_migration.connections import UnreachableError, mongo_hook
from mongo_migration.documents import Conversion
from mongo_migration.operators.base import (
    NO_CHANGE_STREAM,
    OPTION_FIELDS,
    SOURCE_FIELDS,
    TARGET_FIELDS,
    SourceOperator,
    SourceToTargetOperator,
    TargetOperator,
    owner_of,
    violations_fail_the_run,
)
from mongo_migration.positions import Position
from mongo_migration.target import Owner, Tables
from mongo_migration.users import seed_users


class ResetTableOperator(TargetOperator):
    """Recreate the staging tables of the target table, owned by this run; the live table stays."""

    template_fields: Sequence[str] = TARGET_FIELDS

    def execute(self, context: Any) -> None:
        owner = owner_of(context)

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


class PreflightOperator(SourceToTargetOperator):
    """Check the source and the target before anything is written, and fail listing every problem at once.

    The checks (``preflight``) read only: the source's version, change stream,
    collection and privileges; the target's schemas and privileges. With
    ``dry_run`` it then reports what the run would do (full or incremental and
    why, documents and pages, what publish would say of the live table) and
    skips the rest of the run: nothing is written anywhere.
    """

    template_fields: Sequence[str] = (*TARGET_FIELDS, *SOURCE_FIELDS, *OPTION_FIELDS)

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


class SeedUsersOperator(SourceOperator):
    """Ensure the source collection holds fake users 0 to ``users - 1`` (0 leaves it alone).

    It writes into the source, so it does so only where the deployment allows
    it (``config.seeding_allowed``) and only in a run a person triggered,
    never a scheduled one.
    """

    template_fields: Sequence[str] = (*SOURCE_FIELDS, *OPTION_FIELDS)

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


class OpenChangeStreamOperator(SourceToTargetOperator):
    """Choose how this run copies the source, and record where its change stream starts.

    Incremental (the ``mode`` Param's default) when the live table's last publish
    recorded a point of this same collection, the source still holds the changes
    since, and nobody changed the table's rows since (its watch): the staging tables start
    empty, the catch-up writes there the documents changed since that point, and
    verify and publish take the live rows for the others. Otherwise a full copy,
    saying why: the stream starts now, before anything of this run reads the
    collection. An incremental run reads the changes since the point here, once,
    applying them as it reads: a stream that cannot be read from there (its
    history gone, the collection renamed or dropped since) makes the run copy in
    full instead. A source without change streams (a standalone ``mongod``) has no
    point at all: the run copies it in full, warning that the copy is consistent
    only if nothing writes to it meanwhile.
    """

    template_fields: Sequence[str] = (*TARGET_FIELDS, *SOURCE_FIELDS, *OPTION_FIELDS)

    def execute(self, context: Any) -> dict:
        mode = self.run_options().mode
        self.declare_source_inlet()
        owner = owner_of(context)
        tables = self.tables()
        with mongo_hook(self.mongo_conn_id) as hook, self.target_connection() as conn:
            source = self.source(hook)
            versions = copy_mode.versions_of(self.mapping)
            start, reason = copy_mode.why_full(mode, versions, source, conn, tables)
            applied = None
            if reason is None and (why := target.start_incremental(conn, tables, owner, start)):
                reason = copy_mode.CHANGED_BY_SOMEONE_ELSE.format(tables=tables, why=why)
            if reason is None:
                applied, reason = self.read_changes(source, conn, tables, owner)
            if reason is not None:
                position = open_position(source)
                start = position.to_json() if position else None
                target.record_start(conn, tables, owner, start)
        if reason is None:
            self.log.info(
                "Incremental: applied the %s changes of %s since %s, the point %s was published as of",
                applied["changes"],
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
        return copy_mode.Copy("full" if reason else "incremental", reason, start, applied).to_xcom()

    def read_changes(
        self, source: Collection, conn: Connection, tables: Tables, owner: Owner
    ) -> tuple[dict | None, str | None]:
        """An incremental run's first catch-up: the changes since the published point, applied to its
        staging tables as the stream is read, once (the catch_up task reads only what came since). What it
        applied, or why the run copies in full instead: the stream cannot be read from the point."""
        try:
            with violations_fail_the_run():
                caught = catch_up(source, conn, tables, Conversion(self.mapping), owner)
        except (ChangeHistoryLost, StreamInvalidated) as error:
            return None, str(error)
        return {"changes": caught.changes, "documents": caught.documents}, None
