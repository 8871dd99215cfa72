"""The proposal: what the type survey saw at each path becomes a typed column, a child table for an
array of objects, or jsonb, each with its evidence and the choices a person must make FLAGGED, named as
the mapping's rules allow (``mapping.py``)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from mongo_migration import contract
from mongo_migration.mapping import (
    MAX_NAME_BYTES,
    NAME,
    REJECTS_SUFFIX,
    RESERVED_CHILD_COLUMNS,
    RESERVED_COLUMNS,
)
from mongo_migration.proposal_evidence import (
    by_count,
    document_flags,
    in_contract_order,
    kept_whole,
    missing_or_null,
    missing_units,
    numeric_holding,
    share,
    shown_path,
    type_counts,
    type_evidence,
)
from mongo_migration.type_survey import ARRAY_ELEMENTS, ELEMENT, SMALL_BINARY_BYTES, Observed, Sample, Seen

MINORITY_SHARE = 0.05  # a type this rare beside another may be an old client's: propose its coercion


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
        document_flags(observed),
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
        evidence = [f"{shown_path(path)}: {type_counts(seen)}; {missing_or_null(seen, units, unit)}"]
        if key == "":
            items.append(Note([*evidence, "an empty field name cannot be in a path: it stays in document"]))
        elif not kinds:
            items.append(Note([*evidence, "only null in the sample: no column; it stays in document"]))
        elif kinds == {"object"} and not kept_whole(observed, row + path):
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
    return "null" in seen or missing_units(seen, units) > 0


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
        f"the objects at {shown_path(path)} vary in their keys ({len(names)} field names, none in more than "
        f"{share(most, objects)} of them): a free-form object? Its fields become the columns below, mostly "
        f"NULL; to keep it whole instead, write one column in their place: "
        f"{{name: {column_name(path)}, path: [{', '.join(path)}], type: jsonb, accepts: [object]}}"
    ]


def _child(
    observed: Observed, path: tuple, seen: dict[str, Seen], units: int, evidence: list[str]
) -> ProposedChild | None:
    """A child table for an array whose elements are all objects; None when the array stays jsonb."""
    element = (*path, ELEMENT)
    elements = observed.at(element)
    if set(elements) != {"object"} or kept_whole(observed, element):
        return None
    items = _items(observed, element, (), elements["object"].count, "elements", in_element=True)
    if not any(isinstance(item, ProposedColumn) for item in items):
        return None
    lengths = seen["array"]
    lines = [
        *evidence,
        f"array lengths: {lengths.low:,} to {lengths.high:,}; elements (the first {ARRAY_ELEMENTS} of each): "
        f"{type_counts(elements)}",
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
            f"mixed types {', '.join(by_count(seen, kinds))}: no column type holds them all exactly "
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
    lines += type_evidence(observed, row + path, seen, in_element, pg_type, flags)
    return ProposedColumn(path, pg_type, in_contract_order(kinds), _nullable(seen, units), lines, flags)


def _coercion_offer(seen: dict[str, Seen], kinds: set[str]) -> str:
    """Where the other types are a minority (``MINORITY_SHARE``) that the main type's column can take by
    declared coercions: the lines to write, for a person who knows they are the same data."""
    total = sum(seen[kind].count for kind in kinds)
    minority = {kind for kind in kinds if seen[kind].count <= MINORITY_SHARE * total}
    main = kinds - minority
    pg_type = _natural_type(main) if main and minority else "jsonb"
    if pg_type == "numeric" and "decimal" in seen:
        pg_type = numeric_holding(seen)  # double_rounded rounds to a scale: the decimals' own
    coerce = {}
    for kind in in_contract_order(minority):
        fitting = (name for name in contract.COERCIONS if not contract.coercion_refusal(kind, name, pg_type))
        if name := next(fitting, None):
            coerce[kind] = name
    if pg_type == "jsonb" or set(coerce) != minority:
        return ""
    declared = ", ".join(f"{kind}: {name}" for kind, name in coerce.items())
    return (
        f"; or, if the {', '.join(coerce)} values are the same data written otherwise, declare "
        f"type: {pg_type}, accepts: [{', '.join(in_contract_order(main))}], coerce: {{{declared}}} "
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
        for kind in in_contract_order(kinds)
        for other in in_contract_order(kinds)
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
    taken[item.name] = f"the name of {shown_path(item.path)}"


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
