"""A point in the source's change stream (``Position``: its resume token and cluster time), what a token
says of the time it has read to, and reading the source as of a point: a causally consistent session that
reads at or after it, on a secondary too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import bson
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.read_concern import ReadConcern


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


def token_time(token: dict | RawBSONDocument | None) -> Timestamp | None:
    """The cluster time a resume token stands for; None when its form is not known.

    MongoDB's (4.2 on): ``_data`` in hex, whose first byte 0x82 marks a
    Timestamp, followed by its seconds and increment, big-endian (the part
    MongoDB itself reads, SERVER-133517). SecantusDB's, the local stand-in: a
    BSON document in hex that holds a Timestamp.
    """
    raw = _token_bytes(token)
    if _is_bson(raw):
        try:
            values = bson.decode(raw).values()
        except (bson.errors.BSONError, IndexError, ValueError):
            return None
        return next((value for value in values if isinstance(value, Timestamp)), None)
    if len(raw) >= 9 and raw[0] == 0x82:
        return Timestamp(int.from_bytes(raw[1:5], "big"), int.from_bytes(raw[5:9], "big"))
    return None


def read_to(token: dict | RawBSONDocument | None, goal: Timestamp) -> bool | None:
    """Whether an idle stream, whose post-batch resume token is ``token``, has read everything up to
    ``goal``; None when its token does not tell.

    SecantusDB, the local stand-in, reads one node's oplog in order, so its
    empty answer is the end; its cluster time also moves on with commands that
    write nothing, which its tokens never reach, so ``goal`` means nothing there.
    """
    if _is_bson(_token_bytes(token)):
        return True
    scanned = token_time(token)
    return None if scanned is None else scanned >= goal


def _token_bytes(token: dict | RawBSONDocument | None) -> bytes:
    try:
        return bytes.fromhex((token or {}).get("_data"))
    except (TypeError, ValueError):
        return b""


def _is_bson(raw: bytes) -> bool:
    return len(raw) >= 5 and int.from_bytes(raw[:4], "little") == len(raw)


MAJORITY_TIME = "mongo_migration: the majority time"  # the comment of majority_time's read


def majority_time(collection: Collection) -> Timestamp:
    """The cluster time a majority read of the source sees now: where a stream read to its end reaches.

    Its read looks up an ``_id`` no document has (a new ObjectId): one probe of the ``_id`` index,
    whatever the collection's size; no ``afterClusterTime``, since it asks for the time, not for
    data; the comment ``MAJORITY_TIME``.
    """
    majority = collection.with_options(read_concern=ReadConcern("majority"))
    with collection.database.client.start_session(causal_consistency=False) as session:
        majority.find_one({"_id": ObjectId()}, {"_id": 1}, session=session, comment=MAJORITY_TIME)
        return session.operation_time


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


def consistency(position: dict | None) -> str:
    """What a copy at ``position`` (a stored position) is consistent with, for people."""
    if position is None:
        return "not guaranteed: the source has no change stream (a standalone mongod?)"
    if position.get("quiet") is False:
        why = position.get("inexact") or "the source never fell quiet"
        return f"as of {Position.from_json(position)}, not exactly: {why}"
    return f"exactly as of {Position.from_json(position)}"
