"""A run's staging tables: reset, a page's start, the COPY of child rows and rejects, the changes the
catch-up applies, where they stand in the source's change stream, and what verify counts in them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import NamedTuple

from airflow.sdk.exceptions import AirflowFailException
from psycopg import Connection, Copy, sql
from psycopg.types.json import Jsonb

from mongo_migration.connections import transaction
from mongo_migration.documents import Batch
from mongo_migration.failpoint import failpoint
from mongo_migration.target.tables import (
    Owner,
    Tables,
    check_owner,
    columns_of,
    copy_of,
    count_rows,
    ensure_state_tables,
    loaded,
    lock_target,
    relation_exists,
    staging_owner,
    statement,
)

CAUGHT_UP_PAGE = -1  # the page of the rows the catch-up wrote


def reset_table(
    conn: Connection, tables: Tables, owner: Owner, still_running: Callable[[Owner], bool]
) -> Owner | None:
    """Recreate the target's staging tables, owned by ``owner``; return the run they were taken from, if any.

    A run still loading the target keeps it: this one fails at once without
    touching it (looked up before waiting for the lock, which that run's pages
    hold, and again under it). A finished or failed run's leftovers are replaced.
    """

    def refuse_if_loading() -> Owner | None:
        previous = staging_owner(conn, tables)
        if previous not in (None, owner) and still_running(previous):
            raise AirflowFailException(
                f"table {tables} is being loaded by {previous}, which is still running; this run "
                f"leaves it alone. Trigger again when that run has ended (or mark it failed)."
            )
        return previous

    with transaction(conn):
        ensure_state_tables(conn)
    with transaction(conn):
        refuse_if_loading()
        lock_target(conn, tables, shared=False)
        if not conn.execute(statement("schema_exists", tables), {"schema": tables.schema}).fetchone()[0]:
            raise AirflowFailException(
                f"target schema {tables.schema!r} does not exist in the target database"
            )
        previous = refuse_if_loading()
        conn.execute(statement("reset_table", tables), {"staged_name": tables.staged_name()})
        conn.execute(statement("drop_changed", tables))  # a run is incremental once open_change_stream says
        for relation in tables.relations:
            definitions = tables.definitions(relation)
            conn.execute(statement("create_staging", tables, relation, definitions=definitions))
        conn.execute(statement("index_rejects", tables, tables.rejects))
        conn.execute(statement("forget_staged_keys", tables), {"names": _keyed_names(tables)})
        for relation in (tables.table, tables.rejects):
            conn.execute(statement("count_keys", tables, relation))
        owner_comment = sql.Literal(json.dumps({**asdict(owner), "mapping": tables.mapping.version}))
        conn.execute(statement("set_owner", tables, owner=owner_comment))
    return previous if previous != owner else None


class StagedState(NamedTuple):
    """What the run's staging tables hold, as verify proves it and publish finds it again: their rows and
    rejects (an incremental run's copy's), which keys (``keys`` and ``key_hash``, as their writes counted
    them), the number of the last write to them (``last_write``: a page copied again writes the same keys)
    and their point in the stream. None where a proof of an earlier version did not record it."""

    rows: int
    rejects: int
    keys: int | None
    key_hash: str | None
    last_write: int | None
    position: dict | None

    def differs_from(self, proved: StagedState) -> bool:
        """Whether this is not the state ``proved`` (what it did not record is not compared)."""
        return any(found is not None and found != now for found, now in zip(proved, self, strict=True))


def staged_state(conn: Connection, tables: Tables) -> StagedState:
    """In the caller's transaction: what the run's staging tables hold now, without reading them (the
    counts of ``count_rows``, the staged keys' sums and last write, the position)."""
    rows, rejects = count_rows(conn, tables)
    names = {"names": _keyed_names(tables)}
    keys, key_hash, last_write = conn.execute(statement("staged_keys", tables), names).fetchone()
    return StagedState(rows, rejects, keys, key_hash, last_write, staging_position(conn, tables))


def _keyed_names(tables: Tables) -> list[str]:
    """The staging tables whose keys are counted: the table's and its rejects'."""
    return [tables.staged_name(tables.table), tables.staged_name(tables.rejects)]


def start_page(conn: Connection, tables: Tables, owner: Owner, page: int) -> None:
    """In the page's transaction: share the load lock, check the owner, delete what the page wrote before."""
    lock_target(conn, tables, shared=True)
    check_owner(conn, tables, owner)
    for relation in tables.relations:
        conn.execute(statement("delete_page", tables, relation), {"page": page})


def reject_reasons(conn: Connection, tables: Tables) -> list[tuple[str | None, str, int]]:
    """The most frequent (column, reason) of the copy's rejects, with their counts."""
    return conn.execute(statement("reject_reasons", loaded(conn, tables))).fetchall()


def rejects_by_column(conn: Connection, tables: Tables) -> dict[str, int]:
    """How many documents each column set aside ("(document)": the document as a whole)."""
    rows = conn.execute(statement("rejects_by_column", loaded(conn, tables))).fetchall()
    return {column or "(document)": count for column, count in rows}


def column_counts(
    conn: Connection, tables: Tables, changed: set[str], absent: dict[str, int], coerced: dict[str, int]
) -> dict:
    """What a full copy did to each column and child table, against the live tables: for each typed
    column (``columns``) its rows and NULLs in the copy and in the live table (None: it has no such
    column), how often the pages found its path absent and how many values they coerced (``absent`` and
    ``coerced``, by column or ``child.column``), and whether the mapping changed it since the last publish
    (``judged``: in ``changed``, the names ``mapping.changed_columns`` gives); for each child table
    (``children``) its rows in the copy and the live table, judged when its array's path changed. A path
    typed wrong shows as a column NULL far more often than in the live table, or a child table emptied."""
    tables = loaded(conn, tables)
    columns, children = [], []
    for relation in [tables.table, *tables.children]:
        if relation == tables.table:
            mapped, prefix = tables.mapping.columns, ""
        else:
            child = tables.mapping.children[tables.children.index(relation)]
            mapped, prefix = child.columns, f"{child.name}."
        live = tables.live(relation)
        live_names = (
            {name for name, *_ in columns_of(conn, live)} if relation_exists(conn, tables, relation) else None
        )
        copy_counts = _count_nulls(conn, tables, relation, copy_of(tables, relation), mapped)
        compared = [column for column in mapped if column.name in (live_names or ())]
        live_counts = _count_nulls(conn, tables, relation, live, compared) if live_names is not None else {}
        if relation != tables.table:
            judged = f"{child.name}[]" in changed
            rows = {"rows": copy_counts["*"], "live_rows": live_counts.get("*"), "judged": judged}
            children.append({"table": relation, "path": list(child.path), **rows})
        for column in mapped:
            name = prefix + column.name
            columns.append(
                {
                    "table": relation,
                    "column": column.name,
                    "path": list(column.path),
                    "rows": copy_counts["*"],
                    "nulls": copy_counts[column.name],
                    "live_rows": live_counts.get("*") if column.name in live_counts else None,
                    "live_nulls": live_counts.get(column.name),
                    "absent": absent.get(name, 0),
                    "coerced": coerced.get(name, 0),
                    "judged": name in changed,
                }
            )
    return {"columns": columns, "children": children}


def _count_nulls(
    conn: Connection, tables: Tables, relation: str, rows: sql.Composable, columns: Iterable
) -> dict[str, int]:
    names = [column.name for column in columns]
    nulls = sql.SQL("").join(sql.SQL(", count(*) - count({})").format(sql.Identifier(name)) for name in names)
    counts = conn.execute(statement("count_nulls", tables, relation, rows=rows, nulls=nulls)).fetchone()
    return dict(zip(["*", *names], counts, strict=True))


def record_start(conn: Connection, tables: Tables, owner: Owner, position: dict | None) -> None:
    """Empty the owner's staging tables for a full copy and record where its change stream starts (None:
    nowhere).

    Emptied, and made full again, since an earlier try of the same run may have
    begun an incremental one (``start_incremental``).
    """
    with transaction(conn):
        lock_target(conn, tables, shared=True)
        check_owner(conn, tables, owner)
        truncate_staging(conn, tables)
        conn.execute(statement("drop_changed", tables))
        save_position(conn, tables, position)


def truncate_staging(conn: Connection, tables: Tables) -> None:
    staging = sql.SQL(", ").join(tables.staging(relation) for relation in tables.relations)
    conn.execute(statement("truncate_staging", tables, relations=staging))


def save_position(conn: Connection, tables: Tables, position: dict | None) -> None:
    """Store where the staging tables stand in the source's change stream (None: it has none)."""
    conn.execute(
        statement("save_position", tables), {"staged_name": tables.staged_name(), "position": Jsonb(position)}
    )


def staging_position(conn: Connection, tables: Tables) -> dict | None:
    """Where the staging tables stand in the source's change stream; None: nowhere (no change stream)."""
    row = conn.execute(
        statement("staging_position", tables), {"staged_name": tables.staged_name()}
    ).fetchone()
    return row[0] if row else None


@contextmanager
def copy_into_staging(conn: Connection, tables: Tables, relation: str | None = None) -> Iterator[Copy]:
    """A COPY into a staging table (the table's by default), in the caller's transaction: every COPY the
    DAGs make goes through here or ``copy_into_source_rows``."""
    with conn.cursor() as cursor, cursor.copy(statement("copy_into_staging", tables, relation)) as copy:
        yield copy


@contextmanager
def copy_into_source_rows(conn: Connection, tables: Tables, relation: str) -> Iterator[Copy]:
    """A COPY into the table where verify puts what it reads of the source for ``relation``
    (``Tables.read_again``)."""
    with conn.cursor() as cursor, cursor.copy(statement("copy_source_rows", tables, relation)) as copy:
        yield copy


def copy_children(conn: Connection, tables: Tables, children: dict[str, bytes]) -> None:
    """COPY child rows (COPY text by child name) into the staging child tables (caller's transaction)."""
    for child, relation in zip(tables.mapping.children, tables.children, strict=True):
        if children.get(child.name):
            with copy_into_staging(conn, tables, relation) as copy:
                copy.write(children[child.name])


def copy_rejects(conn: Connection, tables: Tables, rejects: Iterable, page: int) -> None:
    """COPY documents set aside into the staging rejects table (in the caller's transaction): each with its
    ``_id``, column, path, types and reason, and its document only where the mapping keeps documents."""
    keep_document = tables.mapping.keep_document
    with copy_into_staging(conn, tables, tables.rejects) as copy:
        for reject in rejects:
            row = reject.row(page)
            copy.write_row(row if keep_document else (*row[:-2], None, row[-1]))


def apply_changes(
    conn: Connection, tables: Tables, owner: Owner, keys: list[str], batch: Batch, position: dict
) -> None:
    """Replace the rows, child rows and rejects of ``keys`` with ``batch``'s, and store ``position``.

    One transaction, sharing the load lock like a page: the rows and the
    position they reach commit together or not at all, so a reader of the
    staging tables never sees a document without its child rows.
    """
    with transaction(conn):
        lock_target(conn, tables, shared=True)
        check_owner(conn, tables, owner)
        for relation in tables.relations:
            conn.execute(statement("delete_changed", tables, relation), {"keys": keys})
        with copy_into_staging(conn, tables) as copy:
            copy.write(batch.rows)
        copy_children(conn, tables, batch.children)
        copy_rejects(conn, tables, batch.rejects, CAUGHT_UP_PAGE)
        if tables.incremental:
            conn.execute(statement("record_changed", tables), {"keys": keys})
        save_position(conn, tables, position)
        failpoint("catch_up_batch_applied", documents=len(keys))
