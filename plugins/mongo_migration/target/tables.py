"""A target's names and the SQL that runs on them: ``Tables`` (the table, its rejects and child tables,
as the mapping shapes them), ``statement`` (a file of ``include/sql`` with its placeholders filled, see
``include/sql/README.md``), the load lock and the staging tables' owner, the state tables, and the
catalog's answers the other modules share.

The staging tables (schema ``STAGING_SCHEMA``, named ``"<schema>.<table>"``, so that targets of the same
name in two schemas never share one) belong to the run that reset them, named in their comment; an
advisory lock keyed on the target makes that ownership hold: reset and publish take it alone, the owner's
pages share it, so no two runs ever write the same target.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cache, cached_property
from pathlib import Path

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from psycopg import Connection, errors, sql

from mongo_migration.documents import REJECT_COLUMNS, child_columns, table_columns
from mongo_migration.mapping import STAGING_SCHEMA, Mapping, check_relation_names, plain_name

SQL_DIR = Path(__file__).resolve().parents[3] / "include" / "sql"


# Which run published each live table: in the staging schema, under a name no
# target table can have (target names are lowercase).
PUBLISHED_TABLE = "Published"


# Where each target's staging tables stand in the source's change stream (changes.py).
POSITIONS_TABLE = "Positions"


# What the watch on every live table runs when someone else writes to it (state_tables.sql).
NOTE_WRITE_FUNCTION = "NoteWrite"


# The keys each run's staging tables hold, and what keeps them as they are written (state_tables.sql).
STAGED_KEYS_TABLE = "StagedKeys"
COUNT_KEYS_FUNCTION = "CountKeys"


# Types whose equality hides a difference the copy must carry: compared as text.
_COMPARED_AS_TEXT = ("jsonb", "numeric", "double precision")


# A reject's document is NULL where the mapping does not keep documents (keep_document: false): the fields
# it meant to leave out do not reach the live schema through its rejects.
_REJECT_DEFINITIONS = (
    '_id text COLLATE "C", column_name text, path text[], expected text, actual text, '
    "reason text NOT NULL, document bytea, page integer NOT NULL"
)


@dataclass(frozen=True)
class Owner:
    """The Airflow run that loads a target's staging tables."""

    dag_id: str
    run_id: str

    def __str__(self) -> str:
        return f"run {self.run_id!r} of DAG {self.dag_id!r}"


@dataclass(frozen=True)
class Tables:
    """A target: ``schema.table`` as ``mapping`` shapes it, with its rejects table and child tables.

    ``incremental``: its staging tables hold only the documents changed since
    the published point (``changed_keys`` lists them), and the copy is those
    rows with the live rows of every other document (``loaded`` tells).
    """

    schema: str
    table: str
    mapping: Mapping
    incremental: bool = False

    def __post_init__(self):
        try:
            plain_name(self.schema)
            check_relation_names(self.schema, self.table, self.mapping)
            if self.schema == STAGING_SCHEMA:
                raise ValueError(f"{STAGING_SCHEMA} holds the staging tables")
        except ValueError as error:
            raise ValueError(f"target {self.schema}.{self.table} cannot be used: {error}") from None

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"

    @cached_property
    def rejects(self) -> str:
        return self.relations[1]

    @cached_property
    def children(self) -> list[str]:
        """The child tables, in the mapping's order."""
        return self.relations[2:]

    @cached_property
    def relations(self) -> list[str]:
        """The table, its rejects table and its child tables."""
        return self.mapping.relations(self.table)

    def staged_name(self, relation: str | None = None) -> str:
        return f"{self.schema}.{relation or self.table}"

    def staging(self, relation: str | None = None) -> sql.Identifier:
        return sql.Identifier(STAGING_SCHEMA, self.staged_name(relation))

    def live(self, relation: str | None = None) -> sql.Identifier:
        return sql.Identifier(self.schema, relation or self.table)

    def read_again(self, relation: str | None = None) -> sql.Identifier:
        """The unlogged table where verify puts what it reads of the source for ``relation``: in the staging
        schema, under a name no staging table has ("read:" and a hash of the staging name, which fits
        PostgreSQL's 63 bytes whatever the relation's)."""
        digest = hashlib.sha256(self.staged_name(relation).encode()).hexdigest()[:24]
        return sql.Identifier(STAGING_SCHEMA, f"read:{digest}")

    @property
    def changed_keys(self) -> sql.Identifier:
        """An incremental run's staging table of the ``_id`` keys changed since the published point."""
        return sql.Identifier(STAGING_SCHEMA, f"{self.staged_name()}:changed")

    def columns(self, relation: str | None = None) -> tuple[str, ...]:
        """A table's columns, in COPY order."""
        relation = relation or self.table
        if relation == self.table:
            return table_columns(self.mapping)
        if relation == self.rejects:
            return REJECT_COLUMNS
        return child_columns(self.mapping.children[self.children.index(relation)])

    def key(self, relation: str | None = None) -> tuple[str, ...]:
        """The columns that identify a row: the _id, and in a child table the index too."""
        return ("_id", "_index") if relation in self.children else ("_id",)

    def definitions(self, relation: str | None = None, *, keyed: bool = True) -> sql.Composed:
        """A table's column definitions for CREATE TABLE (``keyed``: with its primary key and NOT NULLs)."""
        relation = relation or self.table
        if relation == self.rejects:
            return sql.SQL(_REJECT_DEFINITIONS)
        parts = [sql.SQL('_id text COLLATE "C" NOT NULL')]
        if relation in self.children:
            parts.append(sql.SQL("_index integer NOT NULL"))
        for name, pg_type, nullable in self.typed_columns(relation):
            null = sql.SQL(" NOT NULL" if keyed and not nullable else "")
            parts.append(sql.SQL("{} {}{}").format(sql.Identifier(name), sql.SQL(pg_type), null))
        parts.append(sql.SQL("page integer" + (" NOT NULL" if keyed else "")))
        if keyed:
            key = sql.SQL(", ").join(map(sql.Identifier, self.key(relation)))
            parts.append(sql.SQL("PRIMARY KEY ({})").format(key))
        return sql.SQL(", ").join(parts)

    def typed_columns(self, relation: str | None = None) -> list[tuple[str, str, bool]]:
        """The mapping's columns of a table (not the rejects): name, PostgreSQL type, nullable."""
        relation = relation or self.table
        if relation == self.rejects:
            return []
        if relation == self.table:
            columns = self.mapping.columns
            document = [("document", "jsonb", False)] if self.mapping.keep_document else []
        else:
            columns = self.mapping.children[self.children.index(relation)].columns
            document = []
        return [(column.name, column.type, column.nullable) for column in columns] + document

    def compared(self, relation: str | None, alias: str) -> sql.Composed:
        """A table's content (its columns but the page, the key first) as compared: as text where
        equality would hide a difference."""
        types = {name: pg_type for name, pg_type, _ in self.typed_columns(relation)}
        parts = []
        for name in self.columns(relation):
            if name == "page":
                continue
            column = sql.Identifier(alias, name)
            parts.append(
                sql.SQL("{}::text").format(column)
                if types.get(name, "").startswith(_COMPARED_AS_TEXT)
                else column
            )
        return sql.SQL(", ").join(parts)

    @property
    def lock_key(self) -> str:
        return f"{STAGING_SCHEMA}.{self.schema}.{self.table}"


def statement(
    name: str, tables: Tables, relation: str | None = None, /, **values: sql.Composable
) -> sql.Composed:
    """The statement in ``include/sql/<name>.sql`` for one of a target's tables (``relation``, the table
    itself by default), its names quoted by psycopg: the placeholders ``include/sql/README.md`` lists,
    and any ``values`` given."""
    relation = relation or tables.table
    text = sql_text(name)

    def names(columns: Iterable[str], alias: str | None = None) -> sql.Composed:
        return sql.SQL(", ").join(sql.Identifier(*((alias,) if alias else ()), column) for column in columns)

    def content() -> list[str]:
        return [column for column in tables.columns(relation) if column != "page"]

    def assigned() -> list[str]:
        return [column for column in tables.columns(relation) if column not in tables.key(relation)]

    # A live row's _id key; a reject whose _id could not be read has none, and the catch-up's ''.
    live_id = sql.SQL("coalesce(live._id, '')" if relation == tables.rejects else "live._id")
    placeholders = {  # each made only where the statement uses it
        "staging": lambda: tables.staging(relation),
        "staging_rejects": lambda: tables.staging(tables.rejects),
        "live": lambda: tables.live(relation),
        "live_rejects": lambda: tables.live(tables.rejects),
        "changed": lambda: tables.changed_keys,
        "copy": lambda: copy_of(tables, relation),
        "copy_rejects": lambda: copy_of(tables, tables.rejects),
        "live_id": lambda: live_id,
        "only_changed": lambda: sql.SQL(
            "AND {live_id} IN (SELECT _id FROM {changed})" if tables.incremental else ""
        ).format(live_id=live_id, changed=tables.changed_keys),
        "schema": lambda: sql.Identifier(tables.schema),
        "staging_schema": lambda: sql.Identifier(STAGING_SCHEMA),
        "published": lambda: sql.Identifier(STAGING_SCHEMA, PUBLISHED_TABLE),
        "note_write": lambda: sql.Identifier(STAGING_SCHEMA, NOTE_WRITE_FUNCTION),
        "staged_keys": lambda: sql.Identifier(STAGING_SCHEMA, STAGED_KEYS_TABLE),
        "read_again": lambda: tables.read_again(relation),
        "table_read_again": lambda: tables.read_again(tables.table),
        "count_keys": lambda: sql.Identifier(STAGING_SCHEMA, COUNT_KEYS_FUNCTION),
        "positions": lambda: sql.Identifier(STAGING_SCHEMA, POSITIONS_TABLE),
        "columns": lambda: names(tables.columns(relation)),
        "content": lambda: names(content()),
        "live_key": lambda: names(tables.key(relation), "live"),
        "staged_key": lambda: names(tables.key(relation), "staged"),
        "assigned": lambda: names(assigned()),
        "staged_values": lambda: names(assigned(), "staged"),
        "live_compared": lambda: tables.compared(relation, "live"),
        "staged_compared": lambda: tables.compared(relation, "staged"),
        "source_compared": lambda: tables.compared(relation, "source"),
    }
    used = {key: make() for key, make in placeholders.items() if f"{{{key}}}" in text}
    return sql.SQL(text).format(**used, **values)


def copy_of(tables: Tables, relation: str) -> sql.Composable:
    """The rows of the run's copy of a table: its staging table's, with an incremental run's live rows of
    the documents that did not change."""
    if not tables.incremental:
        return tables.staging(relation)
    return statement("incremental_copy", tables, relation)


def loaded(conn: Connection, tables: Tables) -> Tables:
    """``tables`` as the run that owns their staging tables loads them: in full, or incrementally."""
    name = tables.changed_keys.as_string(conn)
    incremental = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()[0]
    return replace(tables, incremental=incremental)


@cache
def sql_text(name: str) -> str:
    """The text of ``include/sql/<name>.sql``, read once per process."""
    return (SQL_DIR / f"{name}.sql").read_text()


class LoadLockBusy(AirflowException):
    """Another run or a person holds the target's load lock; a later try may get it."""


def lock_target(conn: Connection, tables: Tables, *, shared: bool) -> None:
    """Take the target's load lock until the transaction ends; see include/sql/lock_staging.sql."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    try:
        conn.execute(
            statement("lock_staging", tables, lock_function=sql.Identifier(function)),
            {"lock_key": tables.lock_key},
        )
    except errors.LockNotAvailable:
        raise LoadLockBusy(
            f"the load lock of table {tables} (advisory lock on hashtextextended('{tables.lock_key}', 0)) "
            f"is held by another run or session; gave up waiting after lock_timeout"
        ) from None


def staging_owner(conn: Connection, tables: Tables) -> Owner | None:
    """The run that reset the target's staging tables; None when there are none."""
    owner, _ = _staging_comment(conn, tables)
    return owner


def _staging_comment(conn: Connection, tables: Tables) -> tuple[Owner | None, str | None]:
    """The run that reset the staging tables and the version of the mapping it made them with."""
    row = conn.execute(
        statement("staging_owner", tables),
        {"staging_schema": STAGING_SCHEMA, "staged_name": tables.staged_name()},
    ).fetchone()
    if not row or not row[0]:
        return None, None
    comment = json.loads(row[0])
    return Owner(comment["dag_id"], comment["run_id"]), comment.get("mapping")


def check_owner(conn: Connection, tables: Tables, owner: Owner) -> None:
    """Refuse to write staging tables another run owns, or that this run made with another mapping (a
    deploy changed the mapping file while it ran: its pages would mix two shapes)."""
    current, version = _staging_comment(conn, tables)
    if current != owner:
        now = f"{current} owns them now" if current else "they do not exist"
        raise AirflowFailException(
            f"{owner} cannot write the staging tables of {tables}: {now}. Nothing was written; "
            f"reset_table of this run must run (again) first"
        )
    if version != tables.mapping.version:
        raise AirflowFailException(
            f"the mapping of {tables} changed while {owner} ran (version {version} when reset_table made "
            f"its staging tables, {tables.mapping.version} now): nothing was written. Trigger a new run."
        )


def _state_tables_exist(conn: Connection) -> bool:
    """Whether the shared state tables exist, whatever version made them: enough to read what was
    published (a dry run before the first run of a new version)."""
    names = {
        "published": f'{STAGING_SCHEMA}."{PUBLISHED_TABLE}"',
        "positions": f'{STAGING_SCHEMA}."{POSITIONS_TABLE}"',
    }
    return conn.execute(sql_text("state_tables_exist"), names).fetchone()[0]


# The version of the shared state (state_tables.sql), in the comment of "Published": raise it with any
# change there, so that the first run of the new version makes the change in every target database.
STATE_VERSION = "mongo_migration state 3"


def _state_tables_ready(conn: Connection) -> bool:
    names = {"published": f'{STAGING_SCHEMA}."{PUBLISHED_TABLE}"', "version": STATE_VERSION}
    return conn.execute(sql_text("state_tables_ready"), names).fetchone()[0]


def ensure_state_tables(conn: Connection) -> None:
    """Make the state every target shares (``state_tables.sql``), only where it is missing or older.

    Looking costs a read of the catalog; creating or altering it is done once,
    under a lock of its own, so that no run blocks another target's publish
    reading it.
    """
    if _state_tables_ready(conn):
        return
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"{STAGING_SCHEMA}.state"])
    if not conn.execute(sql_text("schema_exists"), {"schema": STAGING_SCHEMA}).fetchone()[0]:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STAGING_SCHEMA)))
    conn.execute(
        sql.SQL(sql_text("state_tables")).format(
            published=sql.Identifier(STAGING_SCHEMA, PUBLISHED_TABLE),
            positions=sql.Identifier(STAGING_SCHEMA, POSITIONS_TABLE),
            note_write=sql.Identifier(STAGING_SCHEMA, NOTE_WRITE_FUNCTION),
            staged_keys=sql.Identifier(STAGING_SCHEMA, STAGED_KEYS_TABLE),
            count_keys=sql.Identifier(STAGING_SCHEMA, COUNT_KEYS_FUNCTION),
            version=sql.Literal(STATE_VERSION),
        )
    )


def existing_relations(conn: Connection, tables: Tables) -> list[str]:
    """Which of the target's live tables exist."""
    found = dict(
        conn.execute(statement("live_exists", tables), {"names": live_relation_names(tables)}).fetchall()
    )
    return [relation for relation in tables.relations if found[f"{tables.schema}.{relation}"]]


def relation_exists(conn: Connection, tables: Tables, relation: str) -> bool:
    names = {"names": [f"{tables.schema}.{relation}"]}
    return conn.execute(statement("live_exists", tables), names).fetchone()[1]


def columns_of(conn: Connection, relation: sql.Identifier) -> list[tuple[str, str, bool]]:
    name = relation.as_string(conn)
    return conn.execute(sql_text("live_columns"), {"relation": name}).fetchall()


def count_live(conn: Connection, tables: Tables) -> int:
    return conn.execute(statement("count_live", tables)).fetchone()[0]


def live_relation_names(tables: Tables, relations: Iterable[str] | None = None) -> list[str]:
    return [f"{tables.schema}.{relation}" for relation in (relations or tables.relations)]


def lock_holder(row: tuple) -> str:
    pid, user, application, mode, state, query = row
    return f"pid {pid} ({user}, {application or 'no application name'}, {state}) holds {mode}: {query}"


def count_rows(conn: Connection, tables: Tables) -> tuple[int, int]:
    """The rows and the rejects of the run's copy of the target; an incremental run's from the counts its
    last publish recorded and the changes, without counting the live tables."""
    tables = loaded(conn, tables)
    if not tables.incremental:
        return conn.execute(statement("count_rows", tables)).fetchone()
    names = {"schema": tables.schema, "table": tables.table}
    return conn.execute(statement("count_changed_rows", tables), names).fetchone()
