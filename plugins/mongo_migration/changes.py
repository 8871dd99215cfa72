"""The source's change stream: where a run's copy starts, and catching the staging tables up to it.

A copy of a collection that keeps changing is made consistent this way (the
README's "What a run guarantees"):

1. ``open_position`` opens the collection's change stream *before* the plan
   reads any ``_id``: what changes after that point is in the stream, what
   came before it is in what the pages read.
2. After the pages, ``catch_up`` applies every change since then to the
   staging tables, by ``_id``, as the document is when the change is read
   (``fullDocument: "updateLookup"``; inserts and replaces carry theirs): the
   last change of each ``_id`` wins, so replaying any part of the stream again
   leaves the same rows, and a page that read a newer version is never made
   older once the stream is read to its end.
3. Each batch of changes is applied in one transaction that also stores the
   position of its last change, so a killed catch-up resumes exactly where
   its last commit left the rows.

Read to its end (no change left), the stream leaves the staging tables equal
to the source as of the last change applied: that is the recorded point.
A server without change streams (a standalone ``mongod``) has no position:
the copy then cannot be consistent under writes, and the run says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from psycopg import Connection
from pymongo.change_stream import CollectionChangeStream
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from mongo_migration import target
from mongo_migration.connections import transaction
from mongo_migration.documents import Conversion, readable_id_key
from mongo_migration.target import Owner, Tables

CHANGES_PER_BATCH = 1000  # changes applied in one transaction
# How long the catch-up keeps reading a stream that never falls quiet, once it has
# applied every change made before it started.
CATCH_UP_GRACE_SECONDS = 60
_NO_CHANGE_STREAMS = 40573  # "The $changeStream stage is only supported on replica sets"
_HISTORY_LOST = 286  # ChangeStreamHistoryLost: the position has left the oplog
_RAW = CodecOptions(document_class=RawBSONDocument)
_ID_CHANGES = {"insert", "update", "replace", "delete"}


class ChangeHistoryLost(Exception):
    """The source no longer holds the changes since a position (it fell out of the oplog)."""


class StreamInvalidated(Exception):
    """The collection was dropped or renamed (or its database dropped) after a position."""


@dataclass(frozen=True)
class Position:
    """A point of a collection's change stream: its resume token, cluster time and wall time.

    ``collection`` is the collection's UUID, which a collection dropped and made
    again, or renamed over, does not keep.
    """

    resume_token: dict
    cluster_time: Timestamp
    wall_time: datetime
    collection: str | None

    def to_json(self) -> dict:
        return {
            "resume_token": self.resume_token,
            "cluster_time": {"t": self.cluster_time.time, "i": self.cluster_time.inc},
            "wall_time": self.wall_time.isoformat(),
            "collection": self.collection,
        }

    @classmethod
    def from_json(cls, data: dict) -> Position:
        return cls(
            resume_token=data["resume_token"],
            cluster_time=Timestamp(data["cluster_time"]["t"], data["cluster_time"]["i"]),
            wall_time=datetime.fromisoformat(data["wall_time"]),
            collection=data.get("collection"),
        )

    def __str__(self) -> str:
        time_, inc = self.cluster_time.time, self.cluster_time.inc
        return f"cluster time Timestamp({time_}, {inc}) ({self.wall_time:%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC)"


@contextmanager
def session_as_of(collection: Collection, position: dict | None) -> Iterator[ClientSession]:
    """A session whose reads see the source as of ``position`` (a ``Position.to_json()``) or later.

    Its reads carry ``readConcern: {afterClusterTime}``: a secondary (a connection
    whose ``readPreference`` asks for one) waits until it has applied that point,
    so it never shows the copy a state older than the change stream's.
    """
    with collection.database.client.start_session(causal_consistency=True) as session:
        advance_to(session, position)
        yield session


def advance_to(session: ClientSession, position: dict | None) -> None:
    """Make the session's next reads see the source as of ``position`` or later."""
    if position:
        session.advance_operation_time(Position.from_json(position).cluster_time)


def open_position(collection: Collection) -> Position | None:
    """Where the collection's change stream starts now; None on a server without change streams."""
    client = collection.database.client
    try:
        with client.start_session() as session, collection.watch(session=session) as stream:
            return Position(
                resume_token=_plain(stream.resume_token),
                cluster_time=session.operation_time,
                wall_time=datetime.now(UTC),
                collection=collection_uuid(collection),
            )
    except OperationFailure as error:
        if error.code == _NO_CHANGE_STREAMS:
            return None
        raise


@dataclass
class ChangeBatch:
    """Consecutive changes, reduced to the last one of each ``_id``."""

    keys: list[str]  # the _id keys of every document changed
    documents: bytes  # the current BSON of those that exist, concatenated as a raw batch
    changes: int  # changes read, before reduction
    position: Position  # of the last change
    quiet: bool  # whether the stream held nothing more when the batch ended


def read_changes(
    collection: Collection, since: Position, grace_seconds: float = CATCH_UP_GRACE_SECONDS
) -> Iterator[ChangeBatch]:
    """The changes after ``since`` in batches of ``CHANGES_PER_BATCH``, until the stream is read to its end.

    The last batch is ``quiet`` (nothing more to read), even without changes:
    its position keeps the point of the last change and takes the stream's
    newest resume token, so a collection that does not change keeps a point
    its oplog still holds. A stream that never falls quiet is read for
    ``grace_seconds`` after the changes made before this call, then left.
    """
    started = _cluster_time_now(collection)
    deadline = None
    try:
        with _watch(collection, since) as stream:
            while True:
                batch = _next_batch(stream, since)
                yield batch
                if batch.quiet:
                    return
                since = batch.position
                if deadline is None and batch.position.cluster_time >= started:
                    deadline = time.monotonic() + grace_seconds
                if deadline is not None and time.monotonic() > deadline:
                    return
    except OperationFailure as error:
        if error.code == _HISTORY_LOST:
            raise _history_lost(since, error) from None
        raise


def _history_lost(since: Position, error: OperationFailure) -> ChangeHistoryLost:
    return ChangeHistoryLost(
        f"the source no longer holds the changes since {since} (they left its oplog): "
        f"{str(error).splitlines()[0][:200]}"
    )


def _watch(collection: Collection, since: Position) -> CollectionChangeStream:
    return collection.with_options(codec_options=_RAW).watch(
        full_document="updateLookup",
        start_after=since.resume_token,
        batch_size=CHANGES_PER_BATCH,
        max_await_time_ms=10,  # an empty answer means the stream is read to its end
    )


def collection_uuid(collection: Collection) -> str | None:
    """The collection's UUID; None when it does not exist (or the server does not say)."""
    found = list(collection.database.list_collections(filter={"name": collection.name}))
    uuid = found[0].get("info", {}).get("uuid") if found else None
    return None if uuid is None else uuid.as_uuid().hex


def _next_batch(stream: CollectionChangeStream, since: Position) -> ChangeBatch:
    """Up to ``CHANGES_PER_BATCH`` changes after ``since`` (none when none is left)."""
    latest: dict[str, bytes | None] = {}  # the current BSON of each _id changed; None: deleted
    changes = 0
    last = None
    quiet = False
    while changes < CHANGES_PER_BATCH:
        event = stream.try_next()
        if event is None:
            quiet = True
            break
        changes += 1
        last = event
        kind = event["operationType"]
        if kind in _ID_CHANGES:
            document = event.get("fullDocument")  # None after a delete, or when deleted since the change
            key = readable_id_key(event["documentKey"].raw) or ""
            latest.pop(key, None)  # keep the _id's place at its last change
            latest[key] = document.raw if document is not None else None
        elif kind in ("drop", "rename", "dropDatabase", "invalidate"):
            raise StreamInvalidated(
                f"the collection was changed by '{kind}' at cluster time {event['clusterTime']}: "
                "the change stream ends there"
            )
    return ChangeBatch(
        keys=list(latest),
        documents=b"".join(raw for raw in latest.values() if raw is not None),
        changes=changes,
        quiet=quiet,
        position=Position(
            resume_token=_plain(stream.resume_token),
            cluster_time=since.cluster_time if last is None else last["clusterTime"],
            wall_time=since.wall_time if last is None else _wall_time(last),
            collection=since.collection,
        ),
    )


def _wall_time(event: RawBSONDocument) -> datetime:
    """When the change was made: its wallTime (MongoDB 6.0 on), else its cluster time's seconds."""
    wall = event.get("wallTime")
    if wall is None:
        return datetime.fromtimestamp(event["clusterTime"].time, UTC)
    return wall.replace(tzinfo=UTC)


def _cluster_time_now(collection: Collection) -> Timestamp:
    client = collection.database.client
    with client.start_session() as session:
        collection.database.command("ping", session=session)
        return session.cluster_time["clusterTime"]


def _plain(token: RawBSONDocument | dict) -> dict:
    """A resume token as a plain document, for JSON."""
    return bson.decode(token.raw) if isinstance(token, RawBSONDocument) else dict(token)


@dataclass
class CatchUp:
    """What a catch-up applied, and where it left the staging tables."""

    position: dict | None  # Position.to_json() of the last change applied; None: no change stream
    changes: int = 0  # read from the stream
    documents: int = 0  # _id values written again or deleted
    rejected: int = 0  # of those written, set aside in the rejects table
    batches: int = 0  # transactions
    # Whether the stream held nothing more after the last change applied: then every
    # row is the source's as of that change. A stream that never fell quiet was left
    # after CATCH_UP_GRACE_SECONDS, and a document changed again since may show its newer version.
    quiet: bool = True
    touched: set[str] = field(default_factory=set)  # the watched _id keys that changed


def catch_up(
    collection: Collection,
    conn: Connection,
    tables: Tables,
    conversion: Conversion,
    owner: Owner,
    watched: Iterable[str] = (),
) -> CatchUp:
    """Apply the changes since the staging tables' position, batch by batch, each with its new position.

    A changed document's row, child rows and reject are replaced together.
    ``watched``: ``_id`` keys to report in ``CatchUp.touched`` when a change touches them.
    """
    with transaction(conn):
        start = target.staging_position(conn, tables)
        tables = target.loaded(conn, tables)
    result = CatchUp(position=start)
    if start is None:
        return result
    watched = set(watched)
    for batch in read_changes(collection, Position.from_json(start)):
        rows = conversion.rows(batch.documents, target.CAUGHT_UP_PAGE)
        position = {**batch.position.to_json(), "quiet": batch.quiet}
        target.apply_changes(conn, tables, owner, batch.keys, rows, position)
        result.position = position
        result.changes += batch.changes
        result.documents += len(batch.keys)
        result.rejected += len(rows.rejects)
        result.batches += 1
        result.quiet = batch.quiet
        result.touched.update(watched.intersection(batch.keys))
    return result


def consistency(position: dict | None) -> str:
    """What a copy at ``position`` (a stored position) is consistent with, for people."""
    if position is None:
        return "not guaranteed: the source has no change stream (a standalone mongod?)"
    if position.get("quiet") is False:
        return (
            f"as of {Position.from_json(position)}, but for documents changed after it while the source "
            "never fell quiet: those may show a later version"
        )
    return f"as of {Position.from_json(position)}"


def changed_since(collection: Collection, position: Position) -> bool:
    """Whether anything changed in the collection after ``position``."""
    with _watch(collection, position) as stream:
        return stream.try_next() is not None


def why_not_from(collection: Collection, position: Position) -> str | None:
    """Why the collection's changes since ``position`` cannot be read; None when they can."""
    if position.collection is None or position.collection != collection_uuid(collection):
        return (
            "the collection is not the one that point was taken on any more (dropped and made again, "
            "or renamed over)"
        )
    try:
        changed_since(collection, position)
    except OperationFailure as error:
        if error.code == _HISTORY_LOST:
            return str(_history_lost(position, error))
        raise
    return None
