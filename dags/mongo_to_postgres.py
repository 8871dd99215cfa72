"""
### MongoDB users → PostgreSQL

Copies the `users` collection of MongoDB into a PostgreSQL table, one mapped
task per page of `_id` values, proves that nothing was lost, and only then
replaces the live table. Readers never see a half-loaded table.

1. **reset_table** recreates this run's staging tables (schema `mongo_migration_staging`);
   the live table is not touched. A run of another DAG still loading the same table
   keeps it: this run then fails without touching anything.
2. **seed_users** ensures fake users 0 to *seed_users* - 1 in the source collection, only where
   the deployment allows seeding and never in a scheduled run (0: leave it alone).
3. **open_change_stream** chooses the copy: *incremental*, from the point the live table
   was published as of (the staging tables start as the live ones), or *full*, saying why;
   it records where the collection's change stream starts, before anything of the run reads it.
4. **plan_pages** cuts the collection into `_id` ranges of *items_per_page* documents, larger
   where more pages than Airflow's `[core] max_map_length` would be needed (none in an
   incremental run).
5. **migrate_page** (one per page) deletes its range in the staging table and COPYs its
   documents, in one transaction: a retried page is replaced, never duplicated.
6. **catch_up** applies every change made since the stream's start, batch by batch, each
   with the position it reaches: the staging table then equals the source as of that point.
7. **verify** reads every `_id` of the source again and fails the run unless the staging
   tables hold exactly those, catching up again for the ones changed meanwhile; it logs and
   returns a Markdown report.
8. **publish** makes the live table equal to the verified staging table in one
   transaction, changing its rows in place so that its views, keys, policies,
   triggers, publications, owner, grants and comments stay; it refuses an
   unverified, empty or shrunken copy unless a Param of the *Publish* section
   allows it, and emits the table as an Asset (alias `mongo_to_postgres_target`).

Connections: `mongo_default` (source) and `postgres_default` (target).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag

from include import config
from mongo_migration.operators import (
    CatchUpOperator,
    MigratePageOperator,
    OpenChangeStreamOperator,
    PlanPagesOperator,
    PublishOperator,
    ResetTableOperator,
    SeedUsersOperator,
    VerifyMigrationOperator,
)
from mongo_migration.target import SCHEMA_NAME, TABLE_NAME  # the same names the SQL side accepts


def whole(pattern: str) -> str:
    """A Param pattern for the whole value: ``$`` alone lets a final newline through."""
    return rf"^(?![\s\S]*\n){pattern}$"


SOURCE = {
    "mongo_conn_id": config.MONGO_CONN_ID,
    "mongo_database": "{{ params.mongo_database }}",
    "mongo_collection": "{{ params.mongo_collection }}",
}
TARGET = {
    "postgres_conn_id": config.POSTGRES_CONN_ID,
    "target_schema": "{{ params.target_schema }}",
    "target_table": "{{ params.target_table }}",
}


@dag(
    schedule=config.SCHEDULE,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=config.CLUSTER_SIZE,
    dagrun_timeout=config.RUN_TIMEOUT,
    doc_md=__doc__,
    default_args={
        "owner": "data-platform",
        "retries": 3,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": True,
    },
    tags=["mongodb", "postgres", "migration"],
    params={
        # The trigger form shows these in this order, grouped by section.
        "mongo_database": Param(
            config.MONGO_DATABASE,
            type="string",
            pattern=whole(r"[A-Za-z0-9_\[\]-]{1,63}"),
            title="MongoDB database",
            description="The database that holds the source collection.",
            section="Source",
        ),
        "mongo_collection": Param(
            config.MONGO_COLLECTION,
            type="string",
            pattern=whole(r"(?!system\.)[A-Za-z0-9_.\[\]-]{1,120}"),
            title="MongoDB collection",
            description="The collection to copy. It must exist: a missing one fails the run by name.",
            section="Source",
        ),
        "seed_users": Param(
            config.SEED_USERS if config.seeding_allowed() else 0,
            type="integer",
            minimum=0,
            maximum=100_000_000,
            title="Users to seed",
            description="Fake users 0 to N-1 to ensure in the collection before copying; 0 copies it as "
            "it is. Writes into the source: "
            + (
                "allowed in this deployment, in manually triggered runs only."
                if config.seeding_allowed()
                else f"refused in this deployment ({config.ALLOW_SEEDING_VARIABLE} is not true)."
            ),
            section="Source",
        ),
        "mode": Param(
            config.COPY_MODE,
            type="string",
            enum=["incremental", "full"],
            title="Copy mode",
            description="incremental: apply only the changes since the point the live table was "
            "published as of, or copy in full when that cannot be done (first run, changes gone from "
            "the source's history, collection made again, table changed by someone else), saying why; "
            "full: copy the whole collection.",
            section="Source",
        ),
        "items_per_page": Param(
            config.ITEMS_PER_PAGE,
            type="integer",
            minimum=1,
            maximum=100_000,
            title="Items per page",
            description="Documents per migrate_page task, each one a range of _id values; "
            f"up to {config.CLUSTER_SIZE} pages run at once. More per page when the collection "
            "would need more pages than Airflow's [core] max_map_length (1024 by default).",
            section="Pages",
        ),
        "target_schema": Param(
            config.TARGET_SCHEMA,
            type="string",
            pattern=whole(SCHEMA_NAME.pattern),
            title="PostgreSQL schema",
            description="An existing schema of the target database: lowercase letters, digits and _.",
            section="Target",
        ),
        "target_table": Param(
            config.TARGET_TABLE,
            type="string",
            pattern=whole(TABLE_NAME.pattern),
            title="PostgreSQL table",
            description="Replaced as a whole, with its <table>_rejects, when the run has verified its copy: "
            "lowercase letters, digits and _, at most 55.",
            section="Target",
        ),
        "max_shrink_percent": Param(
            config.MAX_SHRINK_PERCENT,
            type="integer",
            minimum=0,
            maximum=100,
            title="Largest shrink allowed",
            description="publish refuses a copy with this many percent fewer rows than the live table "
            "(100: any).",
            section="Publish",
        ),
        "publish_empty": Param(
            False,
            type="boolean",
            title="Publish an empty copy",
            description="Let publish empty a live table that holds rows (refused otherwise).",
            section="Publish",
        ),
        "verify_content": Param(
            False,
            type="boolean",
            title="Verify every document's content",
            description="verify reads every document of the source again and compares it with its row, "
            "not only every _id: a second full read of the collection, for a run that must prove it.",
            section="Publish",
        ),
        "publish_unverified": Param(
            False,
            type="boolean",
            title="Publish without verify's proof",
            description="Let publish go on when verify returned no proof (marked successful by hand).",
            section="Publish",
        ),
        "publish_wait_seconds": Param(
            config.PUBLISH_WAIT_SECONDS,
            type="integer",
            minimum=0,
            maximum=1800,  # leaves publish's execution_timeout (1 h) half its time to work
            title="Wait for a busy table",
            description="How long publish keeps trying, in short attempts, while other sessions lock "
            "the live table.",
            section="Publish",
        ),
    },
)
def mongo_to_postgres():
    timeout = config.TASK_TIMEOUTS
    reset_table = ResetTableOperator(
        task_id="reset_table", execution_timeout=timeout["reset_table"], **TARGET
    )
    seed_users = SeedUsersOperator(
        task_id="seed_users",
        users="{{ params.seed_users }}",
        faker_seed=config.FAKER_SEED,
        execution_timeout=timeout["seed_users"],
        **SOURCE,
    )
    open_change_stream = OpenChangeStreamOperator(
        task_id="open_change_stream",
        mode="{{ params.mode }}",
        execution_timeout=timeout["open_change_stream"],
        **SOURCE,
        **TARGET,
    )
    plan_pages = PlanPagesOperator(
        task_id="plan_pages",
        items_per_page="{{ params.items_per_page }}",
        start=open_change_stream.output,
        execution_timeout=timeout["plan_pages"],
        **SOURCE,
    )
    migrate_page = MigratePageOperator.partial(
        task_id="migrate_page",
        execution_timeout=timeout["migrate_page"],
        max_active_tis_per_dag=config.CLUSTER_SIZE,
        pool=config.PAGE_POOL,
        map_index_template="{{ page_label }}",
        start=open_change_stream.output,
        **SOURCE,
        **TARGET,
    ).expand(page=plan_pages.output)
    catch_up = CatchUpOperator(
        task_id="catch_up",
        trigger_rule="none_failed",  # an empty collection has no pages to wait for
        execution_timeout=timeout["catch_up"],
        **SOURCE,
        **TARGET,
    )
    verify = VerifyMigrationOperator(
        task_id="verify",
        page_results=migrate_page.output,
        start=open_change_stream.output,
        content="{{ params.verify_content }}",
        trigger_rule="none_failed",  # likewise
        execution_timeout=timeout["verify"],
        **SOURCE,
        **TARGET,
    )
    publish = PublishOperator(
        task_id="publish",
        verified=verify.output,
        publish_unverified="{{ params.publish_unverified }}",
        publish_empty="{{ params.publish_empty }}",
        max_shrink_percent="{{ params.max_shrink_percent }}",
        wait_seconds="{{ params.publish_wait_seconds }}",
        execution_timeout=timeout["publish"],
        **SOURCE,
        **TARGET,
    )
    reset_table >> seed_users >> open_change_stream >> plan_pages >> migrate_page >> catch_up >> verify
    verify >> publish


mongo_to_postgres()
