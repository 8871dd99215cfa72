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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from psycopg import Connection, errors, sql
from psycopg.types.json import Jsonb

from mongo_migration.connections import transaction
from mongo_migration.documents import COLUMNS, Reject
from mongo_migration.failpoint import failpoint

SQL_DIR = Path(__file__).resolve().parents[2] / "include" / "sql"
STAGING_SCHEMA = "mongo_migration_staging"
# Which run published each live table: in the staging schema, under a name no
# target table can have (target names are lowercase).
PUBLISHED_TABLE = "Published"
# Where each staging table stands in the source's change stream (changes.py).
POSITIONS_TABLE = "Positions"
CAUGHT_UP_PAGE = -1  # the page of the rows the catch-up wrote
# 63 characters at most for PostgreSQL, less the "_rejects" of the rejects table; a name
# ending in "_rejects" would be the rejects table of another target.
TABLE_NAME = re.compile(r"(?!.*_rejects$)[a-z_][a-z0-9_]{0,54}")
# Any plain name but the staging schema's own.
SCHEMA_NAME = re.compile(rf"(?!{STAGING_SCHEMA}$)[a-z_][a-z0-9_]{{0,62}}")


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
            f"(letters, digits and _, at most 55, not starting with a digit, not ending in _rejects, "
            f"which names the rejects table of another target)"
        )
    if not SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"target schema {schema!r} is not a plain lowercase PostgreSQL name "
            f"(letters, digits and _, at most 63, not starting with a digit) other than {STAGING_SCHEMA}"
        )
    return sql.SQL(_sql_text(name)).format(
        staging=sql.Identifier(STAGING_SCHEMA, table),
        staging_rejects=sql.Identifier(STAGING_SCHEMA, f"{table}_rejects"),
        live=sql.Identifier(schema, table),
        live_rejects=sql.Identifier(schema, f"{table}_rejects"),
        schema=sql.Identifier(schema),
        staging_schema=sql.Identifier(STAGING_SCHEMA),
        published=sql.Identifier(STAGING_SCHEMA, PUBLISHED_TABLE),
        positions=sql.Identifier(STAGING_SCHEMA, POSITIONS_TABLE),
        table_name=sql.Literal(table),
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        content=sql.SQL(", ").join(sql.Identifier(column) for column in COLUMNS if column != "page"),
        **values,
    )


@cache
def _sql_text(name: str) -> str:
    """The text of ``include/sql/<name>.sql``, read once per process."""
    return (SQL_DIR / f"{name}.sql").read_text()


class LoadLockBusy(AirflowException):
    """Another run or a person holds the table's load lock; a later try may get it."""


def _lock(conn: Connection, table: str, *, shared: bool) -> None:
    """Take the table's load lock until the transaction ends; see include/sql/lock_staging.sql."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    try:
        conn.execute(
            statement("lock_staging", table, lock_function=sql.Identifier(function)),
            {"lock_key": lock_key(table)},
        )
    except errors.LockNotAvailable:
        raise LoadLockBusy(
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

    with transaction(conn):
        refuse_if_loading()
        _lock(conn, table, shared=False)
        if not conn.execute(statement("schema_exists", table), {"schema": schema}).fetchone()[0]:
            raise AirflowFailException(f"target schema {schema!r} does not exist in the target database")
        previous = refuse_if_loading()
        owner_comment = sql.Literal(json.dumps(asdict(owner)))
        conn.execute(statement("reset_table", table, schema, owner=owner_comment))
    return previous if previous != owner else None


@dataclass(frozen=True)
class Guards:
    """What ``publish`` refuses unless a person allows it, each by its Param, for one run."""

    verified: tuple[int, int] | None  # the rows and rejects verify proved; None: it returned nothing
    publish_unverified: bool = False
    publish_empty: bool = False
    max_shrink_percent: int = 10


def publish(
    conn: Connection, table: str, schema: str, owner: Owner, guards: Guards, wait_seconds: float
) -> dict:
    """Make the live table equal to the owner's verified staging table, in one transaction.

    Where the live table exists, its rows are changed in place (rows gone,
    changed, new), so everything that is not its rows stays; its first
    publish moves the staging table in. Readers see the old rows until the
    commit. Lock waits are short attempts, repeated for ``wait_seconds``; a
    retry after a publish that committed returns what that publish did.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return _publish_once(conn, table, schema, owner, guards)
        except LoadLockBusy as busy:
            if time.monotonic() >= deadline:
                raise LoadLockBusy(f"{busy}; publish tried for {wait_seconds:.0f} s") from None
        except (errors.LockNotAvailable, errors.DeadlockDetected) as error:
            if time.monotonic() >= deadline:
                with transaction(conn):
                    holders = conn.execute(statement("lock_holders", table), _live_names(table, schema))
                    sessions = "; ".join(_session(row) for row in holders) or "none any more"
                raise AirflowException(
                    f"table {schema}.{table} is busy: publish gave up after {wait_seconds:.0f} s of "
                    f"{PUBLISH_LOCK_TIMEOUT} attempts ({str(error).splitlines()[0]}); sessions that "
                    f"hold locks on it other than readers': {sessions}"
                ) from None
        except _BROKEN_BY_THE_COPY as error:  # a retry would meet the same rows
            raise AirflowFailException(
                f"publishing {schema}.{table} breaks a constraint, so nothing was published: "
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


def _publish_once(conn: Connection, table: str, schema: str, owner: Owner, guards: Guards) -> dict:
    with transaction(conn):
        conn.execute(f"SET LOCAL lock_timeout = '{PUBLISH_LOCK_TIMEOUT}'")
        _lock(conn, table, shared=False)
        last = conn.execute(statement("published_by", table), {"schema": schema, "table": table}).fetchone()
        if last and Owner(last[0], last[1]) == owner and staging_owner(conn, table) != owner:
            return {**last[2], "already_published": True}  # a retry of a publish that committed
        _check_owner(conn, table, owner)
        names = _live_names(table, schema)
        live_exists, live_rejects_exist = conn.execute(statement("live_exists", table), names).fetchone()
        existing = [
            name
            for name, exists in ((table, live_exists), (f"{table}_rejects", live_rejects_exist))
            if exists
        ]
        if existing and not conn.execute(statement("live_owned", table), names).fetchone()[0]:
            user = conn.execute("SELECT current_user").fetchone()[0]
            raise AirflowFailException(
                f"role {user} does not own {schema}.{table} (or its rejects table), so its ANALYZE "
                f"after changing the rows would do nothing: nothing was published. Give it the "
                f"owner's privileges (own the tables, or inherit from their owner)."
            )
        conn.execute(statement("lock_own_staging", table))
        if existing:
            tables = sql.SQL(", ").join(sql.Identifier(schema, name) for name in existing)
            conn.execute(statement("lock_live", table, schema, tables=tables))
        rows, rejects = count_rows(conn, table)
        live_rows = _count_live(conn, table, schema) if live_exists else None
        _check_guards(guards, rows, rejects, live_rows, f"{schema}.{table}")
        fingerprint = _fingerprint(conn, table)  # the staging tables', which the live tables take
        result = {"rows": rows, "rejects": rejects, "live_rows_before": live_rows}
        if live_exists:
            result |= {
                "method": "applied in place",
                "deleted": conn.execute(statement("delete_gone", table, schema)).rowcount,
                "updated": conn.execute(statement("update_changed", table, schema)).rowcount,
                "inserted": conn.execute(statement("insert_new", table, schema)).rowcount,
            }
            now = _count_live(conn, table, schema)
            if now != rows:
                raise AirflowFailException(
                    f"{schema}.{table} holds {now} rows after publishing {rows}; nothing was published. "
                    f"Does a row-level security policy hide rows from this connection's role?"
                )
        else:
            conn.execute(statement("move_in", table, schema))
            result |= {"method": "moved in (first publish)", "deleted": 0, "updated": 0, "inserted": rows}
        conn.execute(statement("replace_rejects" if live_rejects_exist else "move_in_rejects", table, schema))
        position = staging_position(conn, table)
        result["position"] = position
        _set_comment(conn, table, schema, owner, position)
        conn.execute(statement("finish_publish", table, schema))
        conn.execute(
            statement("record_published", table),
            {
                **asdict(owner),
                "schema": schema,
                "table": table,
                "result": Jsonb(result),
                "position": Jsonb(position),
                "fingerprint": fingerprint,
            },
        )
        failpoint("publish_before_commit")
        return result


COMMENT_MARK = "mongo_migration:"  # the first words of the line publish writes in the table's comment


def _set_comment(conn: Connection, table: str, schema: str, owner: Owner, position: dict | None) -> None:
    """End the live table's comment with a line naming the run and the source point it is consistent with.

    The comment's other lines (a person's) stay as they are.
    """
    (comment,) = conn.execute(statement("table_comment", table), {"live": f"{schema}.{table}"}).fetchone()
    kept = [line for line in (comment or "").splitlines() if not line.startswith(COMMENT_MARK)]
    point = (
        f"consistent with the source at {position['wall_time']} (cluster time "
        f"{position['cluster_time']['t']}.{position['cluster_time']['i']}, resume token "
        f"{position['resume_token']['_data']})"
        if position
        else "copied without a change stream: no consistent point is known"
    )
    if position and position.get("quiet") is False:
        point += ", but for rows changed after it while the source never fell quiet (maybe newer)"
    line = f"{COMMENT_MARK} published by {owner}; {point}"
    conn.execute(statement("set_table_comment", table, schema, comment=sql.Literal("\n".join([*kept, line]))))


def _check_guards(guards: Guards, rows: int, rejects: int, live_rows: int | None, live: str) -> None:
    """Refuse to publish an unproven, empty or shrunken copy, naming the Param that allows it."""
    if guards.verified != (rows, rejects) and not guards.publish_unverified:
        proved = (
            "returned no result (was it marked successful by hand?)"
            if guards.verified is None
            else f"proved {guards.verified[0]} rows and {guards.verified[1]} rejects"
        )
        raise AirflowFailException(
            f"verify of this run {proved}, and the staging table of {live} holds {rows} rows and "
            f"{rejects} rejects: nothing was published. Set the Param publish_unverified in a new run "
            f"to publish an unverified copy."
        )
    if live_rows and rows + rejects == 0:
        if guards.publish_empty:
            return
        raise AirflowFailException(
            f"the copy is empty while {live} holds {live_rows} rows: nothing was published. "
            f"Set the Param publish_empty in a new run to empty the table."
        )
    smallest = live_rows * (100 - guards.max_shrink_percent) / 100 if live_rows else 0
    if rows < smallest:
        raise AirflowFailException(
            f"the copy holds {rows} rows, {100 - 100 * rows / live_rows:.1f}% fewer than the "
            f"{live_rows} of {live}, more than the Param max_shrink_percent ({guards.max_shrink_percent}) "
            f"allows: nothing was published. Raise max_shrink_percent in a new run to publish it."
        )


def _count_live(conn: Connection, table: str, schema: str) -> int:
    return conn.execute(statement("count_live", table, schema)).fetchone()[0]


def _live_names(table: str, schema: str) -> dict:
    return {"live": f"{schema}.{table}", "live_rejects": f"{schema}.{table}_rejects"}


def _session(row: tuple) -> str:
    pid, user, application, mode, state, query = row
    return f"pid {pid} ({user}, {application or 'no application name'}, {state}) holds {mode}: {query}"


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


def record_start(conn: Connection, table: str, owner: Owner, position: dict | None) -> None:
    """Empty the owner's staging tables and record where its change stream starts (None: nowhere).

    Emptied, since an earlier try of the same run may have filled them (``copy_live_in``).
    """
    with transaction(conn):
        _lock(conn, table, shared=True)
        _check_owner(conn, table, owner)
        conn.execute(statement("truncate_staging", table))
        save_position(conn, table, position)


def published_state(conn: Connection, table: str, schema: str) -> tuple[dict | None, str | None] | None:
    """The point and fingerprint the live table's last publish recorded; None: never published."""
    with transaction(conn):
        names = {"schema": schema, "table": table}
        return conn.execute(statement("published_state", table), names).fetchone()


def copy_live_in(
    conn: Connection, table: str, schema: str, owner: Owner, position: dict, fingerprint: str | None
) -> bool:
    """Fill the owner's staging tables with the live ones, which are consistent with ``position``.

    Only if the live tables still have the ``fingerprint`` their last publish
    recorded, read in the same snapshot as the copy; False (nothing copied) when
    someone else changed or replaced them since, or one is gone.
    """
    with transaction(conn):
        conn.execute(statement("repeatable_read", table))
        _lock(conn, table, shared=True)
        _check_owner(conn, table, owner)
        conn.execute(statement("truncate_staging", table))
        if not all(conn.execute(statement("live_exists", table), _live_names(table, schema)).fetchone()):
            return False
        if _fingerprint(conn, table, schema) != fingerprint:
            return False
        conn.execute(statement("copy_live_in", table, schema))
        save_position(conn, table, position)
    return True


def _fingerprint(conn: Connection, table: str, schema: str | None = None) -> str:
    """The fingerprint of the live tables, or of the staging tables when ``schema`` is None."""
    names = (schema, table) if schema else (STAGING_SCHEMA, table)
    relations = {
        "rows": sql.Identifier(*names),
        "rejects": sql.Identifier(names[0], f"{table}_rejects"),
    }
    return conn.execute(statement("fingerprint", table, **relations)).fetchone()[0]


def save_position(conn: Connection, table: str, position: dict | None) -> None:
    """Store where the staging tables stand in the source's change stream (None: it has none)."""
    conn.execute(statement("save_position", table), {"table": table, "position": Jsonb(position)})


def staging_position(conn: Connection, table: str) -> dict | None:
    """Where the staging tables stand in the source's change stream; None: nowhere (no change stream)."""
    row = conn.execute(statement("staging_position", table), {"table": table}).fetchone()
    return row[0] if row else None


def apply_changes(
    conn: Connection,
    table: str,
    owner: Owner,
    keys: list[str],
    rows: bytes,
    rejects: list[Reject],
    position: dict,
) -> None:
    """Replace the rows and rejects of ``keys`` with ``rows`` and ``rejects``, and store ``position``.

    One transaction, sharing the load lock like a page: the rows and the
    position they reach commit together or not at all.
    """
    with transaction(conn), conn.cursor() as cursor:
        _lock(conn, table, shared=True)
        _check_owner(conn, table, owner)
        conn.execute(statement("delete_changed", table), {"keys": keys})
        with cursor.copy(statement("copy_page", table)) as copy:
            copy.write(rows)
        with cursor.copy(statement("copy_rejects", table)) as copy:
            for reject in rejects:
                copy.write_row((reject.key, reject.reason, reject.raw, CAUGHT_UP_PAGE))
        save_position(conn, table, position)
        failpoint("catch_up_batch_applied", documents=len(keys))
