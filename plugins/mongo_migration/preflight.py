"""What a run checks before it writes anything: the source, the target and Airflow, every problem at once.

Each check reads only. ``source_problems`` and ``target_problems`` return the
problems found (a run with any fails before its first write) and what they
learned that is worth a line in the log (``notes``), such as a source that has
no change stream, which the run copies in full, every night.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bson.objectid import ObjectId
from psycopg import Connection
from pymongo.collection import Collection
from pymongo.errors import OperationFailure, PyMongoError

from mongo_migration import target
from mongo_migration.mapping import STAGING_SCHEMA
from mongo_migration.target import Tables

OLDEST_MONGODB = (
    5,
    0,
)  # change streams with startAfter, $changeStream on a collection's UUID, majority reads


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)  # each fails the run
    notes: list[str] = field(default_factory=list)  # worth knowing, not wrong


def source_problems(source: Collection, name: str, must_exist: bool = True) -> Findings:
    """The source: its version, whether it has a change stream, the collection (``must_exist``: a run
    that seeds it may find none yet) and the privileges to read it and its stream."""
    found = Findings()
    admin = source.database.client.admin
    version = tuple(admin.command("buildInfo").get("versionArray", [0, 0])[:2])
    if version < OLDEST_MONGODB:
        found.problems.append(
            f"the source is MongoDB {'.'.join(map(str, version))}; this project needs "
            f"{'.'.join(map(str, OLDEST_MONGODB))} or later"
        )
    hello = admin.command("hello")
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


def target_problems(conn: Connection, tables: Tables, owned: bool, all_exist: bool) -> Findings:
    """The target: its schema, and the privileges to make the staging tables and to publish (``owned``:
    the live tables that exist; ``all_exist``: none needs making, so no CREATE in their schema)."""
    found = Findings()
    names = {"schema": tables.schema, "staging": STAGING_SCHEMA}
    row = conn.execute(target.statement("target_privileges", tables), names).fetchone()
    schema_exists, staging_exists, may_create_schema, may_create_tables, may_create_staging, user = row
    if not schema_exists:
        found.problems.append(f"target schema {tables.schema!r} does not exist in the target database")
    elif not all_exist and not may_create_tables:
        found.problems.append(
            f"role {user} may not create tables in schema {tables.schema} (GRANT CREATE ON SCHEMA "
            f"{tables.schema} TO {user}): publish moves the tables it makes in there"
        )
    if staging_exists and not may_create_staging:
        found.problems.append(
            f"role {user} may not create tables in schema {STAGING_SCHEMA}, where the staging tables go "
            f"(GRANT CREATE ON SCHEMA {STAGING_SCHEMA} TO {user})"
        )
    elif not staging_exists and not may_create_schema:
        found.problems.append(
            f"role {user} may not create schema {STAGING_SCHEMA} for the staging tables (GRANT CREATE ON "
            f"DATABASE ... TO {user}, or create the schema for it)"
        )
    if not owned:
        found.problems.append(
            f"role {user} does not own {tables} (or its rejects or child tables): publish changes their "
            "rows and columns and runs ANALYZE, which need the owner's privileges"
        )
    return found
