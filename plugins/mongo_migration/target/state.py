"""The published state of each live table: the run and the point it was published as of, the versions
of its rows' form, and the fingerprint that tells whether anyone else changed the live tables since;
what an incremental run starts from."""

from __future__ import annotations

from typing import NamedTuple

from psycopg import Connection, errors

from mongo_migration.connections import transaction
from mongo_migration.target.staging import save_position, truncate_staging
from mongo_migration.target.tables import (
    Owner,
    Tables,
    _state_tables_exist,
    check_owner,
    count_live,
    existing_relations,
    live_relation_names,
    lock_target,
    sql_text,
    statement,
)


class PublishedState(NamedTuple):
    """What the live table's last publish recorded."""

    position: dict | None  # the point of the source's change stream it is consistent with
    fingerprint: str | None  # of its rows, as that publish left them
    versions: dict | None  # of the mapping (with its shape) and of the conversion that wrote them
    point_lost: str | None  # why a run could not start from that point since
    full_copy_seconds: float | None  # how long the last full copy needed the oplog to keep its start
    full_proof_at: float | None = None  # when the last full proof was published, in seconds since the epoch


def published_state(conn: Connection, tables: Tables) -> PublishedState | None:
    """What the live table's last publish recorded (``forget_published_point`` sets ``point_lost``);
    None: never published."""
    with transaction(conn):
        if not _state_tables_exist(conn):  # a target no run has reset yet
            return None
        names = {"schema": tables.schema, "table": tables.table}
        row = conn.execute(statement("published_state", tables), names).fetchone()
    return PublishedState(*row) if row else None


def forget_published_point(conn: Connection, tables: Tables, why: str) -> None:
    """Make the next run copy in full: the change stream cannot resume from the live table's point."""
    with transaction(conn):
        names = {"schema": tables.schema, "table": tables.table, "why": why}
        conn.execute(statement("forget_published_point", tables), names)


def start_incremental(
    conn: Connection, tables: Tables, owner: Owner, position: dict, fingerprint: str | None
) -> bool:
    """Make the owner's staging tables start an incremental copy from the live ones, consistent with
    ``position``: empty, to hold only the documents that change from there on.

    Only if the live tables still have the ``fingerprint`` their last publish
    recorded (one read of their rows, which writes nothing); False (nothing
    started) when someone else changed or replaced them since, or one is gone.
    """
    with transaction(conn):
        conn.execute(statement("repeatable_read", tables))
        lock_target(conn, tables, shared=True)
        check_owner(conn, tables, owner)
        truncate_staging(conn, tables)
        conn.execute(statement("drop_changed", tables))
        if not _unchanged(conn, tables, fingerprint):
            return False
        conn.execute(statement("make_incremental", tables))
        save_position(conn, tables, position)
    return True


def owns_live_tables(conn: Connection, tables: Tables) -> bool:
    """Whether this connection's role has the owner's privileges on the live tables that exist."""
    with transaction(conn):
        existing = existing_relations(conn, tables)
        if not existing:
            return True
        return conn.execute(
            statement("live_owned", tables), {"names": live_relation_names(tables, existing)}
        ).fetchone()[0]


def all_live_tables_exist(conn: Connection, tables: Tables) -> bool:
    """Whether the table, its rejects and its child tables all exist (a publish then makes none)."""
    with transaction(conn):
        return len(existing_relations(conn, tables)) == len(tables.relations)


def live_tables_unchanged(conn: Connection, tables: Tables, fingerprint: str | None) -> bool:
    """Whether the live tables all exist and still have ``fingerprint`` (reads only)."""
    with transaction(conn):
        return _unchanged(conn, tables, fingerprint)


def _unchanged(conn: Connection, tables: Tables, fingerprint: str | None) -> bool:
    """In the caller's transaction: whether the live tables all exist and still have ``fingerprint``."""
    if len(existing_relations(conn, tables)) != len(tables.relations):
        return False
    try:
        with conn.transaction():
            return fingerprint_of(conn, tables, live=True) == fingerprint
    except errors.UndefinedColumn:  # someone dropped one of the mapping's columns
        return False


def live_rows(conn: Connection, tables: Tables) -> int | None:
    """The live table's rows; None when it does not exist."""
    with transaction(conn):
        return count_live(conn, tables) if tables.table in existing_relations(conn, tables) else None


def published_by(conn: Connection, tables: Tables) -> str | None:
    """The DAG that last published the target; None: none did."""
    with transaction(conn):
        if not _state_tables_exist(conn):
            return None
        names = {"schema": tables.schema, "table": tables.table}
        last = conn.execute(statement("published_by", tables), names).fetchone()
        return last and last[0]


FINGERPRINT_FORM = "sha256"  # how fingerprint_of hashes the rows, the first word of what it returns


def fingerprint_of(conn: Connection, tables: Tables, live: bool = False) -> str:
    """The fingerprint of the target's live tables, or of its staging tables, whatever the session's
    settings (in the caller's transaction): for each table, its rows and the sum of their hashes."""
    conn.execute(sql_text("canonical_text"))
    sums = []
    for relation in tables.relations:
        rows = tables.live(relation) if live else tables.staging(relation)
        sums.append(conn.execute(statement("fingerprint", tables, relation, rows=rows)).fetchone())
    return _fingerprint_text(sums)


def _fingerprint_text(sums: list[tuple[int, int]]) -> str:
    return FINGERPRINT_FORM + ":" + "/".join(f"{count}:{total}" for count, total in sums)


def fingerprint_after_changes(conn: Connection, tables: Tables, before: str) -> str:
    """The fingerprint an incremental publish leaves: ``before`` (the live tables', checked when the run
    started), without the hashes of the changed documents' live rows, with those of their staging rows
    (in the caller's transaction, before the rows change)."""
    conn.execute(sql_text("canonical_text"))
    sums = []
    parts = before.removeprefix(FINGERPRINT_FORM + ":").split("/")
    for relation, part in zip(tables.relations, parts, strict=True):
        count, total = map(int, part.split(":"))
        for rows, sign in [
            (statement("changed_live_rows", tables, relation), -1),
            (tables.staging(relation), 1),
        ]:
            found = conn.execute(statement("fingerprint", tables, relation, rows=rows)).fetchone()
            count, total = count + sign * found[0], total + sign * int(found[1])
        sums.append((count, total))
    return _fingerprint_text(sums)
