"""What every operator of the DAGs shares: the source collection and the target table they work on, the
run's options read once (``RunOptions``), the run as the staging tables' owner, and lineage.

Lineage: the source collection (the Mongo provider's
``mongodb://host:port/database/collection``) is the inlet of each task that
reads it, declared when the task runs, since its host comes from the
connection, which the DAG file must not read at import. The table
(``postgres://host:port/database/schema/table``) is what ``publish`` emits
through its outlet, the asset alias ``asset_alias(dag_id)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from airflow.providers.mongo.assets.mongo import create_asset as mongo_asset
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.assets.postgres import create_asset as postgres_asset
from airflow.sdk import Asset, BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowFailException
from psycopg import Connection
from pydantic import ValidationError
from pymongo.collection import Collection
from pymongo.read_concern import ReadConcern

from mongo_migration import target
from mongo_migration.changes import CATCH_UP_GRACE_SECONDS, ChangeHistoryLost, StreamInvalidated, catch_up
from mongo_migration.connections import mongo_hosts, postgres_connection
from mongo_migration.documents import CODEC_OPTIONS, Conversion, ViolationFailsRun
from mongo_migration.mapping import Mapping
from mongo_migration.run_options import RunOptions
from mongo_migration.target import Owner, Tables


def asset_alias(dag_id: str) -> str:
    """The asset alias in whose events publish names the table it published."""
    return f"{dag_id}_target"


SOURCE_FIELDS = ("mongo_database", "mongo_collection")


TARGET_FIELDS = ("target_table", "target_schema")
OPTION_FIELDS = ("options",)  # of the operators that read the run's options


def owner_of(context: Any) -> Owner:
    """This run, the owner of the staging tables it loads."""
    return Owner(dag_id=context["dag_run"].dag_id, run_id=context["dag_run"].run_id)


class MigrationOperator(BaseOperator):
    """An operator of the migration DAGs, which may read the run's ``options``: the form's values as its
    templates rendered them (``run_options.templates``); an option left out takes its default."""

    def __init__(self, *, options: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.options = options or {}

    def run_options(self) -> RunOptions:
        """The options, typed and checked: a value that is none of its type fails the task by name, not to
        be retried (Airflow checks a run's conf against the Params when it is triggered: a safety net)."""
        try:
            return RunOptions.read(self.options)
        except ValidationError as error:
            raise AirflowFailException(f"the run's options cannot be used: {error}") from None


class SourceOperator(MigrationOperator):
    """An operator that reads the source collection through the ``mongo_conn_id`` connection."""

    def __init__(
        self,
        *,
        mongo_database: str,
        mongo_collection: str,
        mongo_conn_id: str = "mongo_default",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.mongo_database = mongo_database
        self.mongo_collection = mongo_collection
        self.mongo_conn_id = mongo_conn_id

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


class TargetOperator(MigrationOperator):
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


class SourceToTargetOperator(SourceOperator, TargetOperator):
    """An operator that reads the source collection and works on the target table."""


NO_CHANGE_STREAM = (
    "%s has no change stream (a standalone mongod?): this copy is consistent only if nothing "
    "writes to the collection while the run copies it"
)


def catch_up_or_fail(
    task: SourceToTargetOperator,
    source: Collection,
    conn: Connection,
    tables: Tables,
    owner: Owner,
    watched: set[str] = frozenset(),
    grace_seconds: float = CATCH_UP_GRACE_SECONDS,
):
    """``changes.catch_up``, a stream that cannot resume failing the run by name."""
    try:
        with violations_fail_the_run():
            conversion = Conversion(task.mapping)
            return catch_up(source, conn, tables, conversion, owner, watched, grace_seconds)
    except (ChangeHistoryLost, StreamInvalidated) as error:
        target.forget_published_point(conn, tables, str(error))
        raise AirflowFailException(
            f"{task.source_name()} cannot be caught up: {error}. Nothing was published; the next run "
            "copies the collection in full, finding the same"
        ) from None


@contextmanager
def violations_fail_the_run() -> Iterator[None]:
    """A violation of a column whose mapping says ``on_violation: fail`` fails the run, not to be retried."""
    try:
        yield
    except ViolationFailsRun as error:
        raise AirflowFailException(str(error)) from None
