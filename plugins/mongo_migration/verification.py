"""Verify against the source itself: what the copy holds, read again from the source after the catch-up.

Two proofs. The full proof reads every ``_id`` of the source again (a
covered query on the ``_id`` index of a real MongoDB) into an unlogged table
beside the staging tables, and one query finds the keys the copy misses and
the keys it holds that the source does not. The copy is the staging tables;
an incremental run's is their rows of the documents changed since the
published point with the live rows of the others (``target.Tables``), so
nothing of the live table is copied to check it. It runs on full copies and,
in incremental runs, when the last full proof is older than the run's
``full_proof_days`` (``proof_to_make``).

The proof of the changes, every other incremental run, costs what changed:
the documents the change stream touched since the published point are read
again by ``_id`` and compared with their rows, and the source's count of
documents must equal the published rows and rejects with the changes applied
(``target.count_rows``, from the counts publish recorded and checked), counted
as of the copy's point where the server can. A difference the stream cannot
explain (a source restored from an older snapshot) fails the run, and the
operator then makes the next run copy in full.

With ``content``, the source's documents are read whole and converted as the
pages convert them, and the query also finds the rows whose columns or
document differ, or whose child rows differ (rejects are compared by ``_id``
only). On a source that keeps changing, a document (or the count) can differ
only because it changed after the catch-up's point: then the stream holds that
change. So each round catches up again and reads the differing documents (or
the count) again: one that still differs though no change touched it since
the last round is a real difference, and fails the run by name.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace

import bson
from psycopg import Connection
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from mongo_migration import copy_mode, target
from mongo_migration.changes import CatchUp
from mongo_migration.connections import transaction
from mongo_migration.documents import Conversion, id_keys, id_value
from mongo_migration.mapping import Mapping
from mongo_migration.pages import count_all
from mongo_migration.positions import Position, advance_to, consistency, session_as_of
from mongo_migration.report import copy_line, markdown_report, summarize, summary_line
from mongo_migration.target import Tables

KEYS_PER_READ = 10_000
# Differences verify keeps to settle (100 MB or so of _id keys): the inserts and deletes made
# while every _id is read again, on a busy source, all differ until the next round.
MOST_DIFFERENCES = 1_000_000
# Catch-up rounds for documents that keep changing: a document that differs in every one, each
# time explained by a new change, is one the source changes faster than verify reads it.
ROUNDS = 10


@dataclass
class KeyCheck:
    """What the source and the staging tables hold, document by document."""

    source: int = 0  # documents read from the source
    differences: dict[str, str] = field(default_factory=dict)  # key: "missing", "unknown" or "changed"
    duplicates: list[tuple[str, int]] = field(default_factory=list)  # keys the target holds twice or more
    # keys the source holds twice or more: a collection sharded on a key that does not start with _id
    source_duplicates: list[tuple[str, int]] = field(default_factory=list)
    rounds: int = 0  # catch-up rounds it took to settle the differences
    why: str = ""  # why the differences left are real, when some are
    # Keys that differed in every one of ROUNDS rounds, each time because they had changed again:
    # their rows are as the stream last showed them, not proven against a read of the source.
    changing: list[str] = field(default_factory=list)
    proof: str = "full"  # "full": every _id read again; "changes": the changed documents and the counts
    counts: str = ""  # the proof of the changes: how the source's count and the copy's differ, when they do
    # The proof of the changes: the source's count differed in every one of ROUNDS rounds, each time
    # with changes since (a server that cannot count as of a point), so verify made the full proof.
    count_changing: bool = False


@dataclass(frozen=True)
class Proof:
    """What verify proved of the staging tables, as ``publish`` reads it: publish refuses a copy whose
    rows and rejects are not these, and what a changed mapping emptied (``columns``)."""

    mode: str  # "full" or "incremental", as open_change_stream chose
    reason: str | None  # why a full copy
    source: int  # _id values the source holds
    target: int  # rows of the copy
    rejected: int  # rejects of the copy
    rejects_by_column: dict[str, int]
    columns: dict  # target.column_counts of a full copy ({"columns": [], "children": []} otherwise)
    position: dict | None  # where the copy stands in the change stream; None: no stream
    stream_seconds: float | None  # how long the source's oplog had to keep the run's start
    catch_up_rounds: int
    still_changing: list[str]  # documents changing in every round, as the stream showed them last
    run: dict  # what the pages and the catch-up did (report.summarize)
    summary: str  # the run in one line
    report: str  # the run in Markdown
    proof: str = "full"  # which proof verify made (KeyCheck.proof); older results made the full one
    # The staging tables' keys as verify proved them: how many, the sum of their hashes and the number of
    # the last write (target.StagedState; None: a result of an earlier version)
    staged_keys: tuple[int, str, int | None] | None = None

    def staged(self) -> target.StagedState:
        """The staging tables as this proof proved them, for publish to find again."""
        keys, key_hash, last_write = self.staged_keys or (None, None, None)
        return target.StagedState(self.target, self.rejected, keys, key_hash, last_write, self.position)

    def to_xcom(self) -> dict:
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: dict) -> Proof:
        """``value`` as ``to_xcom`` wrote it, or as the version before wrote it (the pages' summary spread
        beside the proof, not under ``run``), so that a run verified before a deploy still publishes."""
        fields = {name for name in cls.__dataclass_fields__ if name != "run"}
        if "run" not in value and set(value) - fields <= set(summarize([], 1.0)):
            value = {
                **{name: found for name, found in value.items() if name in fields},
                "run": {name: found for name, found in value.items() if name not in fields},
            }
        return cls(**value)


@dataclass(frozen=True)
class Staged:
    """What the copy holds, counted in one transaction after the comparison."""

    rows: int
    rejected: int
    keys: tuple[int, str, int | None]  # how many keys, their hashes' sum, the last write (StagedState)
    reject_reasons: list[tuple[str | None, str, int]]  # the most frequent (column, reason), with counts
    rejects_by_column: dict[str, int]
    position: dict | None
    columns: dict


def proof_to_make(mode: str, full_proof_at: float | None, days: int, now: float) -> tuple[str, str]:
    """Which proof verify makes of a copy in ``mode``, and why: ``"full"`` (every ``_id`` read again) on a
    full copy and when the last full proof of the live table (at ``full_proof_at``, seconds since the
    epoch; None or 0: none recorded) is ``days`` old or older; otherwise ``"changes"``."""
    if mode == "full":
        return "full", "a full copy"
    if not full_proof_at:  # 0: its last publish had no proof at all
        return "full", "no full proof of the live table is recorded"
    age = (now - full_proof_at) / 86_400
    if age >= days:
        return "full", f"the last full proof is {age:.1f} days old, and full_proof_days is {days}"
    return "changes", f"the last full proof is {age:.1f} days old (full_proof_days: {days})"


def count_staged(conn: Connection, tables: Tables, mapping: Mapping, full: bool, run: dict) -> Staged:
    """The copy's rows and rejects, and of a full copy each column against the live tables: what publish
    judges of a changed mapping. An incremental run's mapping is the published one, and counting would
    read every live row."""
    published = target.published_state(conn, tables) if full else None
    changed = copy_mode.changed_since_publish(mapping, published and (published.versions or {}))
    with transaction(conn):
        state = target.staged_state(conn, tables)
        rejected = state.rejects
        return Staged(
            rows=state.rows,
            rejected=rejected,
            keys=(state.keys, state.key_hash, state.last_write),
            reject_reasons=target.reject_reasons(conn, tables) if rejected else [],
            rejects_by_column=target.rejects_by_column(conn, tables) if rejected else {},
            position=state.position,
            columns=target.column_counts(conn, tables, changed, run["absent"], run["coerced"])
            if full
            else {"columns": [], "children": []},
        )


def verified_line(check: KeyCheck, content: bool, why_proof: str) -> str:
    """What verify proved, and why that proof, for the report."""
    what = "every document's _id and content" if content else "every _id"
    if check.proof == "full":
        return f"{what}, the full proof ({why_proof})"
    what = "the changed documents' _id and content" if content else "the changed documents' _id"
    return f"{what} and the counts, the proof of the changes ({why_proof})"


def prove(
    copy: copy_mode.Copy,
    check: KeyCheck,
    staged: Staged,
    run: dict,
    source: str,
    tables: Tables,
    content: bool,
    why_proof: str,
    stream_seconds: float | None,
) -> Proof:
    """The proof of a comparison that found no difference, with the run's summary and report."""
    line = copy_line(copy.mode, copy.reason, verified_line(check, content, why_proof), len(check.changing))
    report = markdown_report(
        run,
        source,
        str(tables),
        staged.rows,
        line,
        consistency(staged.position),
        staged.rejects_by_column,
        staged.columns["columns"],
    )
    return Proof(
        mode=copy.mode,
        reason=copy.reason,
        source=check.source,
        target=staged.rows,
        rejected=staged.rejected,
        rejects_by_column=staged.rejects_by_column,
        columns=staged.columns,
        position=staged.position,
        stream_seconds=stream_seconds,
        catch_up_rounds=check.rounds,
        still_changing=check.changing[:100],
        run=run,
        summary=summary_line(run),
        report=report,
        proof=check.proof,
        staged_keys=staged.keys,
    )


def failure(check: KeyCheck, source: str, tables: Tables) -> str | None:
    """Why the source and the copy differ, naming the ``_id`` values (None: they do not)."""
    if check.source_duplicates:
        return (
            f"Source {source} holds documents that share an _id, which a copy keyed by _id cannot hold: "
            f"{check.source_duplicates} (_id and documents). Is the collection sharded on a key that does "
            "not start with _id? Preflight names the fix."
        )
    if check.counts:
        return f"Source {source} and target {tables} differ: {check.counts}"
    if not (check.differences or check.duplicates):
        return None
    twice = f"; _id held more than once by the target: {check.duplicates}" if check.duplicates else ""
    return (
        f"Source {source} and target {tables} differ: {_differing_ids(check.differences)}: {check.why}{twice}"
    )


def _differing_ids(differences: dict[str, str]) -> str:
    """The differing ``_id`` values, by kind, ten of each at most."""
    kinds = {
        "missing": "missing in the target",
        "unknown": "not in the source",
        "changed": "of another content",
    }
    by_kind = {kind: sorted(key for key, found in differences.items() if found == kind) for kind in kinds}
    return "; ".join(f"{len(keys)} _id {kinds[kind]}: {keys[:10]}" for kind, keys in by_kind.items() if keys)


@dataclass(frozen=True)
class Comparison:
    """The source as ``session`` reads it against the staging tables of ``tables``: by ``_id`` alone or,
    with ``content``, document by document as ``conversion`` writes them."""

    source: Collection
    conn: Connection
    tables: Tables
    conversion: Conversion
    session: ClientSession
    content: bool


def verify_against(
    source: Collection,
    conn: Connection,
    tables: Tables,
    conversion: Conversion,
    content: bool,
    catch_up: Callable[[Tables, set[str]], CatchUp],
    proof: str = "full",
) -> tuple[Tables, KeyCheck]:
    """The source, read as of the copy's position or later, against the copy, settled by catching up
    where a change explains a difference (``catch_up(tables, keys)``: the changes since, applied); the
    tables as the run loads them, and what the comparison found. ``proof``: ``"full"``, or
    ``"changes"`` (``proof_to_make``; only an incremental copy has changes to prove)."""
    with transaction(conn):
        caught_up = target.staging_position(conn, tables)
        tables = target.loaded(conn, tables)
    with session_as_of(source, caught_up) as session:

        def catch_up_again(keys: set[str]) -> CatchUp:  # the changes since; no waiting for quiet
            caught = catch_up(tables, keys)
            advance_to(session, caught.position)
            return caught

        again = catch_up_again if caught_up is not None else None
        comparison = Comparison(source, conn, tables, conversion, session, content)
        if proof == "changes" and tables.incremental:
            check = settle(compare_changes(comparison), comparison, again)
            if not (check.differences or check.duplicates or check.source_duplicates):
                check = settle_count(check, comparison, again)
            if not check.count_changing:
                return tables, check
        full = settle(compare(comparison), comparison, again)  # and where the counts kept changing
        full.count_changing = proof == "changes" and tables.incremental
        return tables, full


def compare(comparison: Comparison) -> KeyCheck:
    """Every document of the source against the staging tables: its ``_id``, or all of it."""
    found = _differences(comparison, [{}])
    return KeyCheck(
        source=found.documents,
        differences=found.differences,
        duplicates=found.duplicates,
        source_duplicates=found.source_duplicates,
    )


def compare_changes(comparison: Comparison) -> KeyCheck:
    """The documents changed since the published point (an incremental run's ``changed`` keys), read again
    by ``_id``, against their staging rows and rejects, which are the copy's rows of those documents: its
    ``_id``, or all of it. ``source`` is counted by ``settle_count``."""
    staged = replace(comparison, tables=replace(comparison.tables, incremental=False))
    found = _differences(staged, _changed_documents(comparison.conn, comparison.tables))
    return KeyCheck(
        differences=found.differences,
        duplicates=found.duplicates,
        source_duplicates=found.source_duplicates,
        proof="changes",
    )


CHANGED_KEYS_PER_READ = 100_000  # changed keys verify holds at once: memory bounded at any share changed


def _changed_documents(conn: Connection, tables: Tables) -> Iterator[dict]:
    """Queries for the documents an incremental run changed, its ``changed`` keys read in order, a chunk
    of ``CHANGED_KEYS_PER_READ`` at a time (each in a transaction of its own, between two of the reads)."""
    after = None
    while True:
        with transaction(conn):
            limits = {"after": after, "most": CHANGED_KEYS_PER_READ}
            keys = [key for (key,) in conn.execute(target.statement("changed_keys", tables), limits)]
        if not keys:
            return
        yield from _in_chunks(keys)
        after = keys[-1]


def settle_count(
    check: KeyCheck, comparison: Comparison, catch_up: Callable[[set[str]], CatchUp] | None
) -> KeyCheck:
    """The proof of the changes' counts: the source's documents against the copy's rows and rejects (the
    published counts with the changes applied), counted again after each catch-up that applied changes.

    Equal: proven. A difference that stays though the catch-up found no
    change since is real (``counts`` says so). After ``ROUNDS`` rounds each
    with changes, ``count_changing``: the source changes faster than the counts
    are read (where it cannot count as of a point), and verify makes the full
    proof instead.
    """
    conn, tables = comparison.conn, comparison.tables
    for _ in range(ROUNDS):
        with transaction(conn):
            rows, rejects = target.count_rows(conn, tables)
            position = target.staging_position(conn, tables)
        check.source = _count_as_of(comparison.source, position, comparison.session)
        if check.source == rows + rejects:
            return check
        if catch_up is None or not catch_up(set()).changes:
            check.counts = (
                f"the source holds {check.source:,} documents, and the live table with this run's changes "
                f"would hold {rows:,} rows and {rejects:,} rejects ({rows + rejects:,}); no change of the "
                "source since explains it"
            )
            return check
        check.rounds += 1
    check.count_changing = True
    return check


# What a server answers when it cannot read as of a point: SnapshotTooOld (past
# minSnapshotHistoryWindowInSeconds), SnapshotUnavailable, InvalidOptions, IllegalOperation.
_NO_READ_AT_A_POINT = {239, 246, 72, 20}


def _count_as_of(source: Collection, position: dict | None, session: ClientSession) -> int:
    """The source's documents as of ``position`` (read concern ``snapshot`` at its cluster time, MongoDB
    5.0 on: the point the copy stands at, read just after the catch-up, inside the server's snapshot
    window), or, where the server cannot read there, as ``session`` reads now. The local stand-in accepts
    the point and answers with its current count."""
    if position is not None:
        at = Position.from_json(position).cluster_time
        try:
            reply = source.database.command(
                "aggregate",
                source.name,
                pipeline=[{"$count": "documents"}],
                cursor={},
                hint={"_id": 1},
                readConcern={"level": "snapshot", "atClusterTime": at},
            )
            first = reply["cursor"]["firstBatch"]
            return first[0]["documents"] if first else 0
        except OperationFailure as error:
            if error.code not in _NO_READ_AT_A_POINT:
                raise
    return count_all(source, session)


def settle(
    check: KeyCheck, comparison: Comparison, catch_up: Callable[[set[str]], CatchUp] | None
) -> KeyCheck:
    """Catch up and re-read the differing documents until none differs, or one that no change explains does.

    Bounded by design: after ``ROUNDS`` rounds, the documents that still
    differ, each explained again by a new change, are ``changing``: the copy
    holds them as the stream showed them last, and verify says so.

    ``catch_up(keys)`` applies the changes since the last catch-up, makes
    ``session`` read from its point on, and returns what it applied (``touched``:
    which of ``keys``); None where the source has no change stream, so a difference stays one.
    """
    while check.differences:
        if catch_up is None:
            check.why = "the source has no change stream that could explain them"
        elif len(check.differences) > MOST_DIFFERENCES:
            check.why = f"more than {MOST_DIFFERENCES:,} differ, more than verify settles"
        else:
            check.rounds += 1
            differing = set(check.differences)
            touched = catch_up(differing).touched
            unexplained = differing - touched
            if not unexplained and check.rounds == ROUNDS:
                check.changing, check.differences = sorted(differing), {}
            elif not unexplained:
                check.differences = _recheck(comparison, touched)
                continue
            else:
                check.differences = {key: check.differences[key] for key in unexplained}
                check.why = (
                    f"no change of the source since it was read explains them (catch-up round {check.rounds})"
                )
        break
    return check


def _recheck(comparison: Comparison, keys: Iterable[str]) -> dict[str, str]:
    """Which of ``keys`` the source and the staging tables disagree on, read again now."""
    keys = sorted(keys)
    return _differences(comparison, _in_chunks(keys), keys).differences


# The _id values one query by _id names (the changed documents, a recheck): at most this many, and
# this many bytes of BSON, since a command is at most 16 MB and a sustained purge can leave a million
# _id values to read again. A real MongoDB looks each up in the _id index whatever the count; SecantusDB
# matches each document against the whole list, a cost that grows with its square (10,000 _id values
# took 51 s there, 1,000 about 0.5 s).
QUERY_IDS = 1000
QUERY_ID_BYTES = 4 * 2**20


def _in_chunks(keys: list[str]) -> Iterator[dict]:
    """Queries for the documents of ``keys``, each naming at most ``QUERY_IDS`` values and
    ``QUERY_ID_BYTES`` of them."""
    chunk, size = [], 0
    for key in keys:
        value = id_value(key)
        value_size = len(bson.encode({"": value}))  # its element in the $in array, about
        if chunk and (size + value_size > QUERY_ID_BYTES or len(chunk) == QUERY_IDS):
            yield {"_id": {"$in": chunk}}
            chunk, size = [], 0
        chunk.append(value)
        size += value_size
    if chunk:
        yield {"_id": {"$in": chunk}}


@dataclass(frozen=True)
class _Compared:
    """What one comparison of documents read again with the copy found."""

    documents: int  # read from the source
    differences: dict[str, str]
    duplicates: list[tuple[str, int]]  # keys the copy holds twice
    source_duplicates: list[tuple[str, int]]  # keys the documents read hold twice


def _differences(comparison: Comparison, queries: Iterable[dict], keys: list[str] | None = None) -> _Compared:
    """The documents ``queries`` match in the source against the staging tables (only at ``keys``, when
    given).

    What is read goes into unlogged tables beside the staging tables
    (``Tables.read_again``), a transaction per batch, and is compared in one
    transaction of reads at the end: no transaction stays open while the source
    is read, holding back vacuum for every user of the target database.
    """
    source, conn, tables, conversion = (
        comparison.source,
        comparison.conn,
        comparison.tables,
        comparison.conversion,
    )
    session, content = comparison.session, comparison.content

    def read(query: dict) -> Iterator[bytes]:
        if content:
            return source.find_raw_batches(query, batch_size=KEYS_PER_READ, session=session)
        # A covered query on the _id index. Every _id ({}) is hinted to walk it; the planner takes it for
        # an $in of _id values by itself, and the stand-in answers a hinted $in by a scan per value.
        return source.find_raw_batches(
            query, {"_id": 1}, hint=None if query else [("_id", 1)], batch_size=KEYS_PER_READ, session=session
        )

    batches = itertools.chain.from_iterable(read(query) for query in queries)
    documents = 0
    children = list(zip(tables.mapping.children, tables.children, strict=True)) if content else []
    read_into = [tables.table, *(relation for _, relation in children)]
    with transaction(conn):
        for relation in read_into:
            definitions = tables.definitions(relation, keyed=False)
            conn.execute(target.statement("create_source_rows", tables, relation, definitions=definitions))
    try:
        blank = (None,) * (len(tables.columns()) - 1)
        for raw_batch in batches:  # a transaction per batch: KEYS_PER_READ documents, or a query's by _id
            with transaction(conn), target.copy_into_source_rows(conn, tables, tables.table) as copy:
                if content:
                    rows = conversion.rows(raw_batch, 0)
                    copy.write(rows.rows)
                    for reject in rows.rejects:  # compared by _id only
                        copy.write_row((reject.key or "", *blank))
                    documents += rows.documents
                else:
                    for key in id_keys(raw_batch):
                        copy.write_row((key, *blank))
                        documents += 1
            for child, relation in children:
                with transaction(conn), target.copy_into_source_rows(conn, tables, relation) as copy:
                    copy.write(rows.children[child.name])
        limits = {"content": content, "keys": keys, "most": MOST_DIFFERENCES + 1}
        with transaction(conn):
            found = dict(conn.execute(target.statement("differences", tables), limits).fetchall())
            for _, relation in children:
                statement = target.statement("child_differences", tables, relation)
                for key, difference in conn.execute(statement, limits).fetchall():
                    found.setdefault(key, difference)
            duplicates = conn.execute(target.statement("duplicate_keys", tables), {"keys": keys}).fetchall()
            twice = conn.execute(target.statement("source_duplicates", tables)).fetchall()
    finally:
        with transaction(conn):
            for relation in read_into:
                conn.execute(target.statement("drop_source_rows", tables, relation))
    return _Compared(documents, found, duplicates, twice)
