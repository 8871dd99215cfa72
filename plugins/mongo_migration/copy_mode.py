"""How a run copies: incremental from the live table's published point, or in full, and why.

A run is incremental only when the live table's last publish recorded a point
of the same collection, with the same mapping and conversion, that the
source's change stream can still resume from, and nobody changed the table
since (its fingerprint, checked by the caller). Any other case copies in full,
saying why in words a person acts on; a changed mapping is named column by
column whatever else makes the copy full.
"""

from __future__ import annotations

from psycopg import Connection
from pymongo.collection import Collection

from mongo_migration import target
from mongo_migration.changes import Position, why_not_from
from mongo_migration.mapping import Mapping, changed_columns, shape_changes
from mongo_migration.target import Tables

CHANGED_BY_SOMEONE_ELSE = (
    "{tables}, its rejects or its child tables were changed by someone else since its publish"
)


def why_full(
    mode: str, versions: dict, source: Collection, conn: Connection, tables: Tables
) -> tuple[tuple[dict | None, str | None], str | None]:
    """The point and fingerprint the live tables were published with, and why a run in ``mode`` cannot
    start there without looking at the tables (None: it can); a changed mapping is named whatever the
    reason, so that a person reads what the copy will change."""
    nothing = (None, None)
    published = target.published_state(conn, tables)
    changed = versions_differ(published.versions or {}, versions) if published else None
    also = f"; and {changed}" if changed else ""
    if mode == "full":
        return nothing, "the Param mode asks for one" + also
    if published and published.point_lost:
        return (
            nothing,
            f"an earlier run could not resume the change stream from {tables}'s point: "
            f"{published.point_lost}{also}",
        )
    if published is None or published.position is None:
        return (
            nothing,
            f"{tables} has no published point to start from (no publish of this DAG with a change stream)"
            + also,
        )
    position, fingerprint = published.position, published.fingerprint
    if changed:
        return nothing, changed
    if not (fingerprint or "").startswith(target.FINGERPRINT_FORM + ":"):
        return nothing, (
            f"{tables} was published by an earlier version of this project, which fingerprinted its "
            "rows otherwise: this copy records the fingerprint the next runs check"
        )
    return (position, fingerprint), why_not_from(source, Position.from_json(position))


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
