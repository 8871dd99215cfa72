"""How a run copies: incremental from the live table's published point, or in full, and why.

A run is incremental only when the live table's last publish recorded a point
of the same collection, with the same mapping and conversion, that the
source's change stream can still resume from, and nobody changed the table
since (its watch, checked by the caller: ``target.written_since_publish``).
Any other case copies in full, saying why in words a person acts on; a
changed mapping is named column by column whatever else makes the copy full.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, NamedTuple

from psycopg import Connection
from pymongo.collection import Collection

from mongo_migration import target
from mongo_migration.changes import another_collection, why_not_from
from mongo_migration.documents import CONVERSION_VERSION
from mongo_migration.mapping import Mapping, changed_columns, shape_changes
from mongo_migration.pages import count_all
from mongo_migration.positions import Position, session_as_of
from mongo_migration.run_options import RunOptions
from mongo_migration.target import Tables

CHANGED_BY_SOMEONE_ELSE = (
    "{tables}, its rejects or its child tables were changed by someone else since its publish ({why})"
)


class Choice(NamedTuple):
    """Where an incremental run would start (the published point), or why the run copies in full
    (``reason``; then no point)."""

    start: dict | None
    reason: str | None


@dataclass(frozen=True)
class Copy:
    """What ``open_change_stream`` chose, as the later tasks read it: the mode, why a full copy, and
    where the change stream starts (None: the source has none)."""

    mode: Literal["full", "incremental"]
    reason: str | None
    position: dict | None
    # What an incremental run's first catch-up applied, reading the changes since the published point
    # once: open_change_stream's (changes, documents); the catch_up task's adds to it.
    applied: dict | None = None

    def to_xcom(self) -> dict:
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: dict | None) -> Copy:
        """``value`` as ``to_xcom`` wrote it; None (a task run without one): a full copy, no stream."""
        return cls(**value) if value is not None else cls("full", None, None)

    def caught_up(self, catch_up_task: dict | None) -> dict:
        """What the run's catch-ups applied: this one's and the catch_up task's (its result)."""
        counted = ("changes", "documents")
        return {key: (self.applied or {}).get(key, 0) + (catch_up_task or {}).get(key, 0) for key in counted}


def versions_of(mapping: Mapping) -> dict:
    """What decides the rows' form: a publish records it, and a difference means a full copy."""
    return {"mapping": mapping.version, "conversion": CONVERSION_VERSION, "shape": mapping.shape()}


def why_full(mode: str, versions: dict, source: Collection, conn: Connection, tables: Tables) -> Choice:
    """The point the live tables were published as of, or why a run in ``mode`` cannot start there
    without looking at the tables or reading the stream (``reason_for``, then whether the collection is
    the one the point was taken on)."""
    published = target.published_state(conn, tables)
    reason = reason_for(mode, published, versions, str(tables))
    if reason is not None:
        return Choice(None, reason)
    point = published.position
    return Choice(point, another_collection(source, Position.from_json(point)))


def reason_for(mode: str, published: target.PublishedState | None, versions: dict, tables: str) -> str | None:
    """Why a run in ``mode`` copies in full, from what the last publish of ``tables`` recorded (None: it
    may start from the published point, if the stream still holds it); a changed mapping is named whatever
    the reason, so that a person reads what the copy will change."""
    changed = versions_differ(published.versions or {}, versions) if published else None
    also = f"; and {changed}" if changed else ""
    if mode == "full":
        return "the Param mode asks for one" + also
    if published and published.point_lost:
        lost = published.point_lost
        return f"an earlier run could not start from {tables}'s published point: {lost}{also}"
    if published is None or published.position is None:
        why = "no publish of this DAG with a change stream"
        return f"{tables} has no published point to start from ({why}){also}"
    if changed:
        return changed
    if published.watch != target.WATCHED:
        return (
            f"{tables} was published by an earlier version of this project, which did not watch its tables "
            "for others' writes: this copy sets up the watch the next runs check"
        )
    return None


def versions_differ(published: dict, now: dict) -> str | None:
    """Why rows published with ``published`` versions cannot be brought up to date by changes alone."""
    if published.get("mapping") != now["mapping"]:
        changes = shape_changes(published["shape"], now["shape"]) if "shape" in published else []
        what = "; ".join(changes) or (
            f"version {published.get('mapping') or 'none recorded'}, now {now['mapping']}"
        )
        return (
            f"the mapping changed since the last publish ({what}): a full copy writes every row "
            "again in its new shape"
        )
    if published.get("conversion") != now["conversion"]:
        return (
            f"the conversion changed since the last publish (version {published.get('conversion')}, now "
            f"{now['conversion']}): every row is written again as this version writes it"
        )
    return None


def changed_since_publish(mapping: Mapping, versions: dict | None) -> set[str]:
    """The columns and child tables ``mapping`` adds or changes against the publish that recorded
    ``versions`` (None: no publish, so all of them; the same version: none, its shape recorded or not)."""
    if versions is not None and versions.get("mapping") == mapping.version:
        return set()
    return changed_columns(versions.get("shape") if versions is not None else {}, mapping.shape())


def published_history(
    conn: Connection, tables: Tables, mode: str, now: dict
) -> tuple[int | None, float | None, str | None]:
    """When the point a run in ``mode`` would start from was, in seconds since the epoch (None: no such
    point), how long the last full copy needed the oplog to keep its start (None: unknown), and what
    changed in the mapping or the conversion since the last publish against ``now`` (None: nothing)."""
    published = target.published_state(conn, tables)
    if not published:
        return None, None, None
    point, recorded = published.position, published.versions
    incremental = mode == "incremental" and point
    changed = versions_differ(recorded, now) if recorded else None
    return (point["cluster_time"]["t"] if incremental else None), published.full_copy_seconds, changed


def dry_run_report(
    source: Collection,
    conn: Connection,
    tables: Tables,
    mapping: Mapping,
    options: RunOptions,
    max_map_length: int,
    dag_id: str,
) -> list[str]:
    """What a run would do, from reads alone: the copy and why, its pages, and what publish would say."""
    choice = why_full(options.mode, versions_of(mapping), source, conn, tables)
    reason = choice.reason or why_not_from(source, Position.from_json(choice.start))
    if reason is None and (why := target.written_since_publish(conn, tables)):
        reason = CHANGED_BY_SOMEONE_ELSE.format(tables=tables, why=why)
    lines = [
        f"- copy: {'full: ' + reason if reason else 'incremental: the changes since the published point'}"
    ]
    if reason:
        with session_as_of(source, None) as session:
            documents = count_all(source, session)
        pages = -(-documents // options.items_per_page)
        merged = (
            f" (more than [core] max_map_length, {max_map_length}: plan_pages merges them)"
            if pages > max_map_length
            else ""
        )
        lines.append(
            f"- pages: {pages} of up to {options.items_per_page} documents, {documents} in all{merged}"
        )
    published_by = target.published_by(conn, tables)
    live_rows = target.live_rows(conn, tables)
    if live_rows is None:
        lines.append(f"- publish: {tables} does not exist yet; the first publish makes it")
    elif published_by != dag_id:
        who = f"DAG {published_by!r}" if published_by else "no publish of this project"
        lines.append(
            f"- publish would refuse: {tables} exists and {who} made it (docs/runbook.md, the guards)"
        )
    else:
        lines.append(
            f"- publish: {tables} holds {live_rows} rows; a copy with fewer than "
            f"{live_rows * (100 - options.max_shrink_percent) // 100} rows would be refused "
            "(max_shrink_percent)"
        )
    return lines
