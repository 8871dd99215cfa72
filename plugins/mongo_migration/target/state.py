"""The published state of each live table: the run and the point it was published as of, the versions
of its rows' form, and the watch that tells whether anyone else changed the live tables since; what an
incremental run starts from."""

from __future__ import annotations

from typing import NamedTuple

from psycopg import Connection, sql

from mongo_migration.connections import transaction
from mongo_migration.target.staging import save_position, truncate_staging
from mongo_migration.target.tables import (
    Owner,
    Tables,
    _state_tables_exist,
    check_owner,
    columns_of,
    count_live,
    existing_relations,
    live_relation_names,
    lock_target,
    statement,
)


class PublishedState(NamedTuple):
    """What the live table's last publish recorded."""

    position: dict | None  # the point of the source's change stream it is consistent with
    watch: str | None  # WATCHED where that publish set the live tables' watch up (a fingerprint before)
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
    """Make the next run copy in full, saying ``why``: a run cannot start from the live table's point (the
    change stream cannot resume from it, or a proof found a difference the stream cannot explain)."""
    with transaction(conn):
        names = {"schema": tables.schema, "table": tables.table, "why": why}
        conn.execute(statement("forget_published_point", tables), names)


def start_incremental(conn: Connection, tables: Tables, owner: Owner, position: dict) -> str | None:
    """Make the owner's staging tables start an incremental copy from the live ones, consistent with
    ``position``: empty, to hold only the documents that change from there on.

    Only if the live tables are as their last publish left them
    (``written_since_publish``: catalog reads and one row of the published
    state, whatever the tables' size); otherwise nothing is started, and the
    reason is returned.
    """
    with transaction(conn):
        conn.execute(statement("repeatable_read", tables))
        lock_target(conn, tables, shared=True)
        check_owner(conn, tables, owner)
        truncate_staging(conn, tables)
        conn.execute(statement("drop_changed", tables))
        if why := _written_since_publish(conn, tables):
            return why
        conn.execute(statement("make_incremental", tables))
        save_position(conn, tables, position)
    return None


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


def written_since_publish(conn: Connection, tables: Tables) -> str | None:
    """Why the live tables are not as their last publish left them (None: they are), reading only."""
    with transaction(conn):
        return _written_since_publish(conn, tables)


def _written_since_publish(conn: Connection, tables: Tables) -> str | None:
    """In the caller's transaction: why the live tables are not as their last publish left them, or
    cannot be shown to be (None: they are).

    A write by anyone else since is recorded by each table's watch
    (``watch_live_tables``), so that nothing here reads the rows. What the
    watch cannot see is checked in the catalog: a table gone, a watch disabled
    or dropped, a column of the mapping dropped or retyped.
    """
    existing = existing_relations(conn, tables)
    if len(existing) != len(tables.relations):
        gone = live_relation_names(
            tables, [relation for relation in tables.relations if relation not in existing]
        )
        return f"{', '.join(gone)} no longer exist"
    names = {"schema": tables.schema, "table": tables.table}
    written = conn.execute(statement("written_by_others", tables, lock=sql.SQL("")), names).fetchone()
    if written and written[0]:
        return f"the first write: {written[0]}"
    published = conn.execute(statement("published_by", tables), names).fetchone()
    made = published[2].get("oids", {}) if published else {}
    for name, oid in live_oids(conn, tables).items():
        if made.get(name) not in (None, oid):
            return f"{name} was dropped and made again (a restore?): it is not the table that was published"
    if missing := unwatched(conn, tables, tables.relations):
        names = ", ".join(live_relation_names(tables, missing))
        return f"the watch that records writes to {names} is disabled or gone, or watches other columns"
    recorded = published[2].get("columns", {}) if published else {}
    for relation in tables.relations:
        live = {name: pg_type for name, pg_type, _ in columns_of(conn, tables.live(relation))}
        for name, pg_type in dict(recorded.get(relation) or {}).items():
            if live.get(name) != pg_type:
                now = f"is {live[name]}" if name in live else "is gone"
                return f"column {name} of {tables.schema}.{relation} was {pg_type} at the publish and {now}"
    return None


WATCHED = "watched"  # what publish records where it recorded a fingerprint: the live tables' watch is on


def watch_live_tables(conn: Connection, tables: Tables, relations: list[str]) -> None:
    """In publish's transaction, its locks held (``unwatched``): the watch (``watch_live.sql``) on each of
    ``relations``, made or made again, enabled, on the mapping's columns."""
    for relation in relations:
        columns = sql.SQL(", ").join(map(sql.Identifier, tables.columns(relation)))
        target = sql.Literal(tables.table)
        conn.execute(statement("watch_live", tables, relation, target=target, watched_columns=columns))


def unwatched(conn: Connection, tables: Tables, relations: list[str]) -> list[str]:
    """Which of the live ``relations`` (that exist) have no watch, a watch disabled, or one on other
    columns than the mapping's (a person's own columns are theirs to write)."""
    found = []
    for relation in relations:
        name = f"{tables.schema}.{relation}"
        row = conn.execute(statement("watched", tables), {"name": name}).fetchone()
        if row is None or not row[0] or sorted(row[1]) != sorted(tables.columns(relation)):
            found.append(relation)
    return found


def live_oids(conn: Connection, tables: Tables) -> dict[str, int | None]:
    """The object id of each live table, by qualified name: what publish records, and the next run finds
    again unless someone dropped a table and made it again."""
    found = conn.execute(statement("live_oids", tables), {"names": live_relation_names(tables)}).fetchall()
    return dict(found)


def live_types(conn: Connection, tables: Tables, relation: str) -> dict[str, str]:
    """The types of a live table's columns of the mapping, as PostgreSQL spells them: what publish records
    and the next run finds again, unless someone dropped or retyped one."""
    ours = set(tables.columns(relation))
    return {name: pg_type for name, pg_type, _ in columns_of(conn, tables.live(relation)) if name in ours}


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
