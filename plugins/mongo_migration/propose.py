"""Propose a mapping from a collection's data: ``python -m mongo_migration.propose <database> <collection>``.

Writing a mapping by hand means guessing each field's types, and the guesses
people regret are a first type that wins, a field the sample missed and a
precision that rounds. This command has the server count the BSON types at
every path of a sample of the collection (``type_survey.py``, through the
``mongo_default`` connection; it only reads) and writes
``include/mappings/<collection>.yaml``: a typed column for each path with its
evidence above it, and each choice a person must make marked FLAGGED. A
column's type is the one the type contract (``contract.py``) gives the BSON
types seen, its name one the mapping's rules (``mapping.py``) allow. The file is
loaded with ``load_mapping`` before it is written; a person reviews it and
commits it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from pydantic import ValidationError
from pymongo.errors import ExecutionTimeout, PyMongoError

from include import config
from mongo_migration import type_survey
from mongo_migration.connections import UnreachableError, mongo_hook
from mongo_migration.mapping import Mapping
from mongo_migration.proposal import Proposal, default_dag_id, default_table, propose
from mongo_migration.proposal_file import ProposeError, check, clashes, render, write
from mongo_migration.type_survey import (
    IDS_PER_AGGREGATION,
    OBJECT_TO_ARRAY_REFUSED,
    SAMPLE_SIZE,
    Sample,
    observe,
    sample,
)

# --- the command ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    command = shlex.join(
        ["python", "-m", "mongo_migration.propose", *(sys.argv[1:] if argv is None else argv)]
    )
    try:
        proposal = _read_and_propose(arguments)
        text = render(proposal, command)
        check(text, proposal)
        arguments.out.parent.mkdir(parents=True, exist_ok=True)
        write(text, arguments.out, arguments.force)
    except (ProposeError, UnreachableError) as error:
        print(f"propose: {error}", file=sys.stderr)
        return 1
    except PyMongoError as error:
        print(f"propose: {_reading_failed(arguments, error)}", file=sys.stderr)
        return 1
    counts = [(len(proposal.columns()), "column"), (len(proposal.children()), "child table")]
    counts += [(proposal.flag_count(), "FLAGGED line")]
    columns, children, flags = (f"{count:,} {noun}{'' if count == 1 else 's'}" for count, noun in counts)
    print(
        f"Wrote {arguments.out}: {columns}, {children} and {flags} from {proposal.documents:,} documents; "
        "review it, commit it."
    )
    return 0


def _read_and_propose(arguments: argparse.Namespace) -> Proposal:
    """Refuse a file in the way before anything is read; then read the sample and propose."""
    out, database, collection = arguments.out, arguments.database, arguments.collection
    if out.exists() and not arguments.force:
        raise ProposeError(f"{out} exists: pass --force to replace it")
    if found := clashes(out, arguments.dag_id, arguments.schema, arguments.table):
        raise ProposeError("; ".join(found))
    progress = _Progress(f"{database}.{collection}")
    with mongo_hook(arguments.conn_id) as hook:
        source = hook.get_collection(collection, database)
        limit = f"more than {type_survey.READ_TIME_LIMIT_MS / 1000:g} s (maxTimeMS)"
        try:
            sampled = sample(source, arguments.sample)
        except ExecutionTimeout:  # skips along the whole _id index: a smaller sample does not help
            raise ProposeError(
                f"the server spent {limit} on one read choosing the sample of {database}.{collection} "
                "(skips along the _id index, $sample): the server is slow or busy. Propose against a less "
                "busy member of the replica set."
            ) from None
        progress.start(sampled)
        try:
            observed = observe(source, sampled, progress)
        except ExecutionTimeout:
            raise ProposeError(
                f"the server spent {limit} on one batch of up to {IDS_PER_AGGREGATION} documents of "
                f"{database}.{collection} ({progress.said()}): the server is slow or busy for them. Lower "
                f"--sample (e.g. --sample {max(arguments.sample // 4, 100)}), or propose against a less busy "
                "member of the replica set."
            ) from None
    if not observed.documents:
        raise ProposeError(f"{database}.{collection} has no documents to propose a mapping from")
    dag_id, schema, table = arguments.dag_id, arguments.schema, arguments.table
    return propose(observed, sampled, database, collection, dag_id, schema, table)


class _Progress:
    """Tells on stderr how far the reading is, after each batch: documents read, time, an estimate."""

    def __init__(self, source: str):
        self.source, self.started, self.read, self.total = source, time.monotonic(), 0, 0

    def start(self, sampled: Sample) -> None:
        self.total = len(sampled.ids)
        batches = -(-self.total // IDS_PER_AGGREGATION)
        print(
            f"propose: reading {sampled.described()} of {self.source}, in {batches:,} "
            f"batch{'es' if batches != 1 else ''} (chosen in {self._elapsed()})",
            file=sys.stderr,
        )
        self.started = time.monotonic()

    def __call__(self, read: int) -> None:
        self.read = read
        seconds = time.monotonic() - self.started
        left = seconds / read * (self.total - read)
        estimate = f"; about {_duration(left)} left" if read < self.total else ""
        print(f"propose: {self.said()}{estimate}", file=sys.stderr, flush=True)

    def said(self) -> str:
        return f"{self.read:,} of {self.total:,} documents read in {self._elapsed()}"

    def _elapsed(self) -> str:
        return _duration(time.monotonic() - self.started)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _reading_failed(arguments: argparse.Namespace, error: PyMongoError) -> str:
    refused = getattr(error, "code", None) == OBJECT_TO_ARRAY_REFUSED
    hint = " (SecantusDB cannot list a DBRef's fields; MongoDB can)" if refused else ""
    return f"reading {arguments.database}.{arguments.collection} failed{hint}: {error}"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line with its defaults filled in; names a mapping would refuse are refused here."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.sample < 100:
        parser.error(f"--sample {arguments.sample}: read at least 100 documents")
    arguments.out = arguments.out or config.MAPPINGS_DIR / f"{arguments.collection}.yaml"
    arguments.table = arguments.table or default_table(arguments.collection, arguments.schema)
    arguments.dag_id = arguments.dag_id or default_dag_id(arguments.collection)
    if problems := _name_problems(arguments):
        parser.error(problems)
    return arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mongo_migration.propose",
        description="Propose a mapping file for a MongoDB collection from a sample of its documents.",
    )
    parser.add_argument("database")
    parser.add_argument("collection")
    parser.add_argument(
        "--out", type=Path, help="the file to write (default: include/mappings/<collection>.yaml)"
    )
    parser.add_argument("--force", action="store_true", help="replace the file if it exists")
    parser.add_argument(
        "--sample",
        type=int,
        default=SAMPLE_SIZE,
        help=f"documents to read (default {SAMPLE_SIZE}, at least 100)",
    )
    parser.add_argument("--dag-id", help="default: mongo_<collection>_to_postgres")
    parser.add_argument("--table", help="the target table (default: the collection's name as a table name)")
    parser.add_argument(
        "--schema", default=config.TARGET_SCHEMA, help=f"the target schema (default: {config.TARGET_SCHEMA})"
    )
    parser.add_argument("--conn-id", default=config.MONGO_CONN_ID, help=f"default: {config.MONGO_CONN_ID}")
    return parser


def _name_problems(arguments: argparse.Namespace) -> str:
    """What a mapping of these names would be refused for: the source, the target, the DAG id and the
    staging tables' names (``mapping.check_relation_names``); empty when nothing."""
    try:
        Mapping(
            dag_id=arguments.dag_id,
            source={"database": arguments.database, "collection": arguments.collection},
            target={"schema": arguments.schema, "table": arguments.table},
        )
    except ValidationError as error:
        return "; ".join(_problem(problem) for problem in error.errors())
    return ""


def _problem(problem: dict) -> str:
    """A problem pydantic found, as ``field: message`` (a whole mapping's problem has no field)."""
    message = problem["msg"].removeprefix("Value error, ")
    return f"{problem['loc'][-1]}: {message}" if problem["loc"] else message


if __name__ == "__main__":
    sys.exit(main())
