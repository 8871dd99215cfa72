"""What publish refuses unless a person allows it for one run: a copy verify did not prove, an empty or
shrunken one, one with more new rejects than allowed, and what a changed mapping emptied; each refusal
names the Param that allows it."""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow.sdk.exceptions import AirflowFailException
from psycopg import Connection

from mongo_migration.run_options import RunOptions
from mongo_migration.target.staging import StagedState
from mongo_migration.target.tables import (
    Tables,
    statement,
)


@dataclass(frozen=True)
class Guards:
    """What ``publish`` refuses unless a person allows it, each by its Param, for one run."""

    verified: StagedState | None  # the staging tables as verify proved them; None: it returned nothing
    # the limits, and the Params that allow for one run what is refused
    options: RunOptions = field(default_factory=RunOptions)
    columns: dict | None = None  # verify's column_counts (a full copy's); None: not counted


def check_guards(guards: Guards, staged: StagedState, added: int, live_rows: int | None, live: str) -> None:
    """Refuse to publish an unproven, empty, shrunken or emptied copy, or one that sets aside many more
    documents than the published table (``added``), naming the Param that allows it. A copy that is not
    the one verify proved (``staged`` now) is refused whatever the Params: publish_unverified stands in
    for a missing proof, never for one that differs."""
    options = guards.options
    rows, rejects = staged.rows, staged.rejects
    if guards.verified is None and not options.publish_unverified:
        raise AirflowFailException(
            f"verify of this run returned no result (was it marked successful by hand?), and the copy of "
            f"{live} holds {rows} rows and {rejects} rejects: nothing was published. Set the Param "
            "publish_unverified in a new run to publish an unverified copy."
        )
    if guards.verified is not None and staged.differs_from(guards.verified):
        raise AirflowFailException(
            f"verify of this run proved another copy of {live} than its staging tables hold now "
            f"({_state(guards.verified)} proved; {_state(staged)} now): they changed after verify. "
            "Nothing was published, whatever publish_unverified says: it stands in for a missing proof, "
            "not one that differs. Trigger a new run (or clear this run's verify and publish together)."
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


def _state(staged: StagedState) -> str:
    """A staged state, for people."""
    keys = f", {staged.keys} keys hashing to {staged.key_hash}" if staged.keys is not None else ""
    keys += f", last written by write {staged.last_write}" if staged.last_write is not None else ""
    point = staged.position and staged.position.get("cluster_time")
    return f"{staged.rows} rows and {staged.rejects} rejects{keys}, at {point or 'no point'}"


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


def added_rejects(conn: Connection, tables: Tables) -> int:
    """The copy's rejects that the live rejects table does not hold: new, or newly broken."""
    return conn.execute(statement("new_rejects", tables, tables.rejects)).fetchone()[0]
