"""The evidence a proposal writes above each column: the types and their counts, the values' ranges,
digits and lengths, what is missing or NULL, and the flags of a document's shape, as text a person
reads."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from bson.datetime_ms import DatetimeMS

from mongo_migration import contract
from mongo_migration.type_survey import ARRAY_ELEMENTS, ELEMENT, MAX_DEPTH, SMALL_BINARY_BYTES, Observed, Seen

MAX_OBJECT_FIELDS = 100  # a nested object with more distinct field names is a map: jsonb keeps it whole


def kept_whole(observed: Observed, path: tuple) -> tuple[str, bool] | None:
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


def type_evidence(
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
    if "object" in seen and (whole := kept_whole(observed, path)):
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
        lines.append(f"elements (the first {ARRAY_ELEMENTS} of each array): {type_counts(elements)}")
    elif arrays.high:
        flags.append(f"arrays nested deeper than {MAX_DEPTH} levels are not followed: jsonb keeps them whole")
    if "object" not in elements:
        return lines
    if set(elements) != {"object"}:
        others = ", ".join(sorted(set(elements) - {"object"}))
        flags.append(f"the elements mix objects with {others}: no child table, jsonb keeps the array whole")
    elif in_element:
        flags.append("an array of objects inside an array's element: child tables do not nest, so jsonb")
    elif whole := kept_whole(observed, element):
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


def numeric_holding(seen: dict[str, Seen]) -> str:
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


def document_flags(observed: Observed) -> list[str]:
    """What sets a document aside wherever it is: the column "document" holds the whole document."""
    flags = []
    dollars = [
        path
        for path in observed.seen
        if path and path[-1] is not ELEMENT and path[-1].startswith("$") and not _in_dbref(observed, path)
    ]
    if dollars:
        flags.append(
            f"field names starting with $ at {', '.join(map(shown_path, dollars))}: the document column "
            "cannot hold them (Extended JSON would read them as types), so those documents will be rejects"
        )
    nul = [
        f"{shown_path(path)} ({types['string'].nul:,})"
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


# --- evidence as text -------------------------------------------------------------------------------------


def shown_path(path: tuple) -> str:
    """A path on one line: ``customer.address.city``, ``items[].sku``, ``"a.b"``."""
    shown = ""
    for key in path:
        if key is ELEMENT:
            shown += "[]"
        else:
            plain = re.fullmatch(r"[^\s.\[\]\"#,:]+", key) is not None
            shown += ("." if shown else "") + (key if plain else json.dumps(key, ensure_ascii=False))
    return shown or "the element"


def by_count(seen: dict[str, Seen], names: Any = None) -> list[str]:
    """The types seen (or those of ``names``), the most frequent first."""
    return sorted(seen if names is None else names, key=lambda name: (-seen[name].count, name))


def type_counts(seen: dict[str, Seen]) -> str:
    return ", ".join(f"{name} {seen[name].count:,}" for name in by_count(seen))


def missing_units(seen: dict[str, Seen], units: int) -> int:
    return units - sum(each.count for each in seen.values())


def missing_or_null(seen: dict[str, Seen], units: int, unit: str) -> str:
    missing, null = missing_units(seen, units), seen["null"].count if "null" in seen else 0
    if not missing and not null:
        return f"in all {units:,} {unit}, never null"
    return f"missing in {share(missing, units)}, null in {share(null, units)} of {units:,} {unit}"


def share(part: int, whole: int) -> str:
    percent = 100 * part / whole
    return f"{part:,} ({'<0.1' if 0 < percent < 0.1 else f'{percent:.1f}'} %)"


def in_contract_order(kinds: set[str]) -> tuple[str, ...]:
    return tuple(name for name in contract.BSON_TYPES if name in kinds)


def _date(value: DatetimeMS) -> str:
    try:
        return contract.timestamp(value)
    except contract.Violation:
        return f"{int(value):,} ms from 1970"


def _in_postgres_range(value: DatetimeMS) -> bool:
    return contract.FIRST_TIMESTAMP_MS <= int(value) < contract.END_TIMESTAMP_MS
