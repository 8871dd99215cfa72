"""Loading staging tables outside a DAG run, as the tests of the parts below the operators do."""

from mongo_migration import target
from mongo_migration.target import STAGING_SCHEMA, Owner

TEST_RUN = Owner("tests", "manual__tests")


def reset_staging(conn, table: str) -> None:
    target.reset_table(conn, table, "public", TEST_RUN, still_running=lambda owner: False)


def staged(table: str) -> str:
    """The staging table's qualified name, for the tests' own queries."""
    return f"{STAGING_SCHEMA}.{table}"
