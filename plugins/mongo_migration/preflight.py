"""What a run checks before it writes anything: the source, the target and Airflow, every problem at once.

Each check reads only. ``source_problems`` and ``target_problems`` return the
problems found (a run with any fails before its first write) and what they
learned that is worth a line in the log (``notes``), such as a source that has
no change stream, which the run copies in full, every night.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from bson.objectid import ObjectId
from psycopg import Connection, DatabaseError, OperationalError
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from mongo_migration import copy_mode, target
from mongo_migration.connections import CertificateFileError, UnreachableError
from mongo_migration.mapping import STAGING_SCHEMA
from mongo_migration.target import Tables

UNAUTHORIZED = (13, 8000)  # a missing privilege: MongoDB's Unauthorized, Atlas's AtlasError
OLDEST_MONGODB = (
    5,
    0,
)  # change streams with startAfter, $changeStream on a collection's UUID, majority reads


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)  # each fails the run
    notes: list[str] = field(default_factory=list)  # worth a warning, not wrong
    facts: list[str] = field(default_factory=list)  # worth a line in the log
    unreachable: list[str] = field(default_factory=list)  # servers that did not answer: a retry may


@dataclass
class Opened:
    """What ``check`` opened, for what the run does next (a dry run's report); None: not reached."""

    source: Collection | None = None
    conn: Connection | None = None


def check(
    open_source: Callable[[], Collection],
    open_target: Callable[[], Connection],
    names: tuple[str, str],
    tables: Tables,
    must_exist: bool,
    mode: str,
    versions: dict,
    note_mapping_change: bool,
) -> tuple[Findings, Opened]:
    """Every check of the source and the target, every problem at once, sorted by what a retry can mend:
    a server that did not answer (``unreachable``) or a wrong password, privilege or name (``problems``).
    ``names`` are the source's and the target's connection ids; with no problem, the oplog's window
    against the published point is checked too."""
    found, opened = Findings(), Opened()
    mongo_id, postgres_id = names
    hello = point_time = full_copy_seconds = None
    try:
        opened.source = open_source()
        hello = opened.source.database.client.admin.command("hello")  # a replica set, a mongos, or neither
        checked = source_problems(opened.source, opened.source.full_name, hello, must_exist)
        found.problems += checked.problems
        found.notes += checked.notes
    except (UnreachableError, ConnectionFailure) as error:
        found.unreachable.append(f"MongoDB connection {mongo_id!r}: {str(error).splitlines()[0]}")
    except (PyMongoError, CertificateFileError) as error:  # a wrong password, a privilege missing
        found.problems.append(f"MongoDB connection {mongo_id!r}: {str(error).splitlines()[0]}")
    try:
        opened.conn = open_target()
        checked = target_problems(opened.conn, tables)
        found.problems += checked.problems
        if not checked.problems:
            point_time, full_copy_seconds, changed = copy_mode.published_history(
                opened.conn, tables, mode, versions
            )
            found.notes += [changed] if changed and note_mapping_change else []
    except (UnreachableError, OperationalError) as error:
        found.unreachable.append(f"PostgreSQL connection {postgres_id!r}: {str(error).splitlines()[0]}")
    except DatabaseError as error:  # a privilege missing on a table the run reads
        found.problems.append(f"PostgreSQL connection {postgres_id!r}: {str(error).splitlines()[0]}")
    if not (found.unreachable or found.problems):
        history = oplog_window(opened.source, hello, point_time, time.time(), full_copy_seconds)
        found.notes += history.notes
        found.facts += history.facts
    return found, opened


def refusal(found: Findings, source: str, tables: Tables) -> str | None:
    """Why the run cannot start, every problem named (None: it can)."""
    problems = found.unreachable + found.problems
    if not problems:
        return None
    return (
        f"preflight of {source} → {tables} found {len(problems)} problem{'s' if len(problems) > 1 else ''}, "
        "nothing was written: " + "; ".join(problems)
    )


def source_problems(source: Collection, name: str, hello: dict, must_exist: bool = True) -> Findings:
    """The source: its version, whether it has a change stream (its ``hello`` answer says), the collection
    (``must_exist``: a run that seeds it may find none yet) and the privileges to read it and its stream."""
    found = Findings()
    admin = source.database.client.admin
    version = tuple(admin.command("buildInfo").get("versionArray", [0, 0])[:2])
    if version < OLDEST_MONGODB:
        found.problems.append(
            f"the source is MongoDB {'.'.join(map(str, version))}; this project needs "
            f"{'.'.join(map(str, OLDEST_MONGODB))} or later"
        )
    streaming = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
    if not streaming:
        found.notes.append(
            "the source is a standalone mongod: it has no change stream, so every run copies in full and "
            "is consistent only if nothing writes meanwhile (run it as a replica set, even of one node)"
        )
    if source.name not in source.database.list_collection_names(filter={"name": source.name}):
        if must_exist:
            found.problems.append(f"collection {name} does not exist in the source")
        return found
    if hello.get("msg") == "isdbgrid":  # through mongos: the collection may be sharded
        found.problems += shard_key_problems(source, name)
    for what, read in [
        ("read it (find)", lambda: source.find_one({"_id": ObjectId()}, {"_id": 1})),  # an index probe
        ("read its change stream (changeStream)", lambda: source.watch().close() if streaming else None),
    ]:
        try:
            read()
        except OperationFailure as error:
            found.problems.append(f"the source connection may not {what} on {name}: {error.details or error}")
        except PyMongoError as error:
            found.problems.append(f"reading {name} failed: {str(error).splitlines()[0][:300]}")
    return found


def shard_key_problems(source: Collection, name: str) -> list[str]:
    """Why a sharded collection cannot be copied (none: it is not sharded, or sharded on ``_id`` or a key
    that starts with it). ``_id`` is unique per shard only otherwise: two documents could share one, and a
    copy keyed by ``_id`` could not hold both. Read from ``config.collections``."""
    try:
        sharded = source.database.client["config"]["collections"].find_one(
            {"_id": source.full_name, "dropped": {"$ne": True}}, {"key": 1}
        )
    except OperationFailure as error:
        return [
            f"the source connection may not read config.collections, where the shard key of {name} is "
            f"recorded ({error.details or error}): grant it find there (deploy/roles/mongo.js)"
        ]
    key = list((sharded or {}).get("key") or {})
    if not key or key[0] == "_id":
        return []
    return [
        f"{name} is sharded on {{{', '.join(key)}}}: _id is unique only within each shard then, so two "
        "documents may share one, and a copy keyed by _id cannot hold both. Reshard it on a key that starts "
        f"with _id (db.adminCommand({{reshardCollection: '{source.full_name}', key: {{_id: 1}}}}), or "
        "{_id: 'hashed'})"
    ]


def oplog_window(
    source: Collection,
    hello: dict,
    point_time: int | None,
    now: float,
    full_copy_seconds: float | None = None,
) -> Findings:
    """How much history the source's oplog holds against the age of the published point (``point_time``,
    seconds since the epoch; None: no point) and how long the last full copy needed it to keep its start
    (``full_copy_seconds``).

    It reads the oplog's oldest entry (``local.oplog.rs``), as ``rs.printReplicationInfo()`` does, and
    whether the oplog has reached its size. A standalone mongod has none (its own note says so); a
    mongos, or a connection that may not read it, gets a warning that the window was not checked."""
    found = Findings()
    if hello.get("msg") == "isdbgrid":
        found.notes.append(
            "the oplog window was not checked: a sharded cluster's shards each have their own "
            "(rs.printReplicationInfo() on each shard's primary shows it)"
        )
        return found
    if not hello.get("setName"):
        return found
    oplog = source.database.client.local["oplog.rs"]
    try:
        oldest = oplog.find_one({}, {"ts": 1}, sort=[("$natural", 1)])
    except OperationFailure as error:
        grant = " (read on the local database lets preflight check it)" if error.code in UNAUTHORIZED else ""
        found.notes.append(
            f"the oplog window was not checked: {(error.details or {}).get('errmsg', error)}{grant}"
        )
        return found
    return history_findings(oldest and oldest["ts"].time, _filled(oplog), point_time, now, full_copy_seconds)


def _filled(oplog: Collection) -> bool:
    """Whether the oplog has reached its size, so that its oldest entry bounds the history it keeps (one
    still filling, on a young replica set, will keep more); True when its statistics cannot be read."""
    try:
        [stats] = oplog.aggregate([{"$collStats": {"storageStats": {}}}])
    except (OperationFailure, ValueError):
        return True
    storage = stats["storageStats"]
    if storage.get("max"):  # capped by entries, as the local stand-in is
        return storage.get("count", 0) >= storage["max"]
    return not storage.get("maxSize") or storage.get("size", 0) >= 0.9 * storage["maxSize"]


def history_findings(
    oldest: int | None, filled: bool, point_time: int | None, now: float, full_copy_seconds: float | None
) -> Findings:
    """What the oplog's oldest entry (``oldest``, seconds since the epoch) says of the published point and
    of a full copy: a point that has left it, or will soon, means full copies; a full copy that outlasts
    it cannot catch up. An oplog not ``filled`` yet warns of nothing but a point it lost."""
    found = Findings()
    window = timedelta(seconds=round(now - oldest)) if oldest else timedelta(0)
    holds = f"holds {window} of history" + ("" if filled else " so far (it is still filling)")
    age = None if point_time is None else timedelta(seconds=round(now - point_time))
    if age is not None and (oldest is None or point_time < oldest):
        found.notes.append(
            f"the published point ({age} old) has left the source's oplog, which {holds}: this run "
            "copies in full; size the oplog for twice the time between runs (docs/connecting.md)"
        )
    elif age is not None and filled and age > window / 2:
        found.notes.append(
            f"the published point is {age} old and the source's oplog {holds}: should this run not "
            f"publish, a run that starts more than {window - age} from now copies in full; size the oplog "
            "for twice the time between runs"
        )
    else:
        point = "" if age is None else f"; the published point is {age} old"
        found.facts.append(f"the source's oplog {holds}{point}")
    if full_copy_seconds and filled and window < timedelta(seconds=2 * full_copy_seconds):
        found.notes.append(
            f"the last full copy needed the source's oplog to keep its start for "
            f"{timedelta(seconds=round(full_copy_seconds))} and the oplog {holds}: a full copy (a first run, "
            "a changed mapping, a lost point) that outlasts the oplog fails in catch_up; size the oplog for "
            "twice the longest run"
        )
    return found


def target_problems(conn: Connection, tables: Tables) -> Findings:
    """The target: its schemas, and the privileges to use them, make the staging tables and publish."""
    found = Findings()
    names = {"schema": tables.schema, "staging": STAGING_SCHEMA}
    row = conn.execute(target.statement("target_privileges", tables), names).fetchone()
    schema_exists, staging_exists, may_create_schema, *privileges, user = row
    may_use, may_create_tables, may_use_staging, may_create_staging = privileges
    if not schema_exists:
        found.problems.append(f"target schema {tables.schema!r} does not exist in the target database")
    elif not may_use:
        found.problems.append(
            f"role {user} may not use schema {tables.schema} "
            f"(GRANT USAGE ON SCHEMA {tables.schema} TO {user})"
        )
    else:
        if not target.all_live_tables_exist(conn, tables) and not may_create_tables:
            found.problems.append(
                f"role {user} may not create tables in schema {tables.schema} (GRANT CREATE ON SCHEMA "
                f"{tables.schema} TO {user}): publish moves the tables it makes in there"
            )
        if not target.owns_live_tables(conn, tables):
            found.problems.append(
                f"role {user} does not own {tables} (or its rejects or child tables): publish changes their "
                "rows and columns and runs ANALYZE, which need the owner's privileges"
            )
    if staging_exists and not (may_use_staging and may_create_staging):
        found.problems.append(
            f"role {user} may not use and create tables in schema {STAGING_SCHEMA}, where the staging "
            f"tables go (GRANT USAGE, CREATE ON SCHEMA {STAGING_SCHEMA} TO {user})"
        )
    elif not staging_exists and not may_create_schema:
        found.problems.append(
            f"role {user} may not create schema {STAGING_SCHEMA} for the staging tables (GRANT CREATE ON "
            f"DATABASE ... TO {user}, or create the schema for it)"
        )
    return found
