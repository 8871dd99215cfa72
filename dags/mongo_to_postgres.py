"""
### MongoDB → PostgreSQL, one DAG per mapping

Copies a MongoDB collection into a PostgreSQL table shaped by its mapping
(`include/mappings/<name>.yaml`: typed columns, child tables for arrays), one
mapped task per page of `_id` values, proves that nothing was lost, and only
then changes the live table in place. Readers never see a half-loaded table.

1. **preflight** checks the source (version, change stream, collection, privileges, the
   oplog's window against the published point's age) and the target (schemas, privileges)
   and fails listing every problem before anything is written;
   with the Param *dry_run* it reports what the run would do and skips the rest.
2. **reset_table** recreates this run's staging tables (schema `mongo_migration_staging`,
   named `"<schema>.<table>"`); the live tables are not touched. A run of another DAG still
   loading the same target keeps it: this run then fails without touching anything.
3. **seed_users** (the users DAG only) ensures fake users 0 to *seed_users* - 1 in the source
   collection, only where the deployment allows seeding and never in a scheduled run.
4. **open_change_stream** chooses the copy: *incremental*, from the point the live table
   was published as of (the staging tables then hold only the documents that change), or
   *full*, saying why
   (the first run, a changed mapping, ...), in its label in the run's task list; it records
   where the collection's change stream starts, before anything of the run reads it.
5. **plan_pages** cuts the collection into `_id` ranges of *items_per_page* documents, larger
   where more pages than Airflow's `[core] max_map_length` would be needed. An incremental
   run has no pages: it and **migrate_page** show *skipped*.
6. **migrate_page** (one per page) deletes its range in the staging tables and COPYs its
   documents' rows, child rows and rejects, in one transaction: a retried page is replaced,
   never duplicated.
7. **catch_up** applies every change made since the stream's start, batch by batch, each
   with the position it reaches: the staging tables then equal the source as of that point.
8. **verify** reads every `_id` of the source again and fails the run unless the staging
   tables hold exactly those, catching up again for the ones changed meanwhile; it logs and
   returns a Markdown report, with the rejects by column.
9. **publish** makes the live tables equal to the verified staging tables in one
   transaction, changing their rows (and the columns a changed mapping changed) in place so
   that their views, keys, policies, triggers, publications, owner, grants and comments
   stay; it refuses an unverified, empty or shrunken copy, or one with too many rejects,
   unless a Param allows it for one run, and emits the table as an Asset
   (alias `<dag_id>_target`).

Connections: `mongo_default` (source) and `postgres_default` (target). A mapping that
cannot be used is an import error of `dags/mapping_errors.py`; the other DAGs go on.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, DeadlineAlert, DeadlineReference, Param, SyncCallback, dag

from include import config
from mongo_migration import run_options
from mongo_migration.alerts import HEARTBEAT_CONN_ID, RunAlert
from mongo_migration.mapping import COLLECTION_NAME, DATABASE_NAME, STAGING_SCHEMA, Mapping, load_mappings
from mongo_migration.operators import (
    CatchUpOperator,
    MigratePageOperator,
    OpenChangeStreamOperator,
    PlanPagesOperator,
    PreflightOperator,
    PublishOperator,
    ResetTableOperator,
    SeedUsersOperator,
    VerifyMigrationOperator,
    asset_alias,
)
from mongo_migration.run_options import SECTIONS


def whole(pattern: str) -> str:
    """A Param pattern for the whole value: ``$`` alone lets a final newline through."""
    return rf"^(?![\s\S]*\n){pattern}$"


# Names a run may give instead of the mapping's: plain lowercase PostgreSQL names (the operators
# check again, with the rejects and child tables, before any SQL is built).
TABLE_NAME = r"(?!.*_rejects$)[a-z_][a-z0-9_]{0,54}"
SCHEMA_NAME = rf"(?!{STAGING_SCHEMA}$)[a-z_][a-z0-9_]{{0,62}}"


SEEDING_HERE = "This deployment"  # the form says whether this deployment allows seeding


def params(mapping: Mapping) -> dict[str, Param]:
    """The trigger form, grouped by section: the mapping's names, then the run's options
    (``run_options``), each defaulting to the mapping's value."""
    names = {
        "mongo_database": Param(
            mapping.source.database,
            type="string",
            pattern=whole(DATABASE_NAME),
            title="MongoDB database",
            description="The database that holds the source collection.",
            section="Source",
        ),
        "mongo_collection": Param(
            mapping.source.collection,
            type="string",
            pattern=whole(COLLECTION_NAME),
            title="MongoDB collection",
            description="The collection to copy. It must exist: a missing one fails the run by name.",
            section="Source",
        ),
        "target_schema": Param(
            mapping.target.schema_,
            type="string",
            pattern=whole(SCHEMA_NAME),
            title="PostgreSQL schema",
            description="An existing schema of the target database: lowercase letters, digits and _.",
            section="Target",
        ),
        "target_table": Param(
            mapping.target.table,
            type="string",
            pattern=whole(TABLE_NAME),
            title="PostgreSQL table",
            description="Changed in place, with its rejects (the table's name and _rejects) and child "
            "tables, when the run has verified its copy: lowercase letters, digits and _; with its schema "
            "and _rejects at most 63 "
            "(48 in public).",
            section="Target",
        ),
    }
    options = {
        name: Param(default, description=schema.pop("description"), **schema)
        for name, (default, schema) in run_options.form(mapping.params, mapping.seed_users).items()
    }
    if "seed_users" in options:
        allowed = "allows it" if config.seeding_allowed() else "refuses it"
        options["seed_users"].description += f" {SEEDING_HERE} {allowed}."
    fields = {**names, **options}
    return dict(sorted(fields.items(), key=lambda field: SECTIONS.index(field[1].schema["section"])))


def publish_deadline(deadline: dt.timedelta | None) -> DeadlineAlert | None:
    """The alert of a run not published ``deadline`` after it was queued (None: no deadline)."""
    if deadline is None:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=deadline,
        callback=SyncCallback(
            RunAlert, kwargs={"outcome": "missed its deadline", "deadline": f"{deadline} after it was queued"}
        ),
    )


def migration_dag(mapping: Mapping) -> DAG:
    """The DAG that copies one mapping's collection into its tables."""
    timeout = {
        task: dt.timedelta(minutes=mapping.timeout_minutes[task])
        if task in mapping.timeout_minutes
        else default
        for task, default in config.TASK_TIMEOUTS.items()
    }
    run_timeout = mapping.timeout_minutes.get("run")
    deadline_minutes = mapping.timeout_minutes.get("deadline")
    deadline = dt.timedelta(minutes=deadline_minutes) if deadline_minutes else config.PUBLISH_DEADLINE
    source = {
        "mongo_conn_id": config.MONGO_CONN_ID,
        "mongo_database": "{{ params.mongo_database }}",
        "mongo_collection": "{{ params.mongo_collection }}",
    }
    options = run_options.templates(mapping.seed_users)  # what the tasks that read options render
    target = {
        "mapping": mapping,
        "postgres_conn_id": config.POSTGRES_CONN_ID,
        "target_schema": "{{ params.target_schema }}",
        "target_table": "{{ params.target_table }}",
    }

    @dag(
        dag_id=mapping.dag_id,
        schedule=mapping.schedule,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        max_active_runs=1,
        max_active_tasks=config.CLUSTER_SIZE,
        dagrun_timeout=dt.timedelta(minutes=run_timeout) if run_timeout else config.RUN_TIMEOUT,
        description=mapping.description or None,
        doc_md=mapping_doc(mapping) + __doc__,
        default_args={
            "owner": "data-platform",
            "retries": 3,
            "retry_delay": dt.timedelta(seconds=30),
            "retry_exponential_backoff": True,
        },
        on_failure_callback=[RunAlert("failed")],  # once per failed run, naming its failed task
        deadline=publish_deadline(deadline),
        tags=["mongodb", "postgres", "migration"],
        params=params(mapping),
    )
    def migration():
        preflight = PreflightOperator(
            task_id="preflight",
            options=options,
            execution_timeout=timeout["preflight"],
            **source,
            **target,
        )
        reset_table = ResetTableOperator(
            task_id="reset_table", execution_timeout=timeout["reset_table"], **target
        )
        open_change_stream = OpenChangeStreamOperator(
            task_id="open_change_stream",
            options=options,
            map_index_template="{{ copy_mode }}",  # full or incremental, and why, in the run's task list
            execution_timeout=timeout["open_change_stream"],
            **source,
            **target,
        )
        if mapping.seed_users:
            seed_users = SeedUsersOperator(
                task_id="seed_users",
                options=options,
                faker_seed=config.FAKER_SEED,
                execution_timeout=timeout["seed_users"],
                **source,
            )
            preflight >> reset_table >> seed_users >> open_change_stream
        else:
            preflight >> reset_table >> open_change_stream
        plan_pages = PlanPagesOperator(
            task_id="plan_pages",
            options=options,
            start=open_change_stream.output,
            execution_timeout=timeout["plan_pages"],
            **source,
        )
        migrate_page = MigratePageOperator.partial(
            task_id="migrate_page",
            execution_timeout=timeout["migrate_page"],
            max_active_tis_per_dag=config.CLUSTER_SIZE,
            pool=mapping.pool,
            map_index_template="{{ page_label }}",
            doc_md="One page of a full copy: its `_id` range, deleted and copied again in one transaction. "
            "An incremental run has no pages: `plan_pages` and `migrate_page` show *skipped*, `catch_up` "
            "applies the changes, and `open_change_stream`'s label in the run's task list says since when.",
            start=open_change_stream.output,
            **source,
            **target,
        ).expand(page=plan_pages.output)
        catch_up = CatchUpOperator(
            task_id="catch_up",
            # An empty collection or an incremental run has no pages to wait for; a dry run skips it.
            trigger_rule="none_failed_min_one_success",
            execution_timeout=timeout["catch_up"],
            **source,
            **target,
        )
        verify = VerifyMigrationOperator(
            task_id="verify",
            options=options,
            page_results=migrate_page.output,
            caught_up=catch_up.output,
            start=open_change_stream.output,
            trigger_rule="none_failed_min_one_success",  # likewise
            execution_timeout=timeout["verify"],
            **source,
            **target,
        )
        publish = PublishOperator(
            task_id="publish",
            options=options,
            verified=verify.output,
            asset_alias=asset_alias(mapping.dag_id),
            execution_timeout=timeout["publish"],
            # sent where the alerts connection asks for it, and to the heartbeat's dead man's switch
            on_success_callback=[RunAlert("published"), RunAlert("published", conn_id=HEARTBEAT_CONN_ID)],
            **source,
            **target,
        )
        open_change_stream >> plan_pages >> migrate_page >> catch_up >> verify >> publish
        open_change_stream >> catch_up  # what it waits for when there are no pages

    return migration()


def mapping_doc(mapping: Mapping) -> str:
    """The mapping, as the DAG's page shows it."""
    lines = [
        f"## {mapping.source.database}.{mapping.source.collection} → "
        f"{mapping.target.schema_}.{mapping.target.table}",
        "",
        f"{mapping.description} Mapping: `{mapping.file.name}` (version {mapping.version}); "
        f"the whole document {'is kept in `document`' if mapping.keep_document else 'is not kept'}.",
        "",
        "| table | column | path | type | accepts | nullable | on violation |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for table, prefix, columns in [
        (mapping.target.table, (), mapping.columns),
        *(
            (f"{mapping.target.table}_{child.name}", (*child.path, "[]"), child.columns)
            for child in mapping.children
        ),
    ]:
        for column in columns:
            path = ".".join((*prefix, *column.path)) or "the element"
            lines.append(
                f"| {table} | {column.name} | `{path}` | {column.type} | {_accepted(column)} | "
                f"{'yes' if column.nullable else 'no'} | {column.on_violation} |"
            )
    return "\n".join(lines) + "\n\n"


def _accepted(column) -> str:
    """The BSON types a column takes: exactly, then by its declared coercions."""
    coerced = [f"{name} ({coercion})" for name, coercion in column.coerce.items()]
    return ", ".join([*column.accepts, *coerced])


for _mapping in load_mappings()[0]:  # the errors of the others are dags/mapping_errors.py's
    migration_dag(_mapping)
