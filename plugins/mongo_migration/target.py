"""The PostgreSQL side: the statements in ``include/sql``, run with identifiers quoted by psycopg.

A run loads into staging tables (schema ``STAGING_SCHEMA``, same names as the
live tables) and ``publish`` moves them over the live ones in one transaction.
The staging tables belong to the run that reset them, named in their comment;
an advisory lock keyed on the table name makes that ownership hold: reset and
publish take it alone, the owner's pages share it, so no two runs ever write
the same table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from psycopg import Connection, errors, sql

from mongo_migration.documents import COLUMNS

SQL_DIR = Path(__file__).resolve().parents[2] / "include" / "sql"
STAGING_SCHEMA = "mongo_migration_staging"
# 63 characters at most for PostgreSQL, less the "_rejects" of the rejects table.
TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,54}")
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"}


@dataclass(frozen=True)
class Owner:
    """The Airflow run that loads a table's staging tables."""

    dag_id: str
    run_id: str

    def __str__(self) -> str:
        return f"run {self.run_id!r} of DAG {self.dag_id!r}"


def statement(name: str, table: str, schema: str = "public", **values: sql.Composable) -> sql.Composed:
    """The statement in ``include/sql/<name>.sql`` for a target table, its names quoted by psycopg.

    Sets ``{staging}`` and ``{live}`` (and their ``_rejects``), ``{schema}``,
    ``{staging_schema}``, ``{columns}`` and any ``values`` given.
    """
    if not TABLE_NAME.fullmatch(table):
        raise ValueError(
            f"target table {table!r} is not a plain lowercase PostgreSQL name "
            f"(letters, digits and _, at most 55, not starting with a digit)"
        )
    if not SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"target schema {schema!r} is not a plain lowercase PostgreSQL name "
            f"(letters, digits and _, at most 63, not starting with a digit)"
        )
    return sql.SQL(_sql_text(name)).format(
        staging=sql.Identifier(STAGING_SCHEMA, table),
        staging_rejects=sql.Identifier(STAGING_SCHEMA, f"{table}_rejects"),
        live=sql.Identifier(schema, table),
        live_rejects=sql.Identifier(schema, f"{table}_rejects"),
        schema=sql.Identifier(schema),
        staging_schema=sql.Identifier(STAGING_SCHEMA),
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        **values,
    )


@cache
def _sql_text(name: str) -> str:
    """The text of ``include/sql/<name>.sql``, read once per process."""
    return (SQL_DIR / f"{name}.sql").read_text()


def _lock(conn: Connection, table: str, *, shared: bool) -> None:
    """Take the table's load lock until the transaction ends; see include/sql/lock_staging.sql."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    try:
        conn.execute(
            statement("lock_staging", table, lock_function=sql.Identifier(function)),
            {"lock_key": lock_key(table)},
        )
    except errors.LockNotAvailable:
        raise AirflowException(
            f"the load lock of table {table} (advisory lock on hashtextextended('{lock_key(table)}', 0)) "
            f"is held by another run or session; gave up waiting after lock_timeout"
        ) from None


def lock_key(table: str) -> str:
    return f"{STAGING_SCHEMA}.{table}"


def staging_owner(conn: Connection, table: str) -> Owner | None:
    """The run that reset the table's staging tables; None when there are none."""
    row = conn.execute(
        statement("staging_owner", table), {"staging_schema": STAGING_SCHEMA, "table": table}
    ).fetchone()
    return Owner(**json.loads(row[0])) if row and row[0] else None


def _check_owner(conn: Connection, table: str, owner: Owner) -> None:
    current = staging_owner(conn, table)
    if current != owner:
        now = f"{current} owns them now" if current else "they do not exist"
        raise AirflowFailException(
            f"{owner} cannot write the staging tables of {table}: {now}. Nothing was written; "
            f"reset_table of this run must run (again) first"
        )


def reset_table(
    conn: Connection, table: str, schema: str, owner: Owner, still_running: Callable[[Owner], bool]
) -> Owner | None:
    """Recreate the staging tables, owned by ``owner``; return the run they were taken from, if any.

    A run still loading the table keeps it: this one fails at once without
    touching it (looked up before waiting for the lock, which that run's pages
    hold, and again under it). A finished or failed run's leftovers are replaced.
    """

    def refuse_if_loading() -> Owner | None:
        previous = staging_owner(conn, table)
        if previous not in (None, owner) and still_running(previous):
            raise AirflowFailException(
                f"table {table} is being loaded by {previous}, which is still running; this run "
                f"leaves it alone. Trigger again when that run has ended (or mark it failed)."
            )
        return previous

    with conn.transaction():
        refuse_if_loading()
        _lock(conn, table, shared=False)
        if not conn.execute(statement("schema_exists", table), {"schema": schema}).fetchone()[0]:
            raise AirflowFailException(f"target schema {schema!r} does not exist in the target database")
        previous = refuse_if_loading()
        owner_comment = sql.Literal(json.dumps(asdict(owner)))
        conn.execute(statement("reset_table", table, schema, owner=owner_comment))
    return previous if previous != owner else None


def publish(conn: Connection, table: str, schema: str, owner: Owner, note: str) -> None:
    """Replace the live tables with the owner's staging tables, keeping the live tables' grants."""
    with conn.transaction():
        _lock(conn, table, shared=False)
        _check_owner(conn, table, owner)
        grants = conn.execute(statement("live_grants", table), {"schema": schema, "table": table})
        for relation, grantee, privilege, grantable in grants.fetchall():
            if privilege not in PRIVILEGES:
                raise ValueError(f"unexpected privilege {privilege!r} on {schema}.{relation}")
            grant = statement(
                "grant_on_staging",
                table,
                privilege=sql.SQL(privilege),
                relation=sql.Identifier(STAGING_SCHEMA, relation),
                grantee=sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC"),
                grant_option=sql.SQL(" WITH GRANT OPTION" if grantable else ""),
            )
            conn.execute(grant)
        conn.execute(statement("publish", table, schema, note=sql.Literal(note)))


def start_page(conn: Connection, table: str, owner: Owner, page: int) -> None:
    """In the page's transaction: share the load lock, check the owner, delete what the page wrote before."""
    _lock(conn, table, shared=True)
    _check_owner(conn, table, owner)
    conn.execute(statement("delete_page", table), {"page": page})


def count_rows(conn: Connection, table: str) -> tuple[int, int]:
    """The rows of the staging table and of its rejects table."""
    return conn.execute(statement("count_rows", table)).fetchone()


def reject_reasons(conn: Connection, table: str) -> list[tuple[str, int]]:
    """The most frequent reasons in the staging rejects table, with their counts."""
    return conn.execute(statement("reject_reasons", table)).fetchall()


def page_checksums(conn: Connection, table: str) -> dict[int, tuple[int, int]]:
    """For each page: the documents it wrote (rows and rejects) and the checksum of their ``_id`` keys."""
    return {
        page: (count, int(checksum))
        for page, count, checksum in conn.execute(statement("page_checksums", table))
    }


def page_keys(conn: Connection, table: str, page: int) -> set[str]:
    """The ``_id`` keys a page wrote, rows and rejects."""
    return {key for (key,) in conn.execute(statement("page_keys", table), {"page": page})}
