"""One page, top-down: read its documents from MongoDB, convert them, COPY them into the staging table.

Everything a page does happens in one PostgreSQL transaction: take the
target's load lock (shared), check that this run still owns the staging
tables, delete what an earlier try of the page wrote, then stream the page's
documents into ``COPY ... FROM STDIN``, and its child rows and rejects into
their tables. A retried page therefore replaces itself exactly; a killed one
leaves nothing.

The page arrives as raw BSON batches (no decoding until conversion); each
batch is converted and handed to COPY on its own, so PostgreSQL parses one
batch on its core while the next one is converted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from psycopg import Connection
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import CursorNotFound

from mongo_migration import target
from mongo_migration.connections import transaction
from mongo_migration.documents import Conversion, Reject, last_id
from mongo_migration.failpoint import failpoint
from mongo_migration.pages import Page
from mongo_migration.target import Owner, Tables

log = logging.getLogger(__name__)
# Documents per batch. PostgreSQL idles while a page's first batch is converted, and the page
# waits while it parses the last: at 500, 1,000,000 documents write in 1.50x the time of COPY
# alone, at 2000 in 2.06x (docs/performance.md).
READ_BATCH_SIZE = 500


@dataclass
class PageStats:
    """What a page did and where its time went."""

    documents: int = 0  # read from the source: written + rejected
    rejected: int = 0  # set aside in the rejects table, with their reasons
    read_seconds: float = 0.0  # waiting for the source's batches
    convert_seconds: float = 0.0  # BSON to COPY text
    copy_seconds: float = 0.0  # the delete, handing rows to COPY and waiting for PostgreSQL to finish
    absent: dict[str, int] = field(default_factory=dict)  # documents without each nullable column's path
    coerced: dict[str, int] = field(default_factory=dict)  # values each column took by its coercion

    def as_dict(self) -> dict:
        return {
            name: round(value, 3) if type(value) is float else value for name, value in asdict(self).items()
        }


class _Laps:
    """Seconds since the previous lap."""

    def __init__(self):
        self.last = time.perf_counter()

    def __call__(self) -> float:
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        return elapsed


def read_page(source: Collection, page: Page, session: ClientSession | None = None) -> Iterator[bytes]:
    """The page's documents as raw BSON batches in ``_id`` order, as the server sends them.

    They are decoded only by ``copy_page``. A cursor the server killed while the
    page waited (idle for its ten minutes, or killed by hand) is opened again
    after the last ``_id`` read, so a page never reads a document twice; what
    changed in the range meanwhile is the catch-up's.
    """
    query = page.mongo_filter()
    while True:
        last_batch = None
        try:
            batches = source.find_raw_batches(
                query, sort=[("_id", 1)], batch_size=READ_BATCH_SIZE, session=session
            )
            for last_batch in batches:
                yield last_batch
            return
        except CursorNotFound:
            if last_batch is None:
                raise
            last = last_id(last_batch)
            log.warning(
                "The cursor of %s was gone (idle too long?): reading on after _id %r", page.label(), last
            )
            query = {"$and": [page.mongo_filter(), {"_id": {"$gt": last}}]}


def copy_page(
    raw_batches: Iterable[bytes],
    conn: Connection,
    tables: Tables,
    conversion: Conversion,
    owner: Owner,
    page: Page,
) -> PageStats:
    """Replace the page's rows, child rows and rejects in the staging tables with ``raw_batches``.

    The batches are read lazily (``read_page``), inside the transaction. The
    table's rows stream into one COPY; the child rows and the documents set
    aside wait in memory until it ends, or until they reach ``HELD_IN_MEMORY_BYTES``:
    then that COPY ends, they are written, and another COPY goes on with the
    page's next batches.
    """
    stats = PageStats()
    lap = _Laps()
    batches = iter(raw_batches)
    with transaction(conn):
        target.start_page(conn, tables, owner, page.number)
        more = True
        while more:
            held, more = _copy_rows(conn, tables, conversion, page, batches, stats, lap)
            target.copy_children(conn, tables, {name: b"".join(rows) for name, rows in held.children.items()})
            target.copy_rejects(conn, tables, held.rejects, page.number)
            stats.copy_seconds += lap()
    stats.absent, stats.coerced = dict(conversion.absent), dict(conversion.coerced)
    return stats


# Keeps a page of large rejected documents, or of many child rows, within its memory.
HELD_IN_MEMORY_BYTES = 32 * 2**20


@dataclass
class _Held:
    """What waits for the table's COPY to end: the child rows and the documents set aside."""

    rejects: list[Reject] = field(default_factory=list)
    children: dict[str, list[bytes]] = field(default_factory=dict)
    size: int = 0


def _copy_rows(
    conn: Connection,
    tables: Tables,
    conversion: Conversion,
    page: Page,
    batches: Iterator[bytes],
    stats: PageStats,
    lap: _Laps,
) -> tuple[_Held, bool]:
    """COPY the table's rows of the next batches; what they hold back, and whether batches are left."""
    held = _Held()
    with target.copy_into_staging(conn, tables) as copy:
        stats.copy_seconds += lap()
        for raw_batch in batches:
            stats.read_seconds += lap()
            batch = conversion.rows(raw_batch, page.number)
            stats.documents += batch.documents
            stats.rejected += len(batch.rejects)
            held.rejects += batch.rejects
            held.size += sum(len(reject.raw) for reject in batch.rejects)
            for name, rows in batch.children.items():
                held.children.setdefault(name, []).append(rows)
                held.size += len(rows)
            stats.convert_seconds += lap()
            copy.write(batch.rows)
            stats.copy_seconds += lap()
            failpoint("page_batch_copied", page=page.number, documents=stats.documents)
            if held.size >= HELD_IN_MEMORY_BYTES:
                return held, True
    return held, False
