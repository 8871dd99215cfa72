"""The PostgreSQL side: the statements in ``include/sql``, run with identifiers quoted by psycopg."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from psycopg import Connection, sql

from mongo_migration.documents import COLUMNS, Reject, copy_rows
from mongo_migration.pages import Page

SQL_DIR = Path(__file__).resolve().parents[2] / "include" / "sql"
# 63 characters at most for PostgreSQL, less the "_rejects" of the rejects table.
TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,54}")


def statement(name: str, table: str) -> sql.Composed:
    """The statement in ``include/sql/<name>.sql``, with ``{table}``, ``{rejects}``, ``{columns}`` set."""
    if not TABLE_NAME.fullmatch(table):
        raise ValueError(
            f"target table {table!r} is not a plain lowercase PostgreSQL name "
            f"(letters, digits and _, at most 55, not starting with a digit)"
        )
    return sql.SQL((SQL_DIR / f"{name}.sql").read_text()).format(
        table=sql.Identifier(table),
        rejects=sql.Identifier(f"{table}_rejects"),
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
    )


def reset_table(conn: Connection, table: str) -> None:
    with conn.transaction():
        conn.execute(statement("reset_table", table))


@dataclass
class PageStats:
    """What a page did and where its time went."""

    documents: int = 0  # read from the source: written + rejected
    rejected: int = 0  # set aside in the rejects table, with their reasons
    id_checksum: int = 0  # of the _id keys read, see documents.id_checksum()
    read_seconds: float = 0.0  # waiting for the source's batches
    convert_seconds: float = 0.0  # BSON to COPY text
    copy_seconds: float = 0.0  # the delete, handing rows to COPY and waiting for PostgreSQL to finish

    def as_dict(self) -> dict:
        return {
            name: round(value, 3) if type(value) is float else value for name, value in asdict(self).items()
        }


def replace_page(conn: Connection, table: str, page: Page, raw_batches: Iterable[bytes]) -> PageStats:
    """Delete what the page wrote before and COPY its documents and rejects, in one transaction.

    Each batch is converted and handed to COPY on its own, so PostgreSQL parses
    one batch (on its own core) while the next is converted. A writer thread
    would do the same on paper, but its fight for the GIL cost a third more
    (benchmarks/write_path.py).
    """
    stats = PageStats()
    clock = time.perf_counter()

    def lap() -> float:
        nonlocal clock
        now = time.perf_counter()
        elapsed, clock = now - clock, now
        return elapsed

    rejects: list[Reject] = []
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(statement("delete_page", table), {"page": page.number})
        with cursor.copy(statement("copy_page", table)) as copy:
            stats.copy_seconds += lap()
            for raw_batch in raw_batches:
                stats.read_seconds += lap()
                batch = copy_rows(raw_batch, page.number)
                stats.documents += batch.documents
                stats.id_checksum = (stats.id_checksum + batch.id_checksum) % 2**64
                rejects += batch.rejects
                stats.convert_seconds += lap()
                copy.write(batch.rows)
                stats.copy_seconds += lap()
        with cursor.copy(statement("copy_rejects", table)) as copy:
            for reject in rejects:
                copy.write_row((reject.key, reject.reason, reject.raw, page.number))
    stats.rejected = len(rejects)
    stats.copy_seconds += lap()
    return stats


def count_rows(conn: Connection, table: str) -> tuple[int, int]:
    """The rows of the table and of its rejects table."""
    return conn.execute(statement("count_rows", table)).fetchone()


def reject_reasons(conn: Connection, table: str) -> list[tuple[str, int]]:
    """The most frequent reasons in the rejects table, with their counts."""
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
