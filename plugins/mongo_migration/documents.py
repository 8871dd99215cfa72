"""Turning MongoDB documents into the rows of a mapping's tables, as COPY text.

A document becomes one row of the target table: its ``_id`` key, a value per
column of the mapping (taken at the column's path and written by the type
contract, ``contract.py``), the whole document as Extended JSON when the
mapping keeps it, and the page that wrote it; and a row per element of each
array the mapping makes a child table, keyed by the ``_id`` and the index.

A document that cannot be written faithfully is not dropped: it becomes a
``Reject`` with its raw BSON and the reason, for the rejects table. That is a
document that does not decode, holds the NUL character PostgreSQL cannot
store, has a field name starting with ``$``, or violates the mapping: a field
of a type its column does not accept, a missing or null field whose column is
not nullable, a value its column cannot hold exactly. A column whose mapping
says ``on_violation: fail`` fails the run instead (``ViolationFailsRun``).

This is the hot path of a migration: a page arrives as raw BSON batches and
leaves as COPY text, with as little Python per document as the profile allowed
(see docs/performance.md).
"""

from __future__ import annotations

import gc
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bson
from bson import json_util
from bson.binary import Binary
from bson.code import Code
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.errors import InvalidBSON
from bson.objectid import ObjectId

from mongo_migration import contract
from mongo_migration.contract import NULL, Violation
from mongo_migration.mapping import Child, Column, Mapping

# The version of the rows' form: raise it with any change to this module or to contract.py that
# writes a value differently. A live table published by another version is copied again in full
# (tests/plugins/test_conversion_version.py fails on any change to their code until it is looked at).
CONVERSION_VERSION = 2
# Naive datetimes, which are UTC (decoding them timezone-aware costs a third
# more), and dates beyond Python's years 1-9999 as DatetimeMS, not an error.
CODEC_OPTIONS = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
_LENIENT_CODEC_OPTIONS = CODEC_OPTIONS.with_options(unicode_decode_error_handler="backslashreplace")


class ViolationFailsRun(Exception):
    """A violation of a column whose mapping says ``on_violation: fail``; the message says which."""


@dataclass(frozen=True)
class Reject:
    """A document set aside, with why: for a violation, the column, the path, the types expected and found."""

    key: str | None  # the _id key, when the _id could be read
    reason: str
    raw: bytes  # the document's BSON, as the server sent it
    column: str | None = None  # a column of the table, or <child>.<column> of a child table
    path: tuple[str, ...] | None = None
    expected: str | None = None  # the BSON types the column accepts
    actual: str | None = None  # the BSON type found ("missing" when there is none)

    def row(self, page: int) -> tuple:
        """The row of the rejects table, in the order of ``REJECT_COLUMNS``."""
        path = list(self.path) if self.path is not None else None
        return (self.key, self.column, path, self.expected, self.actual, self.reason, self.raw, page)


REJECT_COLUMNS = ("_id", "column_name", "path", "expected", "actual", "reason", "document", "page")


@dataclass
class Batch:
    rows: bytes  # COPY text of the target table, one line per written document
    documents: int  # documents read: written + rejected
    rejects: list[Reject]
    children: dict[str, bytes] = field(default_factory=dict)  # COPY text of each child table, by child name


class _Missing:
    """The value of a path the document does not have."""

    __slots__ = ()


MISSING = _Missing()


class _NotAnObject:
    """What a path meets where a field along it holds another value than an object (a string where the
    path goes on into its fields): a violation of the column, never NULL."""

    __slots__ = ("depth", "value")

    def __init__(self, value: Any, depth: int):
        self.value = value  # the value found instead of an object
        self.depth = depth  # how many field names of the path lead to it


class _ColumnViolation(Exception):
    def __init__(self, column: Column, name: str, path: tuple, value: Any, reason: str):
        self.column, self.name, self.path, self.value, self.reason = column, name, path, value, reason


class Conversion:
    """How a mapping turns raw BSON batches into rows, rejects and child rows (``rows``)."""

    def __init__(self, mapping: Mapping):
        self.mapping = mapping
        self.columns = table_columns(mapping)
        # How often each nullable column's path was absent (or under a null) in the documents converted:
        # a column absent everywhere is a path typed wrong, far more often than a field nobody has.
        self.absent: Counter[str] = Counter()
        self.coerced: Counter[str] = Counter()  # values each column took by its declared coercion
        counts = (self.absent, self.coerced)
        self._cells = [_cell(column, column.name, counts) for column in mapping.columns]
        self._children = [(child, _child_rows(child, counts)) for child in mapping.children]
        self._keep_document = mapping.keep_document

    def rows(self, raw_batch: bytes, page: int) -> Batch:
        """A batch of raw BSON documents of ``page`` as COPY text rows, and the documents set aside.

        The cyclic garbage collector is paused meanwhile: decoding creates tens of
        thousands of containers, none in a cycle, and in a task process collecting
        them would walk Airflow's whole heap again and again (a third of the time).
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._rows(raw_batch, page)
        finally:
            if collecting:
                gc.enable()

    def _rows(self, raw_batch: bytes, page: int) -> Batch:
        raw_documents = None  # split only when a document is set aside
        try:
            decoded: list = bson.decode_all(raw_batch, CODEC_OPTIONS)
        except InvalidBSON:  # one or more documents do not decode: take them one by one
            raw_documents = split_documents(raw_batch)
            decoded = [_decode_or_error(raw) for raw in raw_documents]
        end_of_row = f"\t{page}\n"
        lines, rejects = [], []
        children = {child.name: [] for child, _ in self._children}
        for number, document in enumerate(decoded):
            key = None
            try:
                if isinstance(document, InvalidBSON):
                    key = readable_id_key(raw_documents[number])
                    raise Violation(f"does not decode as BSON: {document}")
                key = id_key(document["_id"])
                line, child_lines = self._row(document, key)
            except Violation as error:
                raw_documents = raw_documents or split_documents(raw_batch)
                rejects.append(Reject(key, str(error), raw_documents[number]))
                continue
            except _ColumnViolation as violation:
                raw_documents = raw_documents or split_documents(raw_batch)
                rejects.append(self._reject(violation, key, raw_documents[number]))
                continue
            lines.append(line + end_of_row)
            for name, rows in child_lines:
                children[name].extend(row + end_of_row for row in rows)
        return Batch(
            rows="".join(lines).encode(),
            documents=len(decoded),
            rejects=rejects,
            children={name: "".join(rows).encode() for name, rows in children.items()},
        )

    def _row(self, document: dict, key: str) -> tuple[str, list[tuple[str, list[str]]]]:
        """The document's row (without its page) and its child tables' rows."""
        values = [contract.text(key)]
        values += [cell(document) for cell in self._cells]
        child_lines = [(child.name, child_rows(document, key)) for child, child_rows in self._children]
        if self._keep_document:
            values.append(contract.jsonb(document))
        return "\t".join(values), child_lines

    def _reject(self, violation: _ColumnViolation, key: str | None, raw: bytes) -> Reject:
        actual = "missing" if violation.value is MISSING else contract.bson_type(violation.value)
        column = violation.column
        reason = f"{violation.name} ({column.type}, at {_dotted(violation.path)}): {violation.reason}"
        if column.on_violation == "fail":
            raise ViolationFailsRun(
                f"document _id {key} violates the mapping {self.mapping.file.name}, whose column says "
                f"on_violation: fail: {reason}"
            )
        expected = ", ".join((*column.accepts, *column.coerce))
        return Reject(key, reason, raw, violation.name, violation.path, expected, actual)


def table_columns(mapping: Mapping) -> tuple[str, ...]:
    """The target table's columns in COPY order: the key, the mapping's columns, the document, the page."""
    document = ("document",) if mapping.keep_document else ()
    return ("_id", *(column.name for column in mapping.columns), *document, "page")


def child_columns(child: Child) -> tuple[str, ...]:
    """A child table's columns in COPY order: the parent's key, the index, the child's columns, the page."""
    return ("_id", "_index", *(column.name for column in child.columns), "page")


def _getter(path: tuple[str, ...]) -> Callable[[Any], Any]:
    """The value at ``path`` below a document or an element: MISSING where a field on the way is absent
    or null, ``_NotAnObject`` where it holds another value."""
    if not path:
        return lambda value: value

    def get(value: Any) -> Any:
        for depth, key in enumerate(path):
            if type(value) is not dict:
                return MISSING if value is MISSING or value is None else _NotAnObject(value, depth)
            value = value.get(key, MISSING)
        return value

    if len(path) == 1:  # the common case, without the loop
        (key,) = path
        return lambda document: document.get(key, MISSING) if type(document) is dict else get(document)
    return get


def _writers_by_python_type(column: Column) -> dict[type, Callable[[Any], str]]:
    """What writes a value of each Python type the column accepts (missing or null: NULL if nullable)."""
    holds = contract.writers(column.type)
    by_type: dict[type, Callable[[Any], str]] = {}
    for name in column.accepts:
        for python_type in contract.PYTHON_TYPES[name]:
            by_type[python_type] = holds[name]
    # Binary and Code stand for two BSON types each: the value decides which.
    if Binary in by_type:
        by_type[Binary] = _by_subtype(
            {name: holds[name] for name in ("uuid", "binData") if name in column.accepts}
        )
    if Code in by_type:
        by_type[Code] = _by_scope({name: holds[name] for name in column.accepts if name in holds})
    if column.nullable:
        by_type[type(None)] = by_type[_Missing] = _null
    return by_type


def _by_subtype(holds: dict) -> Callable[[Binary], str]:
    def write(value: Binary) -> str:
        name = "uuid" if value.subtype == 4 else "binData"
        if name not in holds:
            raise Violation(
                f"has the BSON type {contract.bson_type(value)}, which the column does not accept"
            )
        return holds[name](value)

    return write


def _by_scope(holds: dict) -> Callable[[Code], str]:
    def write(value: Code) -> str:
        name = contract.bson_type(value)
        if name not in holds:
            raise Violation(f"has the BSON type {name}, which the column does not accept")
        return holds[name](value)

    return write


def _null(value: Any) -> str:
    return NULL


def _cell(
    column: Column, name: str, counts: tuple[Counter, Counter], prefix: tuple = ()
) -> Callable[[Any], str]:
    """A column's COPY text from a document (or an array element), or a ``_ColumnViolation``; counted by
    ``name``: a missing value of a nullable column (absent), a value converted by a coercion (coerced)."""
    absent, coerced = counts
    get = _getter(column.path)
    by_type = _writers_by_python_type(column)
    for bson_name, coercion in column.coerce.items():
        write = _counted(contract.coercion_writer(coercion, column.type), coerced, name)
        by_type.update(dict.fromkeys(contract.PYTHON_TYPES[bson_name], write))
    path = prefix + column.path
    if _Missing in by_type:

        def missing(value: _Missing) -> str:
            absent[name] += 1
            return NULL

        by_type[_Missing] = missing

    def cell(document: Any) -> str:
        value = get(document)
        write = by_type.get(type(value))
        if write is None:
            if type(value) is _NotAnObject:
                where = path[: len(prefix) + value.depth]
                field = column.path[value.depth]
                problem = (
                    f"holds the BSON type {contract.bson_type(value.value)}, not an object with {field!r}"
                )
                raise _ColumnViolation(column, name, where, value.value, problem)
            raise _ColumnViolation(column, name, path, value, _type_problem(column, value))
        try:
            return write(value)
        except Violation as error:
            raise _ColumnViolation(column, name, path, value, str(error)) from None

    return cell


def _counted(write: Callable[[Any], str], counter: Counter, name: str) -> Callable[[Any], str]:
    def write_counted(value: Any) -> str:
        text = write(value)
        counter[name] += 1
        return text

    return write_counted


def _type_problem(column: Column, value: Any) -> str:
    if value is MISSING or value is None:
        what = "is missing" if value is MISSING else "is null"
        return f"{what} and the column is not nullable"
    accepted = (*column.accepts, *(f"{name} by {coercion}" for name, coercion in column.coerce.items()))
    return f"has the BSON type {contract.bson_type(value)}; the column accepts {', '.join(accepted)}"


def _child_rows(child: Child, counts: tuple[Counter, Counter]) -> Callable[[dict, str], list[str]]:
    """A child table's rows of a document (without their page): one per element of its array."""
    get = _getter(child.path)
    array_column = Column(
        name=child.name, path=child.path, type="jsonb", accepts=("array",), on_violation=child.on_violation
    )
    cells = [
        (column, _cell(column, f"{child.name}.{column.name}", counts, (*child.path, "[]")))
        for column in child.columns
    ]

    def rows(document: dict, key: str) -> list[str]:
        array = get(document)
        if type(array) is not list:
            if (array is MISSING or array is None) and child.nullable:
                return []
            problem = _type_problem(array_column, array)
            raise _ColumnViolation(array_column, child.name, child.path, array, problem)
        parent = contract.text(key)
        lines = []
        for index, element in enumerate(array):
            try:
                values = [cell(element) for _, cell in cells]
            except _ColumnViolation as violation:  # name the element's index in the path
                index_path = (*child.path, str(index), *violation.path[len(child.path) + 1 :])
                raise _ColumnViolation(
                    violation.column, violation.name, index_path, violation.value, violation.reason
                ) from None
            lines.append("\t".join((parent, str(index), *values)))
        return lines

    return rows


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path) or "the element"


def _decode_or_error(raw: bytes) -> dict | InvalidBSON:
    try:
        return bson.decode(raw, CODEC_OPTIONS)
    except InvalidBSON as error:
        return error


def split_documents(raw_batch: bytes) -> list[bytes]:
    """The raw BSON documents of a batch, each as the server sent it."""
    documents, offset = [], 0
    while offset < len(raw_batch):
        size = int.from_bytes(raw_batch[offset : offset + 4], "little")
        documents.append(raw_batch[offset : offset + size])
        offset += size
    return documents


def last_id(raw_batch: bytes):
    """The ``_id`` of the last document of a raw batch, as it decodes leniently."""
    last = split_documents(raw_batch)[-1]
    return bson.decode(last, _LENIENT_CODEC_OPTIONS)["_id"]


def readable_id_key(raw: bytes) -> str | None:
    """The _id key of a document that does not decode as it is, reading broken text leniently."""
    try:
        return id_key(bson.decode(raw, _LENIENT_CODEC_OPTIONS)["_id"])
    except (InvalidBSON, KeyError):
        return None


def id_key(value: Any) -> str:
    """The target's primary key for an ``_id``: an ObjectId's hex, else canonical Extended JSON.

    Both keep the order of ObjectIds (fixed-length lowercase hex), and the two
    forms never collide (canonical JSON never looks like 24 hex digits).
    """
    if type(value) is ObjectId:
        return str(value)
    return json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS)


def id_value(key: str) -> Any:
    """The ``_id`` an ``id_key`` was made from."""
    if _OBJECT_ID_KEY.fullmatch(key):  # canonical JSON is never 24 hex digits
        return ObjectId(key)
    return json_util.loads(key, json_options=_ID_JSON_OPTIONS)


_OBJECT_ID_KEY = re.compile("[0-9a-f]{24}")
_ID_JSON_OPTIONS = json_util.CANONICAL_JSON_OPTIONS.with_options(
    datetime_conversion=DatetimeConversion.DATETIME_AUTO
)


def id_keys(raw_batch: bytes) -> list[str]:
    """The ``id_key`` of each document of a raw batch (an ``_id`` that does not decode is read leniently)."""
    try:
        return [id_key(document["_id"]) for document in bson.decode_all(raw_batch, CODEC_OPTIONS)]
    except InvalidBSON:
        return [readable_id_key(raw) or "" for raw in split_documents(raw_batch)]
