"""
### MongoDB users → PostgreSQL

Copies the `users` collection of MongoDB into a PostgreSQL table, one mapped
task per page of `_id` values, proves that nothing was lost, and only then
replaces the live table. Readers never see a half-loaded table.

1. **reset_table** recreates this run's staging tables (schema `mongo_migration_staging`);
   the live table is not touched. A run of another DAG still loading the same table
   keeps it: this run then fails without touching anything.
2. **seed_users** tops the source collection up to *seed_users* fake users (0: leave it alone).
3. **plan_pages** cuts the collection into `_id` ranges of *items_per_page* documents.
4. **migrate_page** (one per page) deletes its range in the staging table and COPYs its
   documents, in one transaction: a retried page is replaced, never duplicated.
5. **verify** fails the run unless the source count, the staging count and the
   sum of the pages' counts agree, page by page; it logs and returns a Markdown report.
6. **publish** swaps the verified staging tables in for the live ones in one
   transaction, keeping the live tables' grants; then writes the run's summary in
   its note and emits the table as an Asset (alias `mongo_to_postgres_target`).

Connections: `mongo_default` (source) and `postgres_default` (target).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag

from include import config
from mongo_migration.operators import (
    MigratePageOperator,
    PlanPagesOperator,
    PublishOperator,
    ResetTableOperator,
    SeedUsersOperator,
    VerifyMigrationOperator,
)
from mongo_migration.target import SCHEMA_NAME, TABLE_NAME  # the same names the SQL side accepts

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
    render_template_as_native_obj=True,
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
            pattern=r"^[A-Za-z0-9_-]{1,63}$",
            title="MongoDB database",
            description="The database that holds the source collection.",
            section="Source",
        ),
        "mongo_collection": Param(
            config.MONGO_COLLECTION,
            type="string",
            pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,119}$",
            title="MongoDB collection",
            description="The collection to copy. It must exist: a missing one fails the run by name.",
            section="Source",
        ),
        "seed_users": Param(
            config.SEED_USERS,
            type="integer",
            minimum=0,
            maximum=100_000_000,
            title="Users to seed",
            description="Fake users the collection should hold before copying (existing documents count); "
            "0 copies the collection as it is.",
            section="Source",
        ),
        "items_per_page": Param(
            config.ITEMS_PER_PAGE,
            type="integer",
            minimum=1,
            maximum=100_000,
            title="Items per page",
            description="Documents per migrate_page task, each one a range of _id values; "
            f"up to {config.CLUSTER_SIZE} pages run at once.",
            section="Pages",
        ),
        "target_schema": Param(
            config.TARGET_SCHEMA,
            type="string",
            pattern=f"^{SCHEMA_NAME.pattern}$",
            title="PostgreSQL schema",
            description="An existing schema of the target database: lowercase letters, digits and _.",
            section="Target",
        ),
        "target_table": Param(
            config.TARGET_TABLE,
            type="string",
            pattern=f"^{TABLE_NAME.pattern}$",
            title="PostgreSQL table",
            description="Replaced as a whole, with its <table>_rejects, when the run has verified its copy: "
            "lowercase letters, digits and _, at most 55.",
            section="Target",
        ),
    },
)
def mongo_to_postgres():
    reset_table = ResetTableOperator(task_id="reset_table", **TARGET)
    seed_users = SeedUsersOperator(
        task_id="seed_users", users="{{ params.seed_users }}", faker_seed=config.FAKER_SEED, **SOURCE
    )
    plan_pages = PlanPagesOperator(
        task_id="plan_pages", items_per_page="{{ params.items_per_page }}", **SOURCE
    )
    migrate_page = MigratePageOperator.partial(
        task_id="migrate_page",
        max_active_tis_per_dag=config.CLUSTER_SIZE,
        pool=config.PAGE_POOL,
        map_index_template="{{ page_label }}",
        **SOURCE,
        **TARGET,
    ).expand(page=plan_pages.output)
    verify = VerifyMigrationOperator(
        task_id="verify",
        pages=plan_pages.output,
        page_results=migrate_page.output,
        trigger_rule="none_failed",  # an empty collection has no pages to wait for
        **SOURCE,
        **TARGET,
    )
    publish = PublishOperator(task_id="publish", verified=verify.output, **SOURCE, **TARGET)
    reset_table >> seed_users >> plan_pages >> migrate_page >> verify >> publish


mongo_to_postgres()
