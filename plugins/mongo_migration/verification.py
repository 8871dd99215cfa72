"""Verify against the source itself: every ``_id`` it holds, read again after the catch-up.

The source's ``_id`` keys (a covered query on the ``_id`` index of a real
MongoDB) stream into a temporary table beside the staging tables, and one
query finds the keys the copy misses and the keys it holds that the source
does not. On a source that keeps changing, a key can differ only because it
changed after the catch-up's point: then the stream holds that change. So
each round catches up again and re-reads the differing keys: a key that
still differs though no change touched it since the last round is a real
loss, and fails the run by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from psycopg import Connection
from pymongo.client_session import ClientSession
from pymongo.collection import Collection

from mongo_migration import target
from mongo_migration.connections import transaction
from mongo_migration.documents import id_keys, id_value

KEYS_PER_READ = 10_000
# Differences verify keeps to settle (100 MB or so of _id keys): the inserts and deletes made
# while every _id is read again, on a busy source, all differ until the next round.
MOST_DIFFERENCES = 1_000_000
ROUNDS = 10  # catch-up rounds for keys that keep changing


@dataclass
class KeyCheck:
    """What the source and the staging tables hold, key by key."""

    source: int = 0  # keys read from the source
    target: int = 0  # rows and rejects of the staging tables
    differences: dict[str, str] = field(default_factory=dict)  # key: "missing" or "unknown"
    duplicates: list[tuple[str, int]] = field(default_factory=list)  # keys the target holds twice or more
    rounds: int = 0  # catch-up rounds it took to settle the differences
    why: str = ""  # why the differences left are real, when some are


def compare_keys(source: Collection, conn: Connection, table: str, session: ClientSession) -> KeyCheck:
    """Every ``_id`` of the source against the staging tables of ``table``."""
    check = KeyCheck()
    with transaction(conn), conn.cursor() as cursor:
        conn.execute(target.statement("create_source_keys", table))
        with cursor.copy(target.statement("copy_source_keys", table)) as copy:
            for raw_batch in source.find_raw_batches(
                {}, {"_id": 1}, hint=[("_id", 1)], batch_size=KEYS_PER_READ, session=session
            ):
                keys = id_keys(raw_batch)
                check.source += len(keys)
                for key in keys:
                    copy.write_row((key,))
        rows, rejects = target.count_rows(conn, table)
        check.target = rows + rejects
        differences = conn.execute(target.statement("key_differences", table), {"most": MOST_DIFFERENCES + 1})
        check.differences = dict(differences.fetchall())
        check.duplicates = conn.execute(target.statement("duplicate_keys", table)).fetchall()
    return check


def settle(
    check: KeyCheck,
    source: Collection,
    conn: Connection,
    table: str,
    catch_up: Callable[[set[str]], set[str]] | None,
    session: ClientSession,
) -> KeyCheck:
    """Catch up and re-read the differing keys until none differs, or one differs that no change explains.

    ``catch_up(keys)`` applies the changes since the last catch-up, makes
    ``session`` read from its point on, and returns which of ``keys`` they
    touched; None where the source has no change stream, so a difference stays one.
    """
    while check.differences:
        if catch_up is None:
            check.why = "the source has no change stream that could explain them"
        elif len(check.differences) > MOST_DIFFERENCES:
            check.why = f"more than {MOST_DIFFERENCES:,} differ, more than verify settles"
        elif check.rounds == ROUNDS:
            check.why = f"they kept changing through {ROUNDS} catch-up rounds"
        else:
            check.rounds += 1
            differing = set(check.differences)
            touched = catch_up(differing)
            unexplained = differing - touched
            if not unexplained:
                check.differences = _recheck(source, conn, table, touched, session)
                continue
            check.differences = {key: check.differences[key] for key in unexplained}
            check.why = (
                f"no change of the source since it was read explains them (catch-up round {check.rounds})"
            )
        break
    return check


def _recheck(
    source: Collection, conn: Connection, table: str, keys: Iterable[str], session: ClientSession
) -> dict[str, str]:
    """Which of ``keys`` the source and the staging tables disagree on, read again now."""
    keys = sorted(keys)
    in_source = set()
    for start in range(0, len(keys), KEYS_PER_READ):
        chunk = [id_value(key) for key in keys[start : start + KEYS_PER_READ]]
        for raw_batch in source.find_raw_batches({"_id": {"$in": chunk}}, {"_id": 1}, session=session):
            in_source.update(id_keys(raw_batch))
    with transaction(conn):
        in_target = target.keys_held(conn, table, keys)
    return {
        key: "missing" if key in in_source else "unknown"
        for key in keys
        if (key in in_source) != (key in in_target)
    }
