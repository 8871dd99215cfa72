"""``publish``: make the live tables equal to the verified staging tables in one transaction, refusing
what the guards refuse, changing rows (and the columns a changed mapping changed) in place so that
everything that is not their rows stays."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from psycopg import Connection, errors, sql
from psycopg.types.json import Jsonb

from mongo_migration.connections import transaction
from mongo_migration.failpoint import failpoint
from mongo_migration.mapping import STAGING_SCHEMA
from mongo_migration.target.guards import Guards, added_rejects, check_guards
from mongo_migration.target.staging import staged_state, staging_position
from mongo_migration.target.state import (
    WATCHED,
    forget_published_point,
    live_oids,
    live_types,
    unwatched,
    watch_live_tables,
)
from mongo_migration.target.tables import (
    PUBLISHED_TABLE,
    LoadLockBusy,
    Owner,
    Tables,
    check_owner,
    columns_of,
    count_live,
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


def publish(
    conn: Connection,
    tables: Tables,
    owner: Owner,
    guards: Guards,
    wait_seconds: float,
    versions: dict | None = None,
    full_copy_seconds: float | None = None,
    full_proof_at: float | None = None,
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
    (``full_copy_seconds``; an incremental run keeps the last), and when verify
    made the full proof (``full_proof_at``, seconds since the epoch; 0: never,
    a copy published without proof; None: a proof of the changes keeps the last).
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return _publish_once(
                conn, tables, owner, guards, versions or {}, full_copy_seconds, full_proof_at
            )
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
        except LiveCountDiffers as error:  # the counts an incremental run starts from would be wrong
            forget_published_point(conn, tables, str(error))
            raise AirflowFailException(f"{error}. The next run copies {tables} in full.") from None
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


class LiveCountDiffers(Exception):
    """A live table holds another number of rows than publish wrote: the counts an incremental run takes
    from the last publish would be wrong."""


PUBLISH_LOCK_TIMEOUT = "5s"  # a longer wait would stall every reader queued behind publish


PUBLISH_RETRY_PAUSE_SECONDS = 2


def _publish_once(
    conn: Connection,
    tables: Tables,
    owner: Owner,
    guards: Guards,
    versions: dict,
    full_copy_seconds: float | None,
    full_proof_at: float | None,
) -> dict:
    """One attempt, in one transaction: who may publish, the locks, the guards, the rows, the record."""
    with transaction(conn):
        conn.execute(f"SET LOCAL lock_timeout = '{PUBLISH_LOCK_TIMEOUT}'")
        conn.execute("SET LOCAL mongo_migration.publishing = 'on'")  # its writes are not someone else's
        lock_target(conn, tables, shared=False)
        names = {"schema": tables.schema, "table": tables.table}
        last = conn.execute(statement("published_by", tables), names).fetchone()
        if last and Owner(last[0], last[1]) == owner and staging_owner(conn, tables) != owner:
            return {**last[2], "already_published": True}  # a retry of a publish that committed
        tables, existing = _may_publish(conn, tables, owner, last)
        # Locked until the commit: a write by someone else meanwhile is recorded after it, not lost.
        written_by_others = statement("written_by_others", tables, lock=sql.SQL("FOR UPDATE"))
        written = last and conn.execute(written_by_others, names).fetchone()[0]
        if tables.incremental and written:
            raise AirflowFailException(
                f"someone else wrote to {tables} (or its rejects or child tables) since its last publish "
                f"({written}): this incremental run's changes would be applied to rows nobody proved. "
                f"Nothing was published; the next run copies {tables} in full."
            )
        previous = last[2] if last else {}
        changes, gone_children = _lock_for_publish(conn, tables, existing, previous)
        result = _guarded_counts(conn, tables, guards, existing, previous)
        _apply(conn, tables, existing, changes, gone_children, result)
        watch_live_tables(conn, tables, unwatched(conn, tables, tables.relations))
        position = staging_position(conn, tables)
        result |= {
            "position": position,
            "versions": versions,
            "full_copy_seconds": full_copy_seconds,
            "full_proof_at": full_proof_at,
            "columns": {relation: live_types(conn, tables, relation) for relation in tables.relations},
            "oids": live_oids(conn, tables),
            "children": tables.children,
            "dropped": gone_children,
        }
        _set_comment(conn, tables, owner, position)
        for relation in tables.relations:
            if not tables.incremental:  # a few changes leave the statistics to autovacuum
                conn.execute(statement("analyze_live", tables, relation))
            conn.execute(statement("drop_staging", tables, relation))
        conn.execute(statement("drop_changed", tables))
        record = {**asdict(owner), **names, "result": Jsonb(result), "position": Jsonb(position)}
        conn.execute(statement("record_published", tables), {**record, "fingerprint": WATCHED})
        failpoint("publish_before_commit")
        return result


def _may_publish(
    conn: Connection, tables: Tables, owner: Owner, last: tuple | None
) -> tuple[Tables, list[str]]:
    """The tables as the owner loaded them, and which live ones exist; refused where this run may not
    publish them (another's staging tables, another DAG's live tables, live tables gone under an incremental
    run, or not owned by the role)."""
    check_owner(conn, tables, owner)
    tables = loaded(conn, tables)
    existing = existing_relations(conn, tables)
    if existing and (last is None or last[0] != owner.dag_id):
        raise AirflowFailException(_not_ours(tables, owner, existing, last and last[0]))
    if tables.incremental and len(existing) != len(tables.relations):
        gone = ", ".join(live_relation_names(tables, set(tables.relations) - set(existing)))
        raise AirflowFailException(
            f"{gone} went away while this incremental run copied the changes since its publish: "
            f"nothing was published. A new run copies {tables} in full."
        )

    owned = {"names": live_relation_names(tables, existing)}
    if existing and not conn.execute(statement("live_owned", tables), owned).fetchone()[0]:
        user = conn.execute("SELECT current_user").fetchone()[0]
        raise AirflowFailException(
            f"role {user} does not own {tables} (or its rejects or child tables), so its ANALYZE "
            f"after changing the rows would do nothing: nothing was published. Give it the "
            f"owner's privileges (own the tables, or inherit from their owner)."
        )
    return tables, existing


def _lock_for_publish(
    conn: Connection, tables: Tables, existing: list[str], previous: dict
) -> tuple[dict, list[str]]:
    """Lock the run's staging tables and the live ones (only those whose columns change, or that go, so
    that readers wait; those whose watch is made again against writers; the others against concurrent
    changes of their shape), all before any row changes; the column changes and the child tables gone
    from the mapping. Refuses what depends on a column that changes."""
    staging = sql.SQL(", ").join(tables.staging(relation) for relation in tables.relations)
    conn.execute(statement("lock_own_staging", tables, relations=staging))
    changes = _column_changes(conn, tables, existing, previous)
    gone_children = [
        relation
        for relation in previous.get("children", [])
        if relation not in tables.children and relation_exists(conn, tables, relation)
    ]
    reshaped = [relation for relation in existing if relation in changes] + gone_children
    kept = [relation for relation in existing if relation not in changes]
    rewatch = unwatched(conn, tables, kept)  # their watch made again after the rows: locked before them
    for mode, relations in (
        ("SHARE UPDATE EXCLUSIVE", [relation for relation in kept if relation not in rewatch]),
        ("SHARE ROW EXCLUSIVE", rewatch),  # writers wait, readers do not
        ("ACCESS EXCLUSIVE", reshaped),  # only the tables whose columns change, or that go
    ):
        if relations:
            live = sql.SQL(", ").join(tables.live(relation) for relation in relations)
            conn.execute(statement("lock_live", tables, relations=live, mode=sql.SQL(mode)))
    _refuse_dependants(conn, tables, changes, gone_children)
    return changes, gone_children


def _guarded_counts(
    conn: Connection, tables: Tables, guards: Guards, existing: list[str], previous: dict
) -> dict:
    """The copy's counts, refused by the guards (``check_guards``); the start of publish's result. An
    incremental run's are the last publish's (``previous``) with the changes: the one count of the live
    table is ``_apply``'s, after the changes."""
    staged = staged_state(conn, tables)
    rows, rejects = staged.rows, staged.rejects
    if tables.incremental:
        live_rows = previous["rows"]
    else:
        live_rows = count_live(conn, tables) if tables.table in existing else None
    added = added_rejects(conn, tables) if tables.rejects in existing else rejects
    check_guards(guards, staged, added, live_rows, str(tables))
    result = {"rows": rows, "rejects": rejects, "added_rejects": added, "live_rows_before": live_rows}
    if tables.incremental:
        return result | {"method": "changes applied in place", "deleted": 0, "updated": 0, "inserted": 0}
    if tables.table in existing:
        return result | {"method": "applied in place", "deleted": 0, "updated": 0, "inserted": 0}
    return result | {"method": "moved in (first publish)", "deleted": 0, "updated": 0, "inserted": rows}


def _apply(
    conn: Connection,
    tables: Tables,
    existing: list[str],
    changes: dict,
    gone_children: list[str],
    result: dict,
) -> None:
    """The live tables made equal to the copy: columns changed, rows deleted, updated and inserted in place
    (counted into ``result``), or a first table moved in; the rejects replaced; gone child tables dropped."""
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
        if now != result["rows"]:
            raise LiveCountDiffers(
                f"{tables} holds {now} rows after publishing {result['rows']}: rows the published counts do "
                "not explain (a write its watch could not see), or a row-level security policy that hides "
                "rows from this connection's role. Nothing was published"
            )
    if tables.rejects in existing:
        _apply_column_changes(conn, tables, tables.rejects, changes.get(tables.rejects, {}))
        conn.execute(statement("replace_rejects", tables, tables.rejects))
        (now,) = conn.execute(statement("count_live", tables, tables.rejects)).fetchone()
        if now != result["rejects"]:
            raise LiveCountDiffers(
                f"{tables.schema}.{tables.rejects} holds {now} rejects after publishing {result['rejects']}: "
                "rejects the published counts do not explain (a write its watch could not see). Nothing was "
                "published"
            )
    else:
        _move_in(conn, tables, tables.rejects)
    for relation in gone_children:
        conn.execute(statement("drop_live", tables, relation))


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
    """Change a live table's columns as the mapping changed them (its watch, which names them, dropped
    first and made again after the rows); return those to make NOT NULL once the rows are in."""
    if changes:
        conn.execute(statement("unwatch_live", tables, relation))
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
    conn.execute(statement("uncount_keys", tables, relation))
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
