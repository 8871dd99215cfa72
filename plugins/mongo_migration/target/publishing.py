"""``publish``: make the live tables equal to the verified staging tables in one transaction, refusing
what the guards refuse, changing rows (and the columns a changed mapping changed) in place so that
everything that is not their rows stays."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from psycopg import Connection, errors, sql
from psycopg.types.json import Jsonb

from mongo_migration.connections import transaction
from mongo_migration.failpoint import failpoint
from mongo_migration.mapping import STAGING_SCHEMA
from mongo_migration.run_options import RunOptions
from mongo_migration.target.staging import staging_position
from mongo_migration.target.state import fingerprint_after_changes, fingerprint_of
from mongo_migration.target.tables import (
    PUBLISHED_TABLE,
    LoadLockBusy,
    Owner,
    Tables,
    check_owner,
    columns_of,
    count_live,
    count_rows,
    existing_relations,
    live_relation_names,
    loaded,
    lock_holder,
    lock_target,
    relation_exists,
    sql_text,
    staging_owner,
    statement,
)


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
                    holders = conn.execute(
                        statement("lock_holders", tables), {"names": live_relation_names(tables)}
                    )
                    sessions = "; ".join(lock_holder(row) for row in holders) or "none any more"
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
        lock_target(conn, tables, shared=False)
        names = {"schema": tables.schema, "table": tables.table}
        last = conn.execute(statement("published_by", tables), names).fetchone()
        if last and Owner(last[0], last[1]) == owner and staging_owner(conn, tables) != owner:
            return {**last[2], "already_published": True}  # a retry of a publish that committed
        check_owner(conn, tables, owner)
        tables = loaded(conn, tables)
        previous = last[2] if last else {}
        existing = existing_relations(conn, tables)
        if existing and (last is None or last[0] != owner.dag_id):
            raise AirflowFailException(_not_ours(tables, owner, existing, last and last[0]))
        if tables.incremental and len(existing) != len(tables.relations):
            gone = ", ".join(live_relation_names(tables, set(tables.relations) - set(existing)))
            raise AirflowFailException(
                f"{gone} went away while this incremental run copied the changes since its publish: "
                f"nothing was published. A new run copies {tables} in full."
            )
        if (
            existing
            and not conn.execute(
                statement("live_owned", tables), {"names": live_relation_names(tables, existing)}
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
            if relation not in tables.children and relation_exists(conn, tables, relation)
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
        live_rows = count_live(conn, tables) if tables.table in existing else None
        added = _added_rejects(conn, tables) if tables.rejects in existing else rejects
        _check_guards(guards, rows, rejects, added, live_rows, str(tables))
        if tables.incremental:  # the live tables' as the run found them, with the changes
            fingerprint = fingerprint_after_changes(conn, tables, last[3])
        else:  # the staging tables', which the live tables take
            fingerprint = fingerprint_of(conn, tables)
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
            now = count_live(conn, tables)
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
            name: (pg_type, not_null) for name, pg_type, not_null in columns_of(conn, tables.live(relation))
        }
        staged = {
            name: (pg_type, not_null)
            for name, pg_type, not_null in columns_of(conn, tables.staging(relation))
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
            for (dependant,) in conn.execute(sql_text("column_dependants"), names):
                blocked.append(f"{dependant} (on {relation}: {', '.join(touched)})")
    for relation in gone_children:
        for (dependant,) in conn.execute(
            sql_text("table_dependants"), {"relation": f"{tables.schema}.{relation}"}
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
    for index, name in conn.execute(sql_text("moved_indexes"), names).fetchall():
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
