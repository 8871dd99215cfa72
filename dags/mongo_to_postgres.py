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


def whole(pattern: str) -> str:
    """A Param pattern for the whole value: ``$`` alone lets a final newline through."""
    return rf"^(?![\s\S]*\n){pattern}$"


# Names a run may give instead of the mapping's: plain lowercase PostgreSQL names (the operators
# check again, with the rejects and child tables, before any SQL is built).
TABLE_NAME = r"(?!.*_rejects$)[a-z_][a-z0-9_]{0,54}"
SCHEMA_NAME = rf"(?!{STAGING_SCHEMA}$)[a-z_][a-z0-9_]{{0,62}}"


def params(mapping: Mapping) -> dict[str, Param]:
    """The trigger form, in this order, grouped by section; the mapping's values are the defaults."""
    defaults = mapping.params
    seeding = (
        {
            "seed_users": Param(
                0,  # seeding happens only when a run asks for it
                type="integer",
                minimum=0,
                maximum=100_000_000,
                title="Users to seed (0: none)",
                description="Fake users 0 to N-1 to ensure in the collection before copying (the seed "
                f"project's amount: {config.SEED_USERS:,}); 0, the default, copies it as it is. Writes into "
                "the source: "
                + (
                    "allowed in this deployment, in manually triggered runs only."
                    if config.seeding_allowed()
                    else f"refused in this deployment ({config.ALLOW_SEEDING_VARIABLE} is not true)."
                ),
                section="Source",
            )
        }
        if mapping.seed_users
        else {}
    )
    return {
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
        **seeding,
        "mode": Param(
            defaults.mode,
            type="string",
            enum=["incremental", "full"],
            title="Copy mode",
            description="incremental: apply only the changes since the point the live table was "
            "published as of, or copy in full when that cannot be done (first run, changes gone from "
            "the source's history, collection made again, mapping changed, table changed by someone "
            "else), saying why; full: copy the whole collection.",
            section="Source",
        ),
        "items_per_page": Param(
            defaults.items_per_page,
            type="integer",
            minimum=1,
            maximum=100_000,
            title="Items per page (documents)",
            description="Documents per migrate_page task, each one a range of _id values; "
            f"up to {config.CLUSTER_SIZE} pages run at once. More per page when the collection "
            "would need more pages than Airflow's [core] max_map_length (1024 by default).",
            section="Pages",
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
            description="Changed in place, with its <table>_rejects and child tables, when the run has "
            "verified its copy: lowercase letters, digits and _; with its schema and _rejects at most 63 "
            "(48 in public).",
            section="Target",
        ),
        "max_shrink_percent": Param(
            defaults.max_shrink_percent,
            type="integer",
            minimum=0,
            maximum=100,
            title="Largest shrink allowed (%)",
            description="publish refuses a copy with this many percent fewer rows than the live table, "
            "and a child table whose array path the mapping changed with this many percent fewer rows than "
            "the live one (100: any).",
            section="Publish",
        ),
        "max_reject_percent": Param(
            defaults.max_reject_percent,
            type="number",
            minimum=0,
            maximum=100,
            title="Most rejects allowed (%)",
            description="publish refuses a copy that set aside more than this percent of its documents "
            "that the published table had not set aside (new ones, or ones a change broke; in "
            "<table>_rejects, each with its column and reason; 100: any).",
            section="Publish",
        ),
        "max_null_rise_percent": Param(
            defaults.max_null_rise_percent,
            type="integer",
            minimum=0,
            maximum=100,
            title="Largest rise of a column's NULLs allowed (points)",
            description="After a mapping change, publish refuses a changed column whose share of NULL "
            "rows rose by more than this many percentage points against the live table, or a new column "
            "whose path no document has: what a path typed wrong does (100: any).",
            section="Publish",
        ),
        "verify_content": Param(
            defaults.verify_content,
            type="boolean",
            title="Verify every document's content",
            description="verify reads every document of the source again and compares it with its row "
            "and child rows, not only every _id: a second full read of the collection, for a run that "
            "must prove it.",
            section="Publish",
        ),
        "publish_wait_seconds": Param(
            defaults.publish_wait_seconds,
            type="integer",
            minimum=0,
            maximum=1800,  # leaves publish's execution_timeout (1 h) half its time to work
            title="Wait for a busy table (seconds)",
            description="How long publish keeps trying, in short attempts, while other sessions lock "
            "the live table.",
            section="Publish",
        ),
        "publish_empty": Param(
            False,
            type="boolean",
            title="Publish an empty copy",
            description="Let publish empty a live table that holds rows (refused otherwise).",
            section="For one run only",
        ),
        "publish_unverified": Param(
            False,
            type="boolean",
            title="Publish without verify's proof",
            description="Let publish go on when verify returned no proof (marked successful by hand).",
            section="For one run only",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Check the source and the target, report what this run would do (full or "
            "incremental and why, pages, what publish would say of the live table) and stop there: "
            "nothing is written anywhere.",
            section="For one run only",
        ),
    }


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
            mode="{{ params.mode }}",
            items_per_page="{{ params.items_per_page }}",
            seed_users="{{ params.seed_users }}" if mapping.seed_users else 0,
            dry_run="{{ params.dry_run }}",
            max_shrink_percent="{{ params.max_shrink_percent }}",
            execution_timeout=timeout["preflight"],
            **source,
            **target,
        )
        reset_table = ResetTableOperator(
            task_id="reset_table", execution_timeout=timeout["reset_table"], **target
        )
        open_change_stream = OpenChangeStreamOperator(
            task_id="open_change_stream",
            mode="{{ params.mode }}",
            map_index_template="{{ copy_mode }}",  # full or incremental, and why, in the run's task list
            execution_timeout=timeout["open_change_stream"],
            **source,
            **target,
        )
        if mapping.seed_users:
            seed_users = SeedUsersOperator(
                task_id="seed_users",
                users="{{ params.seed_users }}",
                faker_seed=config.FAKER_SEED,
                execution_timeout=timeout["seed_users"],
                **source,
            )
            preflight >> reset_table >> seed_users >> open_change_stream
        else:
            preflight >> reset_table >> open_change_stream
        plan_pages = PlanPagesOperator(
            task_id="plan_pages",
            items_per_page="{{ params.items_per_page }}",
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
            page_results=migrate_page.output,
            caught_up=catch_up.output,
            start=open_change_stream.output,
            content="{{ params.verify_content }}",
            trigger_rule="none_failed_min_one_success",  # likewise
            execution_timeout=timeout["verify"],
            **source,
            **target,
        )
        publish = PublishOperator(
            task_id="publish",
            verified=verify.output,
            publish_unverified="{{ params.publish_unverified }}",
            publish_empty="{{ params.publish_empty }}",
            max_shrink_percent="{{ params.max_shrink_percent }}",
            max_reject_percent="{{ params.max_reject_percent }}",
            max_null_rise_percent="{{ params.max_null_rise_percent }}",
            wait_seconds="{{ params.publish_wait_seconds }}",
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
