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
import json
import math
import os
import re
import shlex
import sys
import tempfile
import textwrap
import time
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from bson.datetime_ms import DatetimeMS
from pydantic import ValidationError
from pymongo.errors import ExecutionTimeout, PyMongoError

from include import config
from mongo_migration import contract, type_survey
from mongo_migration.connections import UnreachableError, mongo_hook
from mongo_migration.mapping import (
    MAX_NAME_BYTES,
    NAME,
    REJECTS_SUFFIX,
    RESERVED_CHILD_COLUMNS,
    RESERVED_COLUMNS,
    Mapping,
    MappingError,
    load_mapping,
)
from mongo_migration.type_survey import (
    ARRAY_ELEMENTS,
    ELEMENT,
    IDS_PER_AGGREGATION,
    MAX_DEPTH,
    OBJECT_TO_ARRAY_REFUSED,
    SAMPLE_SIZE,
    SMALL_BINARY_BYTES,
    Observed,
    Sample,
    Seen,
    observe,
    sample,
)

MINORITY_SHARE = 0.05  # a type this rare beside another may be an old client's: propose its coercion
MAX_OBJECT_FIELDS = 100  # a nested object with more distinct field names is a map: jsonb keeps it whole
COMMENT_WIDTH = 110  # of the file's comment lines


class ProposeError(Exception):
    """A proposal that cannot be made or written; the message says what and why."""


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


# --- the proposal -----------------------------------------------------------------------------------------


@dataclass
class ProposedColumn:
    """A column as the file will have it, with the evidence and the FLAGGED choices written above it."""

    path: tuple[str, ...]  # from the document, or from the array's element
    type: str
    accepts: tuple[str, ...]
    nullable: bool
    evidence: list[str]
    flags: list[str]
    name: str = ""


@dataclass
class ProposedChild:
    """An array of objects as a child table: its columns, and its evidence and FLAGGED choices."""

    path: tuple[str, ...]
    nullable: bool
    items: list  # its ProposedColumns and Notes
    evidence: list[str]
    flags: list[str] = field(default_factory=list)
    name: str = ""

    def columns(self) -> list[ProposedColumn]:
        return [item for item in self.items if isinstance(item, ProposedColumn)]


@dataclass
class Note:
    """A comment in a column's place: a path that is no column, or an object whose fields follow."""

    lines: list[str]
    flags: list[str] = field(default_factory=list)


@dataclass
class Proposal:
    """The whole proposed mapping, in the order the documents have their fields."""

    database: str
    collection: str
    dag_id: str
    schema: str
    table: str
    sampled: Sample
    documents: int  # the documents the aggregation read
    items: list  # ProposedColumns, ProposedChildren and Notes, in the documents' order
    flags: list[str]  # about whole documents

    def columns(self) -> list[ProposedColumn]:
        return [item for item in self.items if isinstance(item, ProposedColumn)]

    def children(self) -> list[ProposedChild]:
        return [item for item in self.items if isinstance(item, ProposedChild)]

    def flag_count(self) -> int:
        flagged = [
            *self.items,
            *(item for child in self.children() for item in child.items),
        ]
        return len(self.flags) + sum(len(item.flags) for item in flagged)


def propose(
    observed: Observed, sampled: Sample, database: str, collection: str, dag_id: str, schema: str, table: str
) -> Proposal:
    """The mapping the observed types call for, each column with its evidence, flags and name."""
    items = _items(observed, (), (), observed.documents, "documents", in_element=False)
    proposal = Proposal(
        database,
        collection,
        dag_id,
        schema,
        table,
        sampled,
        observed.documents,
        items,
        _document_flags(observed),
    )
    _name_columns(proposal.columns(), RESERVED_COLUMNS)
    _name_children(proposal.children(), schema, table)
    for child in proposal.children():
        _name_columns(child.columns(), RESERVED_CHILD_COLUMNS)
    return proposal


def _items(observed: Observed, row: tuple, prefix: tuple, units: int, unit: str, in_element: bool) -> list:
    """The columns, child tables and notes of the fields below ``row + prefix``, objects flattened.

    ``row`` is the path of what a row is made of (the document, or an array's
    element); ``units`` how many of them the sample holds.
    """
    items: list = []
    for key in observed.field_names(row + prefix):
        path = (*prefix, key)
        seen = observed.at(row + path)
        kinds = _kinds(seen)
        evidence = [f"{_shown_path(path)}: {_type_counts(seen)}; {_missing_or_null(seen, units, unit)}"]
        if key == "":
            items.append(Note([*evidence, "an empty field name cannot be in a path: it stays in document"]))
        elif not kinds:
            items.append(Note([*evidence, "only null in the sample: no column; it stays in document"]))
        elif kinds == {"object"} and not _kept_whole(observed, row + path):
            flags = _varying_keys(observed, row + path, path)
            items.append(Note([*evidence, "an object: its fields are the columns below"], flags))
            items += _items(observed, row, path, units, unit, in_element)
        elif (
            kinds == {"array"} and not in_element and (child := _child(observed, path, seen, units, evidence))
        ):
            items.append(child)
        else:
            items.append(_column(observed, row, path, seen, units, in_element, evidence))
    return items


def _kinds(seen: dict[str, Seen]) -> set[str]:
    return set(seen) - {"null"}


def _nullable(seen: dict[str, Seen], units: int) -> bool:
    return "null" in seen or _missing(seen, units) > 0


def _kept_whole(observed: Observed, path: tuple) -> tuple[str, bool] | None:
    """Why the objects at ``path`` are not flattened into columns, and whether that is FLAGGED;
    None when they are."""
    if len(path) >= MAX_DEPTH:
        return f"objects nested deeper than {MAX_DEPTH} levels are not followed: jsonb keeps them whole", True
    names = observed.field_names(path)
    if not names:
        return "every object was empty: jsonb", False
    if {"$ref", "$id"} <= set(names):
        return "a DBRef ($ref, $id): jsonb keeps it whole", False
    if len(names) > MAX_OBJECT_FIELDS:
        return f"{len(names)} distinct field names (a map keyed by data?): jsonb keeps the object whole", True
    return None


VARYING_KEYS = 4  # an object with this many field names or more, none in half of the objects, is free-form


def _varying_keys(observed: Observed, at: tuple, path: tuple) -> list[str]:
    """A FLAG for objects whose keys vary (several field names, none in half of the objects): a free-form
    object split into mostly NULL columns, which jsonb would keep whole."""
    objects = observed.at(at)["object"].count
    names = observed.field_names(at)
    most = max((sum(seen.count for seen in observed.at((*at, name)).values()) for name in names), default=0)
    if len(names) < VARYING_KEYS or 2 * most > objects:
        return []
    return [
        f"the objects at {_shown_path(path)} vary in their keys ({len(names)} field names, none in more than "
        f"{_share(most, objects)} of them): a free-form object? Its fields become the columns below, mostly "
        f"NULL; to keep it whole instead, write one column in their place: "
        f"{{name: {column_name(path)}, path: [{', '.join(path)}], type: jsonb, accepts: [object]}}"
    ]


def _child(
    observed: Observed, path: tuple, seen: dict[str, Seen], units: int, evidence: list[str]
) -> ProposedChild | None:
    """A child table for an array whose elements are all objects; None when the array stays jsonb."""
    element = (*path, ELEMENT)
    elements = observed.at(element)
    if set(elements) != {"object"} or _kept_whole(observed, element):
        return None
    items = _items(observed, element, (), elements["object"].count, "elements", in_element=True)
    if not any(isinstance(item, ProposedColumn) for item in items):
        return None
    lengths = seen["array"]
    lines = [
        *evidence,
        f"array lengths: {lengths.low:,} to {lengths.high:,}; elements (the first {ARRAY_ELEMENTS} of each): "
        f"{_type_counts(elements)}",
        "an array of objects: a child table, a row per element keyed by the document's _id and the index",
    ]
    return ProposedChild(path, _nullable(seen, units), items, lines)


def _column(
    observed: Observed,
    row: tuple,
    path: tuple,
    seen: dict[str, Seen],
    units: int,
    in_element: bool,
    evidence: list[str],
) -> ProposedColumn:
    """One column: the natural type of the types seen, or jsonb accepting exactly them, FLAGGED if mixed."""
    kinds = _kinds(seen)
    lines, flags = [*evidence], []
    pg_type = _natural_type(kinds)
    if len(kinds) > 1 and pg_type == "jsonb":
        flags.append(
            f"mixed types {', '.join(_by_count(seen, kinds))}: no column type holds them all exactly "
            f"({_why_mixed(kinds)}). Keep jsonb, or choose one type and let the documents of the others be "
            "rejects" + _coercion_offer(seen, kinds)
        )
    elif pg_type == "jsonb" and not kinds & {"object", "array"}:
        lines.append(
            f"{next(iter(kinds))} has no PostgreSQL type of its own: jsonb holds it as Extended JSON"
        )
    if pg_type == "bytea":
        pg_type = _binary_type(seen["binData"], flags)
    if pg_type == "integer":  # drivers write small numbers as int32 and large ones as int64
        pg_type, kinds = "bigint", kinds | {"long"}
        lines.append(
            "only int32 seen: bigint accepting long too, so that a larger one outside the sample lands"
        )
    lines += _type_evidence(observed, row + path, seen, in_element, pg_type, flags)
    return ProposedColumn(path, pg_type, _in_contract_order(kinds), _nullable(seen, units), lines, flags)


def _coercion_offer(seen: dict[str, Seen], kinds: set[str]) -> str:
    """Where the other types are a minority (``MINORITY_SHARE``) that the main type's column can take by
    declared coercions: the lines to write, for a person who knows they are the same data."""
    total = sum(seen[kind].count for kind in kinds)
    minority = {kind for kind in kinds if seen[kind].count <= MINORITY_SHARE * total}
    main = kinds - minority
    pg_type = _natural_type(main) if main and minority else "jsonb"
    if pg_type == "numeric" and "decimal" in seen:
        pg_type = _numeric_holding(seen)  # double_rounded rounds to a scale: the decimals' own
    coerce = {}
    for kind in _in_contract_order(minority):
        fitting = (name for name in contract.COERCIONS if not contract.coercion_refusal(kind, name, pg_type))
        if name := next(fitting, None):
            coerce[kind] = name
    if pg_type == "jsonb" or set(coerce) != minority:
        return ""
    declared = ", ".join(f"{kind}: {name}" for kind, name in coerce.items())
    return (
        f"; or, if the {', '.join(coerce)} values are the same data written otherwise, declare "
        f"type: {pg_type}, accepts: [{', '.join(_in_contract_order(main))}], coerce: {{{declared}}} "
        "(docs/mappings.md, Declared coercions)"
    )


def _natural_type(kinds: set[str]) -> str:
    """The column type of the BSON types seen: the first of the contract's types whose default
    ``accepts`` hold them all, the first type that holds a lone one exactly (an objectId: text, a
    timestamp: bigint), else jsonb."""
    for pg_type, accepts in contract.DEFAULT_ACCEPTS.items():
        if kinds <= set(accepts):
            return pg_type
    if len(kinds) == 1:
        holding = (pg_type for pg_type, holds in contract.PG_TYPES.items() if kinds <= holds.keys())
        return next(holding, "jsonb")
    return "jsonb"


def _why_mixed(kinds: set[str]) -> str:
    """Why each type's own column cannot hold the others, as the contract says (``contract.REFUSED``)."""
    reasons = [
        contract.REFUSED.get((kind, _natural_type({other})))
        for kind in _in_contract_order(kinds)
        for other in _in_contract_order(kinds)
    ]
    return "; ".join(dict.fromkeys(filter(None, reasons))) or "each value keeps its own type in jsonb"


def _binary_type(binaries: Seen, flags: list[str]) -> str:
    """bytea, which keeps no subtype, when every binary read is generic (subtype 0); else jsonb."""
    if other := sorted(set(binaries.subtypes) - {0}):
        flags.append(
            f"binaries of subtype {', '.join(map(str, other))}: bytea keeps no subtype (only generic binary, "
            "subtype 0, reads back the same), so jsonb"
        )
        return "jsonb"
    if binaries.unread_binaries:
        flags.append(
            f"the subtype of {binaries.unread_binaries:,} binaries over {SMALL_BINARY_BYTES} bytes was not "
            "read: bytea takes only generic binary (subtype 0); any other subtype will be a reject"
        )
    return "bytea"


def _type_evidence(
    observed: Observed, path: tuple, seen: dict[str, Seen], in_element: bool, pg_type: str, flags: list[str]
) -> list[str]:
    """The evidence of each type seen at ``path``; what would set documents aside is added to ``flags``."""
    lines = []
    if strings := seen.get("string"):
        lines += _string_evidence(strings)
    if dates := seen.get("date"):
        lines += _date_evidence(dates, pg_type, flags)
    for name in ("int", "long"):
        if numbers := seen.get(name):
            lines.append(f"{name}: {numbers.low:,} to {numbers.high:,}")
    if "decimal" in seen:
        lines.append(_decimal_evidence(seen))
    for name in ("binData", "uuid"):
        if binaries := seen.get(name):
            lines.append(_binary_evidence(name, binaries))
    if "timestamp" in seen:
        lines.append("timestamp: an oplog position, not a date: bigint holds its seconds << 32 | increment")
    if "object" in seen and (whole := _kept_whole(observed, path)):
        reason, flagged = whole
        (flags if flagged else lines).append(reason)
    if arrays := seen.get("array"):
        lines += _array_evidence(observed, path, arrays, in_element, flags)
    return lines


def _string_evidence(strings: Seen) -> list[str]:
    if strings.high is None:  # symbols (deprecated) count as strings but have no length on the server
        return []
    lines = [f"longest string: {strings.high:,} character{'s' if strings.high != 1 else ''}"]
    if strings.nul:
        lines.append(f"{strings.nul:,} holding the NUL character (see FLAGGED at the top)")
    return lines


def _date_evidence(dates: Seen, pg_type: str, flags: list[str]) -> list[str]:
    """The first and the last date; FLAGGED, those beyond PostgreSQL's years when they go to timestamptz."""
    outside = [_date(when) for when in (dates.low, dates.high) if not _in_postgres_range(when)]
    if outside and pg_type == "timestamptz":
        flags.append(f"dates outside PostgreSQL's timestamptz range ({', '.join(outside)}) will be rejects")
    return [f"dates: {_date(dates.low)} to {_date(dates.high)}"]


def _binary_evidence(name: str, binaries: Seen) -> str:
    read = ", ".join(f"subtype {subtype}: {n:,}" for subtype, n in sorted(binaries.subtypes.items()))
    unread = f"{binaries.unread_binaries:,} over {SMALL_BINARY_BYTES} bytes, subtype not read"
    return f"{name}: {'; '.join(filter(None, [read, unread if binaries.unread_binaries else '']))}"


def _array_evidence(
    observed: Observed, path: tuple, arrays: Seen, in_element: bool, flags: list[str]
) -> list[str]:
    """The arrays' lengths and elements, and why an array of objects is no child table."""
    lines = [f"array lengths: {arrays.low:,} to {arrays.high:,}"]
    element = (*path, ELEMENT)
    elements = observed.at(element)
    if elements:
        lines.append(f"elements (the first {ARRAY_ELEMENTS} of each array): {_type_counts(elements)}")
    elif arrays.high:
        flags.append(f"arrays nested deeper than {MAX_DEPTH} levels are not followed: jsonb keeps them whole")
    if "object" not in elements:
        return lines
    if set(elements) != {"object"}:
        others = ", ".join(sorted(set(elements) - {"object"}))
        flags.append(f"the elements mix objects with {others}: no child table, jsonb keeps the array whole")
    elif in_element:
        flags.append("an array of objects inside an array's element: child tables do not nest, so jsonb")
    elif whole := _kept_whole(observed, element):
        reason, flagged = whole
        (flags if flagged else lines).append(f"no child table: {reason}")
    else:
        lines.append("no child table: the elements' fields were only null")
    return lines


def _decimal_evidence(seen: dict[str, Seen]) -> str:
    """The digits of the Decimal128 values, and of the integers beside them: the numeric(p,s) holding them."""
    digits, holding, special = _decimal_digits(seen)
    _, after = contract.NUMERIC_WITH_SCALE.fullmatch(holding).groups()
    line = (
        f"decimal: at most {digits} digits, at most {after} after the point; every sampled number fits "
        f"{holding}"
    )
    return line + (f"; also {', '.join(special)}" if special else "")


def _numeric_holding(seen: dict[str, Seen]) -> str:
    return _decimal_digits(seen)[1]


def _decimal_digits(seen: dict[str, Seen]) -> tuple[int, str, list[str]]:
    """The most digits of the sampled Decimal128 values, the numeric(p,s) holding them and the integers
    beside them, and their NaNs and infinities."""
    before = after = digits = 0
    special = []
    for text in sorted(seen["decimal"].decimals):
        number = Decimal(text)
        if not number.is_finite():
            special.append(text)
            continue
        _, places, exponent = number.as_tuple()
        digits = max(digits, len(places))
        before = max(before, len(places) + exponent)
        after = max(after, -exponent)
    for name in ("int", "long"):
        if numbers := seen.get(name):
            before = max(before, len(str(abs(numbers.low))), len(str(abs(numbers.high))))
    return digits, f"numeric({max(before + after, 1)},{after})", special


def _document_flags(observed: Observed) -> list[str]:
    """What sets a document aside wherever it is: the column "document" holds the whole document."""
    flags = []
    dollars = [
        path
        for path in observed.seen
        if path and path[-1] is not ELEMENT and path[-1].startswith("$") and not _in_dbref(observed, path)
    ]
    if dollars:
        flags.append(
            f"field names starting with $ at {', '.join(map(_shown_path, dollars))}: the document column "
            "cannot hold them (Extended JSON would read them as types), so those documents will be rejects"
        )
    nul = [
        f"{_shown_path(path)} ({types['string'].nul:,})"
        for path, types in observed.seen.items()
        if _holds_nul(types)
    ]
    if nul:
        flags.append(
            f"strings holding the NUL character at {', '.join(nul)}: PostgreSQL cannot store it in text or "
            "jsonb (the document column either), so those documents will be rejects"
        )
    return flags


def _in_dbref(observed: Observed, path: tuple) -> bool:
    return path[-1] in ("$ref", "$id", "$db") and {"$ref", "$id"} <= set(observed.field_names(path[:-1]))


def _holds_nul(types: dict[str, Seen]) -> bool:
    return "string" in types and types["string"].nul > 0


# --- names ------------------------------------------------------------------------------------------------


def name_part(key: str) -> str:
    """A field name as part of a plain lowercase PostgreSQL name: accents dropped, camelCase as
    snake_case, any other character as ``_``."""
    plain = "".join(char for char in unicodedata.normalize("NFKD", key) if not unicodedata.combining(char))
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", plain).lower()
    return re.sub(r"[^a-z0-9_]+", "_", snake)


def column_name(path: tuple[str, ...]) -> str:
    """A path's name: its fields' names joined with ``_``, and a ``_`` first where a plain name
    (``mapping.NAME``) needs one: a name never starts with a digit."""
    name = "_".join(name_part(key) for key in path)
    return name if NAME.fullmatch(name) else "_" + name


def _name_columns(columns: list[ProposedColumn], reserved: tuple[str, ...]) -> None:
    """Name each column after its path; one whose name is taken or reserved gets a suffix, FLAGGED."""
    taken = dict.fromkeys(reserved, "one of the machinery's own columns")
    for column in columns:
        wanted = column_name(column.path)
        if len(wanted) > MAX_NAME_BYTES:
            column.evidence.append(f"the name is shortened to PostgreSQL's {MAX_NAME_BYTES} bytes")
            wanted = wanted[:MAX_NAME_BYTES]
        _give_name(column, wanted, taken, MAX_NAME_BYTES)
        if not re.search(r"[a-z0-9]", wanted):
            column.flags.append(
                f"named {column.name}: no letter of the field names fits a plain PostgreSQL name"
            )


def _name_children(children: list[ProposedChild], schema: str, table: str) -> None:
    """Name each child table after its array, short enough for its staging table's name
    (``<schema>.<table>_<name>``), and never the rejects table's suffix."""
    room = MAX_NAME_BYTES - len(f"{schema}.{table}_")
    taken = {REJECTS_SUFFIX.removeprefix("_"): "the rejects table's suffix"}
    for child in children:
        wanted = column_name(child.path)
        if len(wanted) > room:
            child.flags.append(
                f"the name {wanted} is shortened to {room} bytes: {schema}.{table}_<name> must fit in "
                f"PostgreSQL's {MAX_NAME_BYTES}"
            )
            wanted = wanted[:room]
        _give_name(child, wanted, taken, room)


def _give_name(item: ProposedColumn | ProposedChild, wanted: str, taken: dict[str, str], limit: int) -> None:
    """Name ``item`` ``wanted`` or, if that is taken, a free name with a suffix, FLAGGED; then take it."""
    item.name = _free_name(wanted, taken, limit)
    if item.name != wanted:
        item.flags.append(f"named {item.name}: {wanted} is {taken[wanted]}")
    taken[item.name] = f"the name of {_shown_path(item.path)}"


def _free_name(wanted: str, taken: dict[str, str], limit: int) -> str:
    """``wanted``, or if it is taken, cut to ``limit`` with the first free suffix ``_2``, ``_3``, ..."""
    name, number = wanted, 1
    while name in taken:
        number += 1
        suffix = f"_{number}"
        name = wanted[: limit - len(suffix)] + suffix
    return name


def default_table(collection: str, schema: str) -> str:
    """The collection's name as a table name, short enough for ``<schema>.<table>_rejects`` in staging."""
    return column_name((collection,))[: MAX_NAME_BYTES - len(f"{schema}.{REJECTS_SUFFIX}")]


def default_dag_id(collection: str) -> str:
    return f"mongo_{re.sub(r'[^A-Za-z0-9_.-]', '_', collection)}_to_postgres"


# --- evidence as text -------------------------------------------------------------------------------------


def _shown_path(path: tuple) -> str:
    """A path on one line: ``customer.address.city``, ``items[].sku``, ``"a.b"``."""
    shown = ""
    for key in path:
        if key is ELEMENT:
            shown += "[]"
        else:
            plain = re.fullmatch(r"[^\s.\[\]\"#,:]+", key) is not None
            shown += ("." if shown else "") + (key if plain else json.dumps(key, ensure_ascii=False))
    return shown or "the element"


def _by_count(seen: dict[str, Seen], names: Any = None) -> list[str]:
    """The types seen (or those of ``names``), the most frequent first."""
    return sorted(seen if names is None else names, key=lambda name: (-seen[name].count, name))


def _type_counts(seen: dict[str, Seen]) -> str:
    return ", ".join(f"{name} {seen[name].count:,}" for name in _by_count(seen))


def _missing(seen: dict[str, Seen], units: int) -> int:
    return units - sum(each.count for each in seen.values())


def _missing_or_null(seen: dict[str, Seen], units: int, unit: str) -> str:
    missing, null = _missing(seen, units), seen["null"].count if "null" in seen else 0
    if not missing and not null:
        return f"in all {units:,} {unit}, never null"
    return f"missing in {_share(missing, units)}, null in {_share(null, units)} of {units:,} {unit}"


def _share(part: int, whole: int) -> str:
    percent = 100 * part / whole
    return f"{part:,} ({'<0.1' if 0 < percent < 0.1 else f'{percent:.1f}'} %)"


def _in_contract_order(kinds: set[str]) -> tuple[str, ...]:
    return tuple(name for name in contract.BSON_TYPES if name in kinds)


def _date(value: DatetimeMS) -> str:
    try:
        return contract.timestamp(value)
    except contract.Violation:
        return f"{int(value):,} ms from 1970"


def _in_postgres_range(value: DatetimeMS) -> bool:
    return contract.FIRST_TIMESTAMP_MS <= int(value) < contract.END_TIMESTAMP_MS


# --- the file ---------------------------------------------------------------------------------------------


def render(proposal: Proposal, command: str) -> str:
    """The mapping file: a header for the person who reviews it, then the mapping with its evidence."""
    lines = [*_header(proposal, command), *_comment_lines([], proposal.flags, "")]
    lines += _yaml_lines(
        {
            "dag_id": proposal.dag_id,
            "description": f"{proposal.collection} (proposed from its data), MongoDB → PostgreSQL.",
            "source": {"database": proposal.database, "collection": proposal.collection},
            "target": {"schema": proposal.schema, "table": proposal.table},
        }
    )
    lines.append(
        '# A cron expression or preset ("30 2 * * *", "@daily") runs it on a schedule; null: when triggered.'
    )
    lines += _yaml_lines({"schedule": None})
    lines.append('# The whole document as Extended JSON in the column "document", beside the typed columns.')
    lines += _yaml_lines({"keep_document": True})
    items = [item for item in proposal.items if not isinstance(item, ProposedChild)]
    lines.append("columns:" if proposal.columns() else "columns: []")
    lines += [line for item in items for line in _item_lines(item, "  ")]
    if proposal.children():
        lines.append("children:")
        lines += [line for child in proposal.children() for line in _child_lines(child, "  ")]
    return "\n".join(lines) + "\n"


def _header(proposal: Proposal, command: str) -> list[str]:
    """Where the file comes from, what to do with it, and what the sample was."""
    taken_at = proposal.sampled.taken_at.strftime("%Y-%m-%d %H:%M UTC")
    paragraphs = [
        f"Review it, then commit it: the DAG {proposal.dag_id} appears once this file is in "
        "include/mappings/. Check each column's type, nullable and name against the evidence above it, "
        f"and decide each FLAGGED line ({proposal.flag_count()} in this file): the data could not.",
        f"The sample: {proposal.sampled.described()}. The server counted the BSON types ($type) at every "
        f"path of the {proposal.documents:,} documents read, following objects {MAX_DEPTH} levels deep and "
        f"the first {ARRAY_ELEMENTS} elements of each array (an element is shown as []). Missing and null "
        "are shares of those documents (of the elements, in a child table). The Decimal128 digits and the "
        f"subtypes of binaries up to {SMALL_BINARY_BYTES} bytes were worked out in Python from the values "
        "the server returned.",
    ]
    lines = [f"# PROPOSED from the data of {proposal.database}.{proposal.collection} on {taken_at} by"]
    lines.append(f"#   {command}")
    for paragraph in paragraphs:
        lines += [
            "#",
            *textwrap.wrap(paragraph, width=COMMENT_WIDTH, initial_indent="# ", subsequent_indent="# "),
        ]
    return lines


def _item_lines(item: ProposedColumn | Note, indent: str) -> list[str]:
    if isinstance(item, Note):
        return _comment_lines(item.lines, item.flags, indent)
    column = {
        "name": item.name,
        "path": list(item.path),
        "type": item.type,
        "accepts": list(item.accepts),
        "nullable": item.nullable,
        "on_violation": "reject",
    }
    return _comment_lines(item.evidence, item.flags, indent) + [
        indent + line for line in _yaml_list_item(column)
    ]


def _child_lines(child: ProposedChild, indent: str) -> list[str]:
    head = {
        "name": child.name,
        "path": list(child.path),
        "nullable": child.nullable,
        "on_violation": "reject",
    }
    lines = _comment_lines(child.evidence, child.flags, indent)
    lines += [indent + line for line in _yaml_list_item(head)]
    lines.append(f"{indent}  columns:")
    return lines + [line for item in child.items for line in _item_lines(item, indent + "    ")]


def _comment_lines(evidence: list[str], flags: list[str], indent: str) -> list[str]:
    """Comment lines of at most ``COMMENT_WIDTH`` characters; what goes on continues indented."""
    lines = [(f"{indent}# ", line) for line in evidence] + [(f"{indent}# FLAGGED: ", flag) for flag in flags]
    return [
        wrapped
        for start, text in lines
        for wrapped in textwrap.wrap(
            text,
            width=max(COMMENT_WIDTH, len(start) + 40),
            initial_indent=start,
            subsequent_indent=f"{indent}#   ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    ]


class _MappingDumper(yaml.SafeDumper):
    """YAML as the mappings are written by hand: objects as blocks, lists (paths, accepts) on one line."""


_MappingDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def _yaml_lines(data: Any) -> list[str]:
    """``data`` as YAML lines, every field name quoted as YAML needs."""
    text = yaml.dump(
        data,
        Dumper=_MappingDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=math.inf,
    )
    return text.splitlines()


def _yaml_list_item(data: dict) -> list[str]:
    """``data`` as an item of a YAML list: ``- name: ...``, its other keys beneath."""
    first, *rest = _yaml_lines(data)
    return ["- " + first, *("  " + line for line in rest)]


def check(text: str, proposal: Proposal) -> None:
    """Refuse a file that does not load with ``load_mapping``, or loads as anything but the proposal."""
    with tempfile.TemporaryDirectory(prefix="propose-") as scratch:
        written = Path(scratch) / f"{proposal.collection}.yaml"
        written.write_text(text)
        try:
            mapping = load_mapping(written)
        except MappingError as error:
            raise ProposeError(
                f"the proposed mapping does not load, so it was not written:\n{error}"
            ) from None
    loaded = (
        _shape(mapping.columns),
        [(child.name, child.path, child.nullable, _shape(child.columns)) for child in mapping.children],
    )
    meant = (
        _shape(proposal.columns()),
        [(child.name, child.path, child.nullable, _shape(child.columns())) for child in proposal.children()],
    )
    if loaded != meant:
        raise ProposeError(
            "the proposed mapping loads as another mapping than proposed, so it was not written"
        )


def _shape(columns: Any) -> list[tuple]:
    """What ``check`` compares of each column, of the file's and of the proposal's alike."""
    return [(column.name, column.path, column.type, column.accepts, column.nullable) for column in columns]


def clashes(out: Path, dag_id: str, schema: str, table: str) -> list[str]:
    """The other mappings beside ``out`` that have its DAG id or write its table."""
    found = []
    for other in sorted(out.parent.glob("*.yaml")):
        if other.resolve() == out.resolve():
            continue
        try:
            data = yaml.safe_load(other.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(data, dict):
            continue
        target = data.get("target") or {}
        if data.get("dag_id") == dag_id:
            found.append(f"{other} has the dag_id {dag_id} (choose another with --dag-id)")
        if (target.get("schema", config.TARGET_SCHEMA), target.get("table")) == (schema, table):
            found.append(f"{other} writes the table {schema}.{table} (choose another with --table)")
    return found


def write(text: str, out: Path, force: bool) -> None:
    """Write the file whole, never half of it; replace a file that is there only when ``force``."""
    with tempfile.NamedTemporaryFile("w", dir=out.parent, prefix=f".{out.name}.", delete=False) as scratch:
        scratch.write(text)
    os.chmod(scratch.name, 0o644)  # readable by Airflow, as a file a person writes is
    try:
        if force:
            os.replace(scratch.name, out)
        else:
            os.link(scratch.name, out)  # refuses a file that appeared meanwhile
    except FileExistsError:
        raise ProposeError(f"{out} exists: pass --force to replace it") from None
    finally:
        Path(scratch.name).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
