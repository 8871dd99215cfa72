"""The source's change stream: where a run's copy starts, and catching the staging tables up to it.

A copy of a collection that keeps changing is made consistent this way (the
docs/guarantees.md):

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

Read to its end, the stream leaves the staging tables equal to the source as
of the last change applied: that is the recorded point. "Its end" is a
cluster time, not an empty answer: the stream's post-batch resume token must
have reached what a majority read of the source saw before the catch-up began
(and after each batch's lookups), since on a sharded cluster mongos holds
events back until every shard has advanced, and a lagging majority shows
writes late. Where that cannot be shown, the recorded point says it is not
exact, and why.

A stream that cannot resume (the collection renamed away and back, a restore
that kept its UUID, a resume token the server no longer finds, history that
left the oplog) makes the next run copy in full, saying why
(``why_not_from``): no state fails every night until a person acts. A change
whose event would pass MongoDB's 16 MB limit (a large document with its
update looked up) is read without its document, which is then read by ``_id``.
A server without change streams (a standalone ``mongod``) has no position:
the copy then cannot be consistent under writes, and the run says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from psycopg import Connection
from pymongo.change_stream import CollectionChangeStream
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from mongo_migration import target
from mongo_migration.connections import transaction
from mongo_migration.documents import Conversion, readable_id_key, split_documents
from mongo_migration.positions import Position, majority_time, read_to, token_time
from mongo_migration.target import Owner, Tables

CHANGES_PER_BATCH = 1000  # changes applied in one transaction at most


BATCH_SECONDS = 1.0  # and changes read for one transaction at most, from a stream that never pauses


# How long the catch-up keeps reading a stream that never falls quiet, once it has
# applied every change made before it started.
CATCH_UP_GRACE_SECONDS = 60


# How long the catch-up waits for the stream to reach the source's majority-committed
# time when no change comes (a lagging secondary, an idle shard: about 10 s on MongoDB).
LAG_WAIT_SECONDS = 60


_NO_CHANGE_STREAMS = 40573  # "The $changeStream stage is only supported on replica sets"


_HISTORY_LOST = 286  # ChangeStreamHistoryLost: the position has left the oplog


_CANNOT_RESUME = {
    260: "InvalidResumeToken",
    280: "ChangeStreamFatalError (the resume token was not found)",
    _HISTORY_LOST: "ChangeStreamHistoryLost",
}


_EVENT_TOO_LARGE = 10334  # BSONObjectTooLarge: an event over 16 MB


_RAW = CodecOptions(document_class=RawBSONDocument)


_ID_CHANGES = {"insert", "update", "replace", "delete"}


_ENDS_STREAM = ("drop", "rename", "dropDatabase", "invalidate")


# A lean event: what the catch-up needs without the document, which it then reads by _id.
_LEAN = [{"$project": {"operationType": 1, "documentKey": 1, "clusterTime": 1, "wallTime": 1}}]


class ChangeHistoryLost(Exception):
    """The stream cannot resume from a position: its changes left the oplog, or the server no longer
    finds its resume token."""


class StreamInvalidated(Exception):
    """The collection was dropped or renamed (or its database dropped) after a position."""


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
    # Whether the stream had nothing more up to the source's majority time when the batch ended: then
    # every row is the source's as of the position; otherwise ``inexact`` says why not.
    quiet: bool = False
    inexact: str | None = None


def read_changes(
    collection: Collection, since: Position, grace_seconds: float = CATCH_UP_GRACE_SECONDS
) -> Iterator[ChangeBatch]:
    """The changes after ``since`` in batches of ``CHANGES_PER_BATCH``, until the stream is read to its end.

    Its end: an empty answer whose post-batch resume token reached the
    majority time read before (and after each batch with changes, whose
    documents were looked up then). The last batch is ``quiet``, even without
    changes: its position keeps the point of the last change and takes the
    stream's newest resume token, so a collection that does not change keeps
    a point its oplog still holds. A stream that never falls quiet is read for
    ``grace_seconds`` after the changes made before this call, then left; one
    that stays behind the majority time for ``LAG_WAIT_SECONDS`` is left too:
    the last batch then says why its point is not exact.
    """
    started = majority_time(collection)
    goal, busy_until, behind_until, lean = started, None, None, False
    while True:
        try:
            with _watch(collection, since, lean) as stream:
                while True:
                    batch = _next_batch(stream, since, collection if lean else None)
                    if batch.changes:
                        behind_until = None
                        if busy_until is None and batch.position.cluster_time >= started:
                            busy_until = time.monotonic() + grace_seconds
                        if busy_until is not None and time.monotonic() > busy_until:
                            batch.inexact = (
                                STILL_CHANGING.format(seconds=grace_seconds)
                                if grace_seconds
                                else CHANGED_AGAIN
                            )
                            yield batch
                            return
                        yield batch
                        since = batch.position
                        goal = max(goal, majority_time(collection))  # where its lookups read, about
                        continue
                    reached = read_to(batch.position.resume_token, goal)
                    if reached is None:
                        batch.inexact = "the server's resume tokens do not show how far its stream has read"
                    elif reached:
                        batch.quiet = True
                    else:
                        scanned = token_time(batch.position.resume_token)
                        behind_until = behind_until or time.monotonic() + LAG_WAIT_SECONDS
                        if time.monotonic() <= behind_until:
                            continue  # an idle shard or a lagging majority: ask again
                        batch.inexact = (
                            f"the change stream stayed behind the source's majority-committed time "
                            f"({_ts(scanned)} < {_ts(goal)}) for {LAG_WAIT_SECONDS} s: a lagging secondary "
                            "or an idle shard may still hold changes back"
                        )
                    yield batch
                    return
        except OperationFailure as error:
            if error.code == _EVENT_TOO_LARGE and not lean:
                lean = True  # again from the last batch applied, its documents read by _id
                continue
            if error.code in _CANNOT_RESUME:
                raise cannot_resume(since, error) from None
            raise


CHANGED_AGAIN = (
    "the source changed again while verify caught up with the changes that explain its differences: "
    "documents changed since may show a newer version"
)


STILL_CHANGING = (
    "the source kept changing for {seconds:.0f} s after the catch-up had applied every change made "
    "before it started: the documents changed again since may show a newer version"
)


def _ts(timestamp: Timestamp) -> str:
    return f"Timestamp({timestamp.time}, {timestamp.inc})"


def cannot_resume(since: Position, error: OperationFailure) -> ChangeHistoryLost:
    """The stream cannot resume from ``since``, with the server's reason."""
    name = _CANNOT_RESUME[error.code]
    why = "they left its oplog" if error.code == _HISTORY_LOST else f"{name}, error {error.code}"
    return ChangeHistoryLost(
        f"the source no longer holds the changes since {since} ({why}): {str(error).splitlines()[0][:200]}"
    )


def _watch(
    collection: Collection, since: Position, lean: bool = False, pipeline=()
) -> CollectionChangeStream:
    """The collection's change stream after ``since``, its documents looked up by the server (``lean``:
    without them)."""
    return collection.with_options(codec_options=_RAW).watch(
        [*pipeline, *(_LEAN if lean else [])],
        full_document=None if lean else "updateLookup",
        start_after=since.resume_token,
        batch_size=CHANGES_PER_BATCH,
        max_await_time_ms=10,  # an idle stream answers within 10 ms, with how far it has read
    )


def collection_uuid(collection: Collection) -> str | None:
    """The collection's UUID; None when it does not exist (or the server does not say)."""
    found = list(collection.database.list_collections(filter={"name": collection.name}))
    uuid = found[0].get("info", {}).get("uuid") if found else None
    return None if uuid is None else uuid.as_uuid().hex


def _next_batch(stream: CollectionChangeStream, since: Position, lookup: Collection | None) -> ChangeBatch:
    """Up to ``CHANGES_PER_BATCH`` changes after ``since``, read in ``BATCH_SECONDS`` at most (none when
    none is left); a lean stream's documents read from ``lookup`` by ``_id``."""
    latest: dict[str, bytes | None] = {}  # the current BSON of each _id changed; None: deleted
    ids = {}  # a lean stream's _id values, by key
    changes = 0
    last = None
    ends = time.monotonic() + BATCH_SECONDS
    while changes < CHANGES_PER_BATCH and time.monotonic() < ends:
        event = stream.try_next()
        if event is None:
            break
        changes += 1
        last = event
        kind = event["operationType"]
        if kind in _ID_CHANGES:
            document = event.get("fullDocument")  # None after a delete, or when deleted since the change
            key = readable_id_key(event["documentKey"].raw) or ""
            latest.pop(key, None)  # keep the _id's place at its last change
            latest[key] = document.raw if document is not None else None
            if lookup is not None:
                ids[key] = RawBSONDocument(event["documentKey"].raw)  # never decoded: any _id
        elif kind in _ENDS_STREAM:
            raise StreamInvalidated(
                f"the collection was changed by '{kind}' at cluster time {event['clusterTime']}: "
                "the change stream ends there"
            )
    if ids:  # as they are now, read (on a secondary too) no earlier than the last change
        with lookup.database.client.start_session(causal_consistency=True) as session:
            session.advance_operation_time(last["clusterTime"])
            found = lookup.find_raw_batches({"$or": list(ids.values())}, session=session)
            for raw in (raw for batch in found for raw in split_documents(batch)):
                latest[readable_id_key(raw) or ""] = raw
    return ChangeBatch(
        keys=list(latest),
        documents=b"".join(raw for raw in latest.values() if raw is not None),
        changes=changes,
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
    # Whether the stream was read to its end (read_changes): then every row is the source's as of
    # the last change applied. Otherwise the position's "inexact" says why not.
    quiet: bool = True
    touched: set[str] = field(default_factory=set)  # the watched _id keys that changed


def catch_up(
    collection: Collection,
    conn: Connection,
    tables: Tables,
    conversion: Conversion,
    owner: Owner,
    watched: Iterable[str] = (),
    grace_seconds: float = CATCH_UP_GRACE_SECONDS,
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
    for batch in read_changes(collection, Position.from_json(start), grace_seconds):
        rows = conversion.rows(batch.documents, target.CAUGHT_UP_PAGE)
        position = {**batch.position.to_json(), "quiet": batch.quiet}
        if batch.inexact:
            position["inexact"] = batch.inexact
        target.apply_changes(conn, tables, owner, batch.keys, rows, position)
        result.position = position
        result.changes += batch.changes
        result.documents += len(batch.keys)
        result.rejected += len(rows.rejects)
        result.batches += 1
        result.quiet = batch.quiet
        result.touched.update(watched.intersection(batch.keys))
    return result


def changed_since(collection: Collection, position: Position) -> bool:
    """Whether anything changed in the collection after ``position``, up to the source's majority time now.

    An empty answer is not "nothing": through mongos, events wait until every
    shard has advanced. As ``read_changes`` does, the stream is read until its
    post-batch resume token reaches the majority time; one that cannot show
    how far it has read, or stays behind for ``LAG_WAIT_SECONDS``, counts as
    changed (the catch-up then applies whatever did).
    """
    goal, behind_until = majority_time(collection), time.monotonic() + LAG_WAIT_SECONDS
    with _watch(collection, position, lean=True) as stream:
        while stream.try_next() is None:
            reached = read_to(stream.resume_token, goal)
            if reached:
                return False
            if reached is None or time.monotonic() > behind_until:
                return True
        return True


def another_collection(collection: Collection, position: Position) -> str | None:
    """Why ``position`` was not taken on this collection (None: it was): a read of its UUID."""
    if position.collection is None or position.collection != collection_uuid(collection):
        return (
            "the collection is not the one that point was taken on any more (dropped and made again, "
            "or renamed over)"
        )
    return None


def why_not_from(collection: Collection, position: Position) -> str | None:
    """Why the collection's changes since ``position`` cannot be read; None when they can.

    The stream is read from there to the source's majority time, for the
    events that end it alone (the server filters them): a rename away and back
    keeps the collection's UUID and still ends the stream. A second read of
    the oplog since the point: what a dry run reports; a run reads it once, as
    its first catch-up (``OpenChangeStreamOperator``).
    """
    if other := another_collection(collection, position):
        return other
    goal = majority_time(collection)
    ends = [{"$match": {"operationType": {"$in": list(_ENDS_STREAM)}}}]
    scanned, deadline = None, time.monotonic() + LAG_WAIT_SECONDS
    try:
        with _watch(collection, position, lean=True, pipeline=ends) as stream:
            while True:
                event = stream.try_next()
                if event is not None:
                    return (
                        f"the collection was changed by '{event['operationType']}' at cluster time "
                        f"{event['clusterTime']}, after that point: its change stream ends there"
                    )
                if read_to(stream.resume_token, goal) is not False:
                    return None
                now = token_time(stream.resume_token)
                if now != scanned:  # still reading through the oplog: on
                    scanned, deadline = now, time.monotonic() + LAG_WAIT_SECONDS
                elif time.monotonic() > deadline:
                    return None  # held back (an idle shard): the catch-up meets the rest
    except OperationFailure as error:
        if error.code in _CANNOT_RESUME:
            return str(cannot_resume(position, error))
        raise
