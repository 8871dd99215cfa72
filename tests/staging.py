"""Target tables outside a DAG run, as the tests below the operators and the benchmarks use them."""

from mongo_migration import target
from mongo_migration.target import STAGING_SCHEMA, Owner

OUTSIDE_A_RUN = Owner("local", "outside-a-dag-run")  # the owner of staging tables loaded without a run


def reset_staging(conn, table: str) -> None:
    target.reset_table(conn, table, "public", OUTSIDE_A_RUN, still_running=lambda owner: False)


def staged(table: str) -> str:
    """The staging table's qualified name, for the tests' own queries."""
    return f"{STAGING_SCHEMA}.{table}"


def drop_tables(conn, table: str) -> None:
    """The table and its rejects table, live and staged."""
    for schema in ("public", STAGING_SCHEMA):
        conn.execute(f"DROP TABLE IF EXISTS {schema}.{table}, {schema}.{table}_rejects")
