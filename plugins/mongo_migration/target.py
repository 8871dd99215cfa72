"""The PostgreSQL side: the statements in ``include/sql``, run with identifiers quoted by psycopg."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from psycopg import Connection, sql

from mongo_migration.documents import COLUMNS, id_key
from mongo_migration.pages import Page

SQL_DIR = Path(__file__).resolve().parents[2] / "include" / "sql"
TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def statement(name: str, table: str) -> sql.Composed:
    """The statement in ``include/sql/<name>.sql``, with ``{table}`` and ``{columns}`` filled in."""
    if not TABLE_NAME.fullmatch(table):
        raise ValueError(
            f"target table {table!r} is not a plain lowercase PostgreSQL name "
            f"(letters, digits and _, at most 63, not starting with a digit)"
        )
    return sql.SQL((SQL_DIR / f"{name}.sql").read_text()).format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
    )


def reset_table(conn: Connection, table: str) -> None:
    with conn.transaction():
        conn.execute(statement("reset_table", table))


def replace_page(conn: Connection, table: str, page: Page, rows: Iterable[tuple]) -> int:
    """Delete what the page's range holds and COPY its rows, in one transaction."""
    written = 0
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(
            statement("delete_page", table),
            {
                "lower": id_key(page.lower),
                "upper": id_key(page.upper),
                "upper_inclusive": page.upper_inclusive,
            },
        )
        with cursor.copy(statement("copy_page", table)) as copy:
            for row in rows:
                copy.write_row(row)
                written += 1
    return written


def count_rows(conn: Connection, table: str) -> int:
    return conn.execute(statement("count_rows", table)).fetchone()[0]
