"""Target tables outside a DAG run, as the tests below the operators and the benchmarks use them."""

from include import config
from mongo_migration import target
from mongo_migration.mapping import STAGING_SCHEMA, load_mapping
from mongo_migration.target import Owner, Tables

OUTSIDE_A_RUN = Owner("local", "outside-a-dag-run")  # the owner of staging tables loaded without a run
USERS = load_mapping(config.MAPPINGS_DIR / "users.yaml")
ORDERS = load_mapping(config.MAPPINGS_DIR / "orders.yaml")


def users(table: str, schema: str = "public") -> Tables:
    """A target table shaped like the users table."""
    return Tables(schema, table, USERS)


def reset_staging(conn, tables: Tables | str) -> Tables:
    tables = users(tables) if isinstance(tables, str) else tables
    target.reset_table(conn, tables, OUTSIDE_A_RUN, still_running=lambda owner: False)
    return tables


def staged(table: str, schema: str = "public") -> str:
    """A staging table's qualified name, for the tests' own queries."""
    return f'{STAGING_SCHEMA}."{schema}.{table}"'


def drop_tables(conn, table: str, schema: str = "public") -> None:
    """The table, its rejects table and its child tables (any <table>_<name>), live and staged."""
    found = conn.execute(
        "SELECT format('%%I.%%I', schemaname, tablename) FROM pg_tables "
        "WHERE (schemaname = %s AND (tablename = %s OR tablename LIKE %s)) "
        "   OR (schemaname = %s AND (tablename = %s OR tablename LIKE %s))",
        [schema, table, f"{table}\\_%", STAGING_SCHEMA, f"{schema}.{table}", f"{schema}.{table}\\_%"],
    ).fetchall()
    for (name,) in found:
        conn.execute(f"DROP TABLE IF EXISTS {name} CASCADE")
