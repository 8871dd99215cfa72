"""The PostgreSQL side: the statements in ``include/sql``, run with identifiers quoted by psycopg.

A target (``Tables``) is a table, its rejects table and a child table per array
its mapping declares. A run loads them into staging tables (schema
``STAGING_SCHEMA``, named ``"<schema>.<table>"``, so that targets of the same
name in two schemas never share one) and ``publish`` applies them to the live
ones in one transaction. The staging tables belong to the run that reset them,
named in their comment; an advisory lock keyed on the target makes that
ownership hold: reset and publish take it alone, the owner's pages share it, so
no two runs ever write the same target.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from functools import cache, cached_property
from pathlib import Path
from typing import NamedTuple

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from psycopg import Connection, errors, sql
from psycopg.types.json import Jsonb

from mongo_migration.connections import transaction
from mongo_migration.documents import REJECT_COLUMNS, Batch, child_columns, table_columns
from mongo_migration.failpoint import failpoint
from mongo_migration.mapping import STAGING_SCHEMA, Mapping, check_relation_names, plain_name
from mongo_migration.run_options import RunOptions

SQL_DIR = Path(__file__).resolve().parents[2] / "include" / "sql"
# Which run published each live table: in the staging schema, under a name no
# target table can have (target names are lowercase).
PUBLISHED_TABLE = "Published"
# Where each target's staging tables stand in the source's change stream (changes.py).
POSITIONS_TABLE = "Positions"
CAUGHT_UP_PAGE = -1  # the page of the rows the catch-up wrote
# Types whose equality hides a difference the copy must carry: compared as text.
_COMPARED_AS_TEXT = ("jsonb", "numeric", "double precision")
_REJECT_DEFINITIONS = (
    '_id text COLLATE "C", column_name text, path text[], expected text, actual text, '
    "reason text NOT NULL, document bytea NOT NULL, page integer NOT NULL"
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
    itself by default), its names quoted by psycopg.

    Sets ``{staging}`` and ``{live}`` (and the table's ``{staging_rejects}``),
    ``{copy}`` (and ``{copy_rejects}``: the rows of the run's copy, see
    ``Tables``), ``{changed}``, ``{live_id}`` (the key of a row aliased ``live``)
    and ``{only_changed}`` (a condition keeping an incremental run to the live
    rows of the changed documents),
    ``{schema}``, ``{staging_schema}``, ``{published}``, ``{positions}``,
    ``{columns}``, ``{content}`` (the columns but the page), the key and the
    comparisons, and any ``values`` given.
    """
    relation = relation or tables.table
    text = _sql_text(name)

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
        "changed": lambda: tables.changed_keys,
        "copy": lambda: _copy_of(tables, relation),
        "copy_rejects": lambda: _copy_of(tables, tables.rejects),
        "live_id": lambda: live_id,
        "only_changed": lambda: sql.SQL(
            "AND {live_id} IN (SELECT _id FROM {changed})" if tables.incremental else ""
        ).format(live_id=live_id, changed=tables.changed_keys),
        "schema": lambda: sql.Identifier(tables.schema),
        "staging_schema": lambda: sql.Identifier(STAGING_SCHEMA),
        "published": lambda: sql.Identifier(STAGING_SCHEMA, PUBLISHED_TABLE),
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


def _copy_of(tables: Tables, relation: str) -> sql.Composable:
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
def _sql_text(name: str) -> str:
    """The text of ``include/sql/<name>.sql``, read once per process."""
    return (SQL_DIR / f"{name}.sql").read_text()


class LoadLockBusy(AirflowException):
    """Another run or a person holds the target's load lock; a later try may get it."""


def _lock(conn: Connection, tables: Tables, *, shared: bool) -> None:
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


def _check_owner(conn: Connection, tables: Tables, owner: Owner) -> None:
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
    names = {
        "published": f'{STAGING_SCHEMA}."{PUBLISHED_TABLE}"',
        "positions": f'{STAGING_SCHEMA}."{POSITIONS_TABLE}"',
    }
    return conn.execute(_sql_text("state_tables_ready"), names).fetchone()[0]


def ensure_state_tables(conn: Connection) -> None:
    """Make the state every target shares (``state_tables.sql``), only where it is missing or older.

    Looking costs a read of the catalog; creating or altering it is done once,
    under a lock of its own, so that no run blocks another target's publish
    reading it.
    """
    if _state_tables_exist(conn):
        return
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"{STAGING_SCHEMA}.state"])
    if not conn.execute(_sql_text("schema_exists"), {"schema": STAGING_SCHEMA}).fetchone()[0]:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STAGING_SCHEMA)))
    conn.execute(
        sql.SQL(_sql_text("state_tables")).format(
            published=sql.Identifier(STAGING_SCHEMA, PUBLISHED_TABLE),
            positions=sql.Identifier(STAGING_SCHEMA, POSITIONS_TABLE),
        )
    )


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
        _lock(conn, tables, shared=False)
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
        owner_comment = sql.Literal(json.dumps({**asdict(owner), "mapping": tables.mapping.version}))
        conn.execute(statement("set_owner", tables, owner=owner_comment))
    return previous if previous != owner else None


@dataclass(frozen=True)
class Guards:
    """What ``publish`` refuses unless a person allows it, each by its Param, for one run."""

    verified: tuple[int, int] | None  # the rows and rejects verify proved; None: it returned nothing
    options: RunOptions = field(
        default_factory=RunOptions
    )  # the Params that allow what is refused, and the limits
    columns: dict | None = None  # verify's column_counts (a full copy's); None: not counted


def publish(
    conn: Connection,
    tables: Tables,
    owner: Owner,
    guards: Guards,
    wait_seconds: float,
    versions: dict | None = None,
    full_copy_seconds: float | None = None,
) -> dict:
    """Make the live tables equal to the owner's verified staging tables, in one transaction.

    Where a live table exists, its rows are changed in place (rows gone,
    changed, new), so everything that is not its rows stays; a column the
    mapping added, dropped or retyped changes with them. A table's first publish
    moves its staging table in. Readers see the old rows until the commit. Lock
    waits are short attempts, repeated for ``wait_seconds``; a retry after a
    publish that committed returns what that publish did. ``versions`` (of the
    mapping and the conversion) are recorded with the point, and so is how long
    a full copy needed the source's oplog to keep its start
    (``full_copy_seconds``; an incremental run keeps the last).
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return _publish_once(conn, tables, owner, guards, versions or {}, full_copy_seconds)
        except LoadLockBusy as busy:
            if time.monotonic() >= deadline:
                raise LoadLockBusy(f"{busy}; publish tried for {wait_seconds:.0f} s") from None
        except (errors.LockNotAvailable, errors.DeadlockDetected) as error:
            if time.monotonic() >= deadline:
                with transaction(conn):
                    holders = conn.execute(statement("lock_holders", tables), {"names": _live_names(tables)})
                    sessions = "; ".join(_session(row) for row in holders) or "none any more"
                raise AirflowException(
                    f"table {tables} is busy: publish gave up after {wait_seconds:.0f} s of "
                    f"{PUBLISH_LOCK_TIMEOUT} attempts ({str(error).splitlines()[0]}); sessions that "
                    f"hold locks on it other than readers': {sessions}"
                ) from None
        except _BROKEN_BY_THE_COPY as error:  # a retry would meet the same rows
            raise AirflowFailException(
                f"publishing {tables} breaks a constraint, so nothing was published: "
                f"{str(error).splitlines()[0]}"
            ) from error
        time.sleep(PUBLISH_RETRY_PAUSE_SECONDS)


# What the copy's rows themselves break; a unique violation is left to the task's retries
# (a writer inserting the same _id meanwhile).
_BROKEN_BY_THE_COPY = (
    errors.ForeignKeyViolation,
    errors.CheckViolation,
    errors.NotNullViolation,
    errors.ExclusionViolation,
    errors.RestrictViolation,
)
PUBLISH_LOCK_TIMEOUT = "5s"  # a longer wait would stall every reader queued behind publish
PUBLISH_RETRY_PAUSE_SECONDS = 2


def _publish_once(
    conn: Connection,
    tables: Tables,
    owner: Owner,
    guards: Guards,
    versions: dict,
    full_copy_seconds: float | None,
) -> dict:
    with transaction(conn):
        conn.execute(f"SET LOCAL lock_timeout = '{PUBLISH_LOCK_TIMEOUT}'")
        _lock(conn, tables, shared=False)
        names = {"schema": tables.schema, "table": tables.table}
        last = conn.execute(statement("published_by", tables), names).fetchone()
        if last and Owner(last[0], last[1]) == owner and staging_owner(conn, tables) != owner:
            return {**last[2], "already_published": True}  # a retry of a publish that committed
        _check_owner(conn, tables, owner)
        tables = loaded(conn, tables)
        previous = last[2] if last else {}
        existing = _existing(conn, tables)
        if existing and (last is None or last[0] != owner.dag_id):
            raise AirflowFailException(_not_ours(tables, owner, existing, last and last[0]))
        if tables.incremental and len(existing) != len(tables.relations):
            gone = ", ".join(_live_names(tables, set(tables.relations) - set(existing)))
            raise AirflowFailException(
                f"{gone} went away while this incremental run copied the changes since its publish: "
                f"nothing was published. A new run copies {tables} in full."
            )
        if (
            existing
            and not conn.execute(
                statement("live_owned", tables), {"names": _live_names(tables, existing)}
            ).fetchone()[0]
        ):
            user = conn.execute("SELECT current_user").fetchone()[0]
            raise AirflowFailException(
                f"role {user} does not own {tables} (or its rejects or child tables), so its ANALYZE "
                f"after changing the rows would do nothing: nothing was published. Give it the "
                f"owner's privileges (own the tables, or inherit from their owner)."
            )
        staging = sql.SQL(", ").join(tables.staging(relation) for relation in tables.relations)
        conn.execute(statement("lock_own_staging", tables, relations=staging))
        changes = _column_changes(conn, tables, existing, previous)
        gone_children = [
            relation
            for relation in previous.get("children", [])
            if relation not in tables.children and _exists(conn, tables, relation)
        ]
        reshaped = [relation for relation in existing if relation in changes] + gone_children
        for mode, relations in (
            ("SHARE UPDATE EXCLUSIVE", [relation for relation in existing if relation not in changes]),
            ("ACCESS EXCLUSIVE", reshaped),  # only the tables whose columns change, or that go
        ):
            if relations:
                live = sql.SQL(", ").join(tables.live(relation) for relation in relations)
                conn.execute(statement("lock_live", tables, relations=live, mode=sql.SQL(mode)))
        _refuse_dependants(conn, tables, changes, gone_children)
        rows, rejects = count_rows(conn, tables)
        live_rows = _count_live(conn, tables) if tables.table in existing else None
        added = _added_rejects(conn, tables) if tables.rejects in existing else rejects
        _check_guards(guards, rows, rejects, added, live_rows, str(tables))
        if tables.incremental:  # the live tables' as the run found them, with the changes
            fingerprint = _fingerprint_after_changes(conn, tables, last[3])
        else:  # the staging tables', which the live tables take
            fingerprint = _fingerprint(conn, tables)
        result = {"rows": rows, "rejects": rejects, "added_rejects": added, "live_rows_before": live_rows}
        if tables.incremental:
            result |= {"method": "changes applied in place", "deleted": 0, "updated": 0, "inserted": 0}
        elif tables.table in existing:
            result |= {"method": "applied in place", "deleted": 0, "updated": 0, "inserted": 0}
        else:
            result |= {"method": "moved in (first publish)", "deleted": 0, "updated": 0, "inserted": rows}
        for relation in [tables.table, *tables.children]:
            if relation in existing:
                not_null = _apply_column_changes(conn, tables, relation, changes.get(relation, {}))
                counts = _apply_rows(conn, tables, relation)
                if relation == tables.table:
                    result |= counts
                for column in not_null:
                    conn.execute(statement("set_not_null", tables, relation, column=sql.Identifier(column)))
            else:
                _move_in(conn, tables, relation)
        if tables.table in existing:
            now = _count_live(conn, tables)
            if now != rows:
                raise AirflowFailException(
                    f"{tables} holds {now} rows after publishing {rows}; nothing was published. "
                    f"Does a row-level security policy hide rows from this connection's role?"
                )
        if tables.rejects in existing:
            _apply_column_changes(conn, tables, tables.rejects, changes.get(tables.rejects, {}))
            conn.execute(statement("replace_rejects", tables, tables.rejects))
        else:
            _move_in(conn, tables, tables.rejects)
        for relation in gone_children:
            conn.execute(statement("drop_live", tables, relation))
        position = staging_position(conn, tables)
        result |= {
            "position": position,
            "versions": versions,
            "full_copy_seconds": full_copy_seconds,
            "columns": {relation: list(tables.columns(relation)) for relation in tables.relations},
            "children": tables.children,
            "dropped": gone_children,
        }
        _set_comment(conn, tables, owner, position)
        for relation in tables.relations:
            if not tables.incremental:  # a few changes leave the statistics to autovacuum
                conn.execute(statement("analyze_live", tables, relation))
            conn.execute(statement("drop_staging", tables, relation))
        conn.execute(statement("drop_changed", tables))
        conn.execute(
            statement("record_published", tables),
            {
                **asdict(owner),
                **names,
                "result": Jsonb(result),
                "position": Jsonb(position),
                "fingerprint": fingerprint,
            },
        )
        failpoint("publish_before_commit")
        return result


def _not_ours(tables: Tables, owner: Owner, existing: list[str], published_by: str | None) -> str:
    """Why publish leaves alone live tables that this DAG did not make: it would delete their rows."""
    names = ", ".join(f"{tables.schema}.{relation}" for relation in existing)
    if published_by is None:
        return (
            f"{names} exist but no publish of this project made them, so publish leaves them alone (it "
            f"would change their columns and delete every row whose _id the copy lacks): nothing was "
            f"published. Choose another target_table, or drop or rename them to let this DAG make them."
        )
    return (
        f"{names} were last published by DAG {published_by!r}, not by {owner.dag_id!r}: two DAGs would "
        f"take turns replacing each other's rows, so nothing was published. Choose another target_table; "
        f'to hand the table to {owner.dag_id!r} on purpose: UPDATE {STAGING_SCHEMA}."{PUBLISHED_TABLE}" '
        f"SET dag_id = '{owner.dag_id}' WHERE target_schema = '{tables.schema}' "
        f"AND target_table = '{tables.table}';"
    )


def _existing(conn: Connection, tables: Tables) -> list[str]:
    """Which of the target's live tables exist."""
    found = dict(conn.execute(statement("live_exists", tables), {"names": _live_names(tables)}).fetchall())
    return [relation for relation in tables.relations if found[f"{tables.schema}.{relation}"]]


def _exists(conn: Connection, tables: Tables, relation: str) -> bool:
    names = {"names": [f"{tables.schema}.{relation}"]}
    return conn.execute(statement("live_exists", tables), names).fetchone()[1]


@dataclass(frozen=True)
class _ColumnChange:
    kind: str  # "add", "drop", "retype" or "nullable"
    pg_type: str = ""
    nullable: bool = True


def _column_changes(
    conn: Connection, tables: Tables, existing: list[str], previous: dict
) -> dict[str, dict[str, _ColumnChange]]:
    """How each existing live table's columns differ from its staging table's: what a changed mapping
    adds, drops (only columns an earlier publish wrote: a person's own columns stay) or retypes."""
    ours_before = previous.get("columns", {})
    changes = {}
    for relation in existing:
        live = {
            name: (pg_type, not_null) for name, pg_type, not_null in _columns_of(conn, tables.live(relation))
        }
        staged = {
            name: (pg_type, not_null)
            for name, pg_type, not_null in _columns_of(conn, tables.staging(relation))
        }
        here = {}
        for name, (pg_type, not_null) in staged.items():
            if name not in live:
                here[name] = _ColumnChange("add", pg_type, not not_null)
            elif live[name][0] != pg_type:
                here[name] = _ColumnChange("retype", pg_type, not not_null)
            elif live[name][1] != not_null:
                here[name] = _ColumnChange("nullable", pg_type, not not_null)
        for name in live.keys() - staged.keys():
            if name in ours_before.get(relation, []):
                here[name] = _ColumnChange("drop")
        if here:
            changes[relation] = here
    return changes


def _columns_of(conn: Connection, relation: sql.Identifier) -> list[tuple[str, str, bool]]:
    name = relation.as_string(conn)
    return conn.execute(_sql_text("live_columns"), {"relation": name}).fetchall()


def _refuse_dependants(
    conn: Connection, tables: Tables, changes: dict[str, dict[str, _ColumnChange]], gone_children: list[str]
) -> None:
    """Refuse, naming them, what depends on a column the changed mapping drops or retypes, or on a child
    table it drops: PostgreSQL would refuse the change (or drop them with CASCADE, which publish never
    does)."""
    blocked = []
    for relation, columns in changes.items():
        touched = [name for name, change in columns.items() if change.kind in ("drop", "retype")]
        if touched:
            names = {"relation": f"{tables.schema}.{relation}", "columns": touched}
            for (dependant,) in conn.execute(_sql_text("column_dependants"), names):
                blocked.append(f"{dependant} (on {relation}: {', '.join(touched)})")
    for relation in gone_children:
        for (dependant,) in conn.execute(
            _sql_text("table_dependants"), {"relation": f"{tables.schema}.{relation}"}
        ):
            blocked.append(f"{dependant} (on {relation}, a child table the mapping no longer has)")
    if blocked:
        raise AirflowFailException(
            f"the mapping of {tables} changed columns that other objects depend on: {'; '.join(blocked)}. "
            f"Nothing was published. Drop or change those objects, then publish again (a new run)."
        )


def _apply_column_changes(
    conn: Connection, tables: Tables, relation: str, changes: dict[str, _ColumnChange]
) -> list[str]:
    """Change a live table's columns as the mapping changed them; return those to make NOT NULL once
    the rows are in."""
    not_null = []
    for name, change in changes.items():
        column = sql.Identifier(name)
        pg_type = sql.SQL(change.pg_type)
        if change.kind == "add":
            conn.execute(statement("add_column", tables, relation, column=column, type=pg_type))
        elif change.kind == "drop":
            conn.execute(statement("drop_column", tables, relation, column=column))
        elif change.kind == "retype":
            conn.execute(statement("retype_column", tables, relation, column=column, type=pg_type))
        elif change.nullable:
            conn.execute(statement("drop_not_null", tables, relation, column=column))
        if change.kind != "drop" and not change.nullable:
            not_null.append(name)
    return not_null


def _apply_rows(conn: Connection, tables: Tables, relation: str) -> dict:
    """Make a live table's rows equal to its staging table's, in place."""
    return {
        "deleted": conn.execute(statement("delete_gone", tables, relation)).rowcount,
        "updated": conn.execute(statement("update_changed", tables, relation)).rowcount,
        "inserted": conn.execute(statement("insert_new", tables, relation)).rowcount,
    }


def _move_in(conn: Connection, tables: Tables, relation: str) -> None:
    """A table's first publish: its staging table moves in, its indexes losing the staging name's schema."""
    moved = sql.Identifier(tables.schema, tables.staged_name(relation))
    conn.execute(statement("move_in", tables, relation, moved=moved, live_name=sql.Identifier(relation)))
    names = {"live": f"{tables.schema}.{relation}", "prefix": f"{tables.schema}."}
    for index, name in conn.execute(_sql_text("moved_indexes"), names).fetchall():
        conn.execute(
            statement("rename_index", tables, relation, index=sql.SQL(index), name=sql.Identifier(name))
        )


COMMENT_MARK = "mongo_migration:"  # the first words of the line publish writes in the table's comment


def _set_comment(conn: Connection, tables: Tables, owner: Owner, position: dict | None) -> None:
    """End the live table's comment with a line naming the run and the source point it is consistent with.

    The comment's other lines (a person's) stay as they are.
    """
    (comment,) = conn.execute(statement("table_comment", tables), {"live": str(tables)}).fetchone()
    kept = [line for line in (comment or "").splitlines() if not line.startswith(COMMENT_MARK)]
    point = (
        f"consistent with the source at {position['wall_time']} (cluster time "
        f"{position['cluster_time']['t']}.{position['cluster_time']['i']}, resume token "
        f"{position['resume_token']['_data']})"
        if position
        else "copied without a change stream: no consistent point is known"
    )
    if position and position.get("quiet") is False:
        point += f", not exactly: {position.get('inexact') or 'the source never fell quiet'}"
    line = f"{COMMENT_MARK} published by {owner}; {point}"
    conn.execute(statement("set_table_comment", tables, comment=sql.Literal("\n".join([*kept, line]))))


def _check_guards(
    guards: Guards, rows: int, rejects: int, added: int, live_rows: int | None, live: str
) -> None:
    """Refuse to publish an unproven, empty, shrunken or emptied copy, or one that sets aside many more
    documents than the published table (``added``), naming the Param that allows it."""
    options = guards.options
    if guards.verified != (rows, rejects) and not options.publish_unverified:
        proved = (
            "returned no result (was it marked successful by hand?)"
            if guards.verified is None
            else f"proved {guards.verified[0]} rows and {guards.verified[1]} rejects"
        )
        raise AirflowFailException(
            f"verify of this run {proved}, and the copy of {live} holds {rows} rows and "
            f"{rejects} rejects now: nothing was published. Set the Param publish_unverified in a new run "
            f"to publish an unverified copy."
        )
    if live_rows and rows + rejects == 0:
        if options.publish_empty:
            return
        raise AirflowFailException(
            f"the copy is empty while {live} holds {live_rows} rows: nothing was published. "
            f"Set the Param publish_empty in a new run to empty the table."
        )
    if added and added * 100 > options.max_reject_percent * (rows + rejects):
        share = 100 * added / (rows + rejects)
        raise AirflowFailException(
            f"the copy set aside {added} of its {rows + rejects} documents ({share:.2f}%)"
            f" that the published table had not set aside ({rejects} set aside in all, for {live}_rejects), "
            "more than "
            f"the Param max_reject_percent ({options.max_reject_percent:g}) allows: nothing was published. "
            "See why in verify's log and the staging rejects table. To accept this level for every run, "
            "set max_reject_percent in the mapping's params; for one run, raise it in a new run's form."
        )
    emptied = emptied_columns(
        guards.columns or {"columns": [], "children": []},
        options.max_null_rise_percent,
        options.max_shrink_percent,
    )
    if emptied:
        raise AirflowFailException(
            f"publish refuses what the mapping's new or changed columns emptied in {live}: "
            + "; ".join(emptied)
            + ". Nothing was published. A path typed wrong does this "
            "(verify's report lists every column's NULLs): mend the mapping. If the data is so, raise the "
            f"Param max_null_rise_percent (now {options.max_null_rise_percent}; 100: any) or, for a child "
            "table, max_shrink_percent, in a new run to publish it."
        )
    smallest = live_rows * (100 - options.max_shrink_percent) / 100 if live_rows else 0
    if rows < smallest:
        raise AirflowFailException(
            f"the copy holds {rows} rows, {100 - 100 * rows / live_rows:.1f}% fewer than the "
            f"{live_rows} of {live}, more than the Param max_shrink_percent ({options.max_shrink_percent}) "
            f"allows: nothing was published. Raise max_shrink_percent in a new run to publish it."
        )


def emptied_columns(counted: dict, max_rise: int, max_shrink: int) -> list[str]:
    """What a changed mapping emptied (of ``column_counts``, only what it ``judged``), each as a sentence
    with its numbers: a column whose share of NULL rows rose by more than ``max_rise`` percentage points
    against the live table, or, with no live rows to compare, whose path no document read had (unless
    ``max_rise`` is 100); a child table with ``max_shrink`` percent fewer rows than the live one."""
    emptied = []
    for found in counted["columns"]:
        rows, nulls, live_rows, live_nulls = (
            found[key] for key in ("rows", "nulls", "live_rows", "live_nulls")
        )
        if not found["judged"] or not rows:
            continue
        share = 100 * nulls / rows
        said = (
            f"{found['table']}.{found['column']} (path [{', '.join(found['path'])}]) is NULL in {nulls:,} of "
        )
        said += f"the copy's {rows:,} rows"
        if live_rows:
            live_share = 100 * live_nulls / live_rows
            if share - live_share <= max_rise:
                continue
            said += f" ({share:.1f}%), against {live_nulls:,} of {live_rows:,} ({live_share:.1f}%) in the "
            said += "live table"
        elif nulls < rows or found["absent"] < rows or max_rise >= 100:
            continue
        else:
            said += (
                ", a column new to the live table"
                if live_rows is None
                else ", and the live table has no rows"
            )
        if found["absent"]:
            said += f"; its path was absent in {found['absent']:,} of the documents or elements read"
        emptied.append(said)
    for found in counted["children"]:
        rows, live_rows = found["rows"], found["live_rows"]
        if found["judged"] and live_rows and rows < live_rows * (100 - max_shrink) / 100:
            emptied.append(
                f"the child table {found['table']} (array [{', '.join(found['path'])}]) holds {rows:,} rows "
                f"against the live one's {live_rows:,}, more than max_shrink_percent ({max_shrink}) fewer"
            )
    return emptied


def _added_rejects(conn: Connection, tables: Tables) -> int:
    """The copy's rejects that the live rejects table does not hold: new, or newly broken."""
    return conn.execute(statement("new_rejects", tables, tables.rejects)).fetchone()[0]


def _count_live(conn: Connection, tables: Tables) -> int:
    return conn.execute(statement("count_live", tables)).fetchone()[0]


def _live_names(tables: Tables, relations: Iterable[str] | None = None) -> list[str]:
    return [f"{tables.schema}.{relation}" for relation in (relations or tables.relations)]


def _session(row: tuple) -> str:
    pid, user, application, mode, state, query = row
    return f"pid {pid} ({user}, {application or 'no application name'}, {state}) holds {mode}: {query}"


def start_page(conn: Connection, tables: Tables, owner: Owner, page: int) -> None:
    """In the page's transaction: share the load lock, check the owner, delete what the page wrote before."""
    _lock(conn, tables, shared=True)
    _check_owner(conn, tables, owner)
    for relation in tables.relations:
        conn.execute(statement("delete_page", tables, relation), {"page": page})


def count_rows(conn: Connection, tables: Tables) -> tuple[int, int]:
    """The rows and the rejects of the run's copy of the target."""
    return conn.execute(statement("count_rows", loaded(conn, tables))).fetchone()


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
            {name for name, *_ in _columns_of(conn, live)} if _exists(conn, tables, relation) else None
        )
        copy_counts = _count_nulls(conn, tables, relation, _copy_of(tables, relation), mapped)
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
        _lock(conn, tables, shared=True)
        _check_owner(conn, tables, owner)
        _truncate_staging(conn, tables)
        conn.execute(statement("drop_changed", tables))
        save_position(conn, tables, position)


def _truncate_staging(conn: Connection, tables: Tables) -> None:
    staging = sql.SQL(", ").join(tables.staging(relation) for relation in tables.relations)
    conn.execute(statement("truncate_staging", tables, relations=staging))


class PublishedState(NamedTuple):
    """What the live table's last publish recorded."""

    position: dict | None  # the point of the source's change stream it is consistent with
    fingerprint: str | None  # of its rows, as that publish left them
    versions: dict | None  # of the mapping (with its shape) and of the conversion that wrote them
    point_lost: str | None  # why the stream could not resume from that point since
    full_copy_seconds: float | None  # how long the last full copy needed the oplog to keep its start


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
        _lock(conn, tables, shared=True)
        _check_owner(conn, tables, owner)
        _truncate_staging(conn, tables)
        conn.execute(statement("drop_changed", tables))
        if not _unchanged(conn, tables, fingerprint):
            return False
        conn.execute(statement("make_incremental", tables))
        save_position(conn, tables, position)
    return True


def owns_live_tables(conn: Connection, tables: Tables) -> bool:
    """Whether this connection's role has the owner's privileges on the live tables that exist."""
    with transaction(conn):
        existing = _existing(conn, tables)
        if not existing:
            return True
        return conn.execute(
            statement("live_owned", tables), {"names": _live_names(tables, existing)}
        ).fetchone()[0]


def all_live_tables_exist(conn: Connection, tables: Tables) -> bool:
    """Whether the table, its rejects and its child tables all exist (a publish then makes none)."""
    with transaction(conn):
        return len(_existing(conn, tables)) == len(tables.relations)


def live_tables_unchanged(conn: Connection, tables: Tables, fingerprint: str | None) -> bool:
    """Whether the live tables all exist and still have ``fingerprint`` (reads only)."""
    with transaction(conn):
        return _unchanged(conn, tables, fingerprint)


def _unchanged(conn: Connection, tables: Tables, fingerprint: str | None) -> bool:
    """In the caller's transaction: whether the live tables all exist and still have ``fingerprint``."""
    if len(_existing(conn, tables)) != len(tables.relations):
        return False
    try:
        with conn.transaction():
            return _fingerprint(conn, tables, live=True) == fingerprint
    except errors.UndefinedColumn:  # someone dropped one of the mapping's columns
        return False


def live_rows(conn: Connection, tables: Tables) -> int | None:
    """The live table's rows; None when it does not exist."""
    with transaction(conn):
        return _count_live(conn, tables) if tables.table in _existing(conn, tables) else None


def published_by(conn: Connection, tables: Tables) -> str | None:
    """The DAG that last published the target; None: none did."""
    with transaction(conn):
        if not _state_tables_exist(conn):
            return None
        names = {"schema": tables.schema, "table": tables.table}
        last = conn.execute(statement("published_by", tables), names).fetchone()
        return last and last[0]


FINGERPRINT_FORM = "sha256"  # how _fingerprint hashes the rows, the first word of what it returns


def _fingerprint(conn: Connection, tables: Tables, live: bool = False) -> str:
    """The fingerprint of the target's live tables, or of its staging tables, whatever the session's
    settings (in the caller's transaction): for each table, its rows and the sum of their hashes."""
    conn.execute(_sql_text("canonical_text"))
    sums = []
    for relation in tables.relations:
        rows = tables.live(relation) if live else tables.staging(relation)
        sums.append(conn.execute(statement("fingerprint", tables, relation, rows=rows)).fetchone())
    return _fingerprint_text(sums)


def _fingerprint_text(sums: list[tuple[int, int]]) -> str:
    return FINGERPRINT_FORM + ":" + "/".join(f"{count}:{total}" for count, total in sums)


def _fingerprint_after_changes(conn: Connection, tables: Tables, before: str) -> str:
    """The fingerprint an incremental publish leaves: ``before`` (the live tables', checked when the run
    started), without the hashes of the changed documents' live rows, with those of their staging rows
    (in the caller's transaction, before the rows change)."""
    conn.execute(_sql_text("canonical_text"))
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


def copy_children(conn: Connection, tables: Tables, children: dict[str, bytes]) -> None:
    """COPY child rows (COPY text by child name) into the staging child tables (caller's transaction)."""
    with conn.cursor() as cursor:
        for child, relation in zip(tables.mapping.children, tables.children, strict=True):
            if children.get(child.name):
                with cursor.copy(statement("copy_into_staging", tables, relation)) as copy:
                    copy.write(children[child.name])


def copy_rejects(conn: Connection, tables: Tables, rejects: Iterable, page: int) -> None:
    """COPY documents set aside into the staging rejects table (in the caller's transaction)."""
    with conn.cursor() as cursor, cursor.copy(statement("copy_into_staging", tables, tables.rejects)) as copy:
        for reject in rejects:
            copy.write_row(reject.row(page))


def apply_changes(
    conn: Connection, tables: Tables, owner: Owner, keys: list[str], batch: Batch, position: dict
) -> None:
    """Replace the rows, child rows and rejects of ``keys`` with ``batch``'s, and store ``position``.

    One transaction, sharing the load lock like a page: the rows and the
    position they reach commit together or not at all, so a reader of the
    staging tables never sees a document without its child rows.
    """
    with transaction(conn):
        _lock(conn, tables, shared=True)
        _check_owner(conn, tables, owner)
        for relation in tables.relations:
            conn.execute(statement("delete_changed", tables, relation), {"keys": keys})
        with conn.cursor() as cursor, cursor.copy(statement("copy_into_staging", tables)) as copy:
            copy.write(batch.rows)
        copy_children(conn, tables, batch.children)
        copy_rejects(conn, tables, batch.rejects, CAUGHT_UP_PAGE)
        if tables.incremental:
            conn.execute(statement("record_changed", tables), {"keys": keys})
        save_position(conn, tables, position)
        failpoint("catch_up_batch_applied", documents=len(keys))
