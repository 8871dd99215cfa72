"""Generated mappings over generated documents: every document lands with exact values, or is set aside
with the right reason.

Hypothesis draws a mapping (typed columns at nested paths, of any type of the
contract, accepting any subset of what the type allows, nullable or not, a
child table for an array, the document kept or not) and documents whose fields
hold values of every BSON type, edge values among them. The documents go
through the real page path (``copy_page``) into real staging tables. The
reference below decides, without the code under test, what each document must
become: its columns' values and child rows, or a reject naming one of the
columns it violates (or the document as a whole). What PostgreSQL gives back
is compared with the BSON values by ``tests.bson_equality.same``.
"""

from decimal import Decimal, localcontext

import bson
from bson.binary import Binary
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.timestamp import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mongo_migration.documents import CODEC_OPTIONS, Conversion
from mongo_migration.mapping import Mapping
from mongo_migration.page_copy import copy_page
from mongo_migration.pages import Page
from mongo_migration.target import Tables
from tests.bson_equality import same
from tests.bson_strategies import dates, decimals, doubles, must_be_set_aside, reference_key, scalars, text
from tests.staging import OUTSIDE_A_RUN, reset_staging, staged

# The contract as docs/mappings.md documents it: each column type and the BSON types it may accept.
ALLOWED = {
    "integer": ["int"],
    "bigint": ["int", "long", "timestamp"],
    "numeric": ["int", "long", "decimal"],
    "numeric(6,2)": ["int", "long", "decimal"],
    "numeric(38,18)": ["int", "long", "decimal"],
    "double precision": ["double", "int"],
    "boolean": ["bool"],
    "timestamptz": ["date"],
    "text": ["string", "objectId"],
    "bytea": ["binData", "objectId"],
    "uuid": ["uuid"],
    "jsonb": ["object", "array", "string", "int", "long", "double", "decimal", "date", "binData"],
}
FIRST_MS, END_MS = -210_866_803_200_000, 9_224_318_016_000_000  # PostgreSQL's timestamptz range
MISSING = object()


def bson_type_of(value) -> str:
    """MongoDB's name of a decoded value's BSON type (uuid: binary of subtype 4)."""
    names = {
        bool: "bool",
        int: "int",
        float: "double",
        str: "string",
        dict: "object",
        list: "array",
        bytes: "binData",
        DatetimeMS: "date",
        Timestamp: "timestamp",
        type(None): "null",
    }
    kind = type(value)
    if kind is Binary:
        return "uuid" if value.subtype == 4 else "binData"
    if kind.__name__ in ("Int64", "Decimal128", "ObjectId", "datetime"):
        return {"Int64": "long", "Decimal128": "decimal", "ObjectId": "objectId", "datetime": "date"}[
            kind.__name__
        ]
    return names.get(kind, kind.__name__)


@st.composite
def columns(draw, paths, prefix: str):
    chosen = draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3, unique_by=tuple))
    result = []
    for number, path in enumerate(chosen):
        pg_type = draw(st.sampled_from(sorted(ALLOWED)))
        accepts = draw(st.lists(st.sampled_from(ALLOWED[pg_type]), min_size=1, unique=True))
        nullable = draw(st.booleans())
        result.append(
            {
                "name": f"{prefix}{number}",
                "path": path,
                "type": pg_type,
                "accepts": accepts,
                "nullable": nullable,
            }
        )
    return result


@st.composite
def mappings(draw) -> Mapping:
    children = []
    if draw(st.booleans()):
        child_columns = draw(columns([[], ["k"]], "e"))
        children = [
            {"name": "arr", "path": ["arr"], "nullable": draw(st.booleans()), "columns": child_columns}
        ]
    return Mapping.model_validate(
        {
            "dag_id": "generated",
            "source": {"database": "d", "collection": "c"},
            "target": {"table": "t"},
            "keep_document": draw(st.booleans()),
            "columns": draw(columns([["a"], ["b"], ["n", "x"], ["n", "y"]], "c")),
            "children": children,
        }
    )


# Values of each BSON type a column may accept, the edges that break exact copies among them.
OF_TYPE = {
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1).map(Int64),
    "double": doubles,
    "decimal": decimals
    | st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-10_000, max_value=10_000).map(
        Decimal128
    ),
    "string": text,
    "objectId": st.binary(min_size=12, max_size=12).map(ObjectId),
    "binData": st.binary(max_size=4) | st.sampled_from([Binary(b"\x01", 5), Binary(b"", 0x80)]),
    "uuid": st.binary(min_size=16, max_size=16).map(lambda data: Binary(data, 4))
    | st.just(Binary(b"\x01", 4)),
    "bool": st.booleans(),
    "date": dates
    | st.sampled_from(
        [DatetimeMS(FIRST_MS), DatetimeMS(FIRST_MS - 1), DatetimeMS(END_MS - 1), DatetimeMS(END_MS)]
    ),
    "timestamp": st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    "object": st.dictionaries(st.sampled_from(["k", "z", "$k"]), scalars, max_size=2),
    "array": st.lists(scalars, max_size=2),
}


@st.composite
def documents(draw, mapping: Mapping) -> list[dict]:
    """Documents whose fields mostly fit the mapping's columns (so that many land) and otherwise hold
    anything, or nothing."""

    def fill(document: dict, columns) -> dict:
        for column in columns:
            if draw(st.integers(0, 9)) < 8:
                value = draw(OF_TYPE[draw(st.sampled_from(column.accepts))])
            else:
                value = draw(st.one_of(st.just(MISSING), st.none(), scalars))
            if not column.path:
                return value if value is not MISSING else None
            *parents, last = column.path
            place = document
            for key in parents:
                place = place.setdefault(key, {})
            if value is not MISSING:
                place[last] = value
        return document

    batch = []
    for number in range(draw(st.integers(1, 6))):
        document = fill({"_id": number}, mapping.columns)
        for child in mapping.children:
            if draw(st.integers(0, 9)) < 8:
                elements = draw(st.integers(0, 3))
                document["arr"] = [fill({}, child.columns) for _ in range(elements)]
            else:
                document["arr"] = draw(st.one_of(st.none(), scalars))
        if draw(st.integers(0, 9)) == 0:
            document["other"] = draw(scalars)  # a field without a column, maybe with NUL
        if draw(st.integers(0, 9)) == 0:
            document["n"] = draw(scalars)  # where columns look for fields inside it
        if mapping.children and type(document["arr"]) is list and document["arr"] and draw(st.booleans()):
            document["arr"][0] = draw(scalars)  # an element that may be no object
        batch.append(bson.decode(bson.encode(document), CODEC_OPTIONS))
    return batch


NOT_AN_OBJECT = object()  # a field on the path holds a value that is neither an object nor null


def value_at(document, path):
    for key in path:
        if document is MISSING or document is None:
            return MISSING
        if type(document) is not dict:
            return NOT_AN_OBJECT
        document = document.get(key, MISSING)
    return document


def violates(column: dict, value) -> bool:
    """Whether a value breaks its column: the documented contract, written again."""
    if value is NOT_AN_OBJECT:
        return True
    if value is MISSING or value is None:
        return not column["nullable"]
    if bson_type_of(value) not in column["accepts"]:
        return True
    pg_type = column["type"]
    if pg_type in ("text", "jsonb") and must_be_set_aside({"v": value}):
        return True
    if pg_type == "timestamptz" and type(value) is DatetimeMS:
        return not FIRST_MS <= int(value) < END_MS
    if pg_type == "bytea" and type(value) is Binary:
        return True  # bytea keeps no subtype
    if pg_type == "uuid":
        return len(value) != 16
    if pg_type == "bigint" and type(value) is Timestamp:
        return value.time >= 2**31
    if pg_type.startswith("numeric(") and bson_type_of(value) in ("int", "long", "decimal"):
        precision, scale = map(int, pg_type[8:-1].split(","))
        number = Decimal(str(value)) if bson_type_of(value) == "decimal" else Decimal(int(value))
        if number.is_nan():
            return False
        with localcontext(prec=200):  # exact for these numbers: nothing is rounded here
            return (
                not number.is_finite()
                or abs(number) >= Decimal(10) ** (precision - scale)
                or (number.quantize(Decimal(1).scaleb(-scale)) != number)
            )
    return False


def expected(mapping: Mapping, document: dict) -> tuple[set, dict, list]:
    """What the document must become: the columns it violates (None: the document as a whole), else its
    columns' values and child rows."""
    shape = mapping.model_dump()
    broken = {
        column["name"] for column in shape["columns"] if violates(column, value_at(document, column["path"]))
    }
    row = {column["name"]: value_at(document, column["path"]) for column in shape["columns"]}
    children = []
    for child in shape["children"]:
        array = value_at(document, child["path"])
        if type(array) is not list:
            if not ((array is MISSING or array is None) and child["nullable"]):
                broken.add(child["name"])
            continue
        for index, element in enumerate(array):
            for column in child["columns"]:
                if violates(column, value_at(element, column["path"])):
                    broken.add(f"{child['name']}.{column['name']}")
            children.append((index, {c["name"]: value_at(element, c["path"]) for c in child["columns"]}))
    if mapping.keep_document and must_be_set_aside(document):
        broken.add(None)
    return broken, row, children


def read(pg_conn, relation: str, typed: list) -> list[dict]:
    """A staging table's rows, dates as milliseconds since 1970 and jsonb as text, as ``same`` compares."""
    parts = ["_id"] + (["_index"] if relation.endswith("_arr") else [])
    for column in typed:
        name = column.name
        if column.type == "timestamptz":
            parts.append(f"(extract(epoch FROM {name}) * 1000)::numeric AS {name}")
        else:
            parts.append(f"{name}::text AS {name}" if column.type == "jsonb" else name)
    cursor = pg_conn.execute(f"SELECT {', '.join(parts)} FROM {staged(relation)}")
    names = [description.name for description in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mappings(), st.data())
def test_every_document_lands_with_exact_values_or_is_set_aside_naming_a_column_it_breaks(
    pg_conn, target_table, mapping, data
):
    batch = data.draw(documents(mapping))
    tables = reset_staging(pg_conn, Tables("public", target_table, mapping))
    page = Page(0, 0, len(batch), True, len(batch))

    copy_page([b"".join(map(bson.encode, batch))], pg_conn, tables, Conversion(mapping), OUTSIDE_A_RUN, page)

    rows = {row["_id"]: row for row in read(pg_conn, target_table, mapping.columns)}
    child_rows = read(pg_conn, f"{target_table}_arr", mapping.children[0].columns) if mapping.children else []
    rejects = dict(
        pg_conn.execute(f"SELECT _id, column_name FROM {staged(target_table + '_rejects')}").fetchall()
    )
    for document in batch:
        key = reference_key(document["_id"])
        broken, row, children = expected(mapping, document)
        if broken:
            assert key in rejects and key not in rows, (document, broken)
            assert rejects[key] in broken, (document, broken, rejects[key])
            continue
        assert key in rows and key not in rejects, document
        for column in mapping.columns:
            value = row[column.name]
            back = rows[key][column.name]
            missing = value is MISSING or value is None
            assert back is None if missing else same(column.type, back, value), (column, value, back)
        landed = sorted((child["_index"], child) for child in child_rows if child["_id"] == key)
        assert [index for index, _ in landed] == [index for index, _ in children]
        for (_, back), (_, values_) in zip(landed, children, strict=True):
            for column in mapping.children[0].columns:
                value, read_back = values_[column.name], back[column.name]
                missing = value is MISSING or value is None
                assert read_back is None if missing else same(column.type, read_back, value), (column, value)
