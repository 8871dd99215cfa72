"""Proposing a mapping from a collection's data (`python -m mongo_migration.propose`), on the test server."""

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument

from mongo_migration.documents import Conversion
from mongo_migration.mapping import Column, Mapping, load_mapping
from mongo_migration.proposal import propose
from mongo_migration.proposal_file import ProposeError, check, render
from mongo_migration.propose import main
from mongo_migration.type_survey import Sample, observe, sample

pytestmark = pytest.mark.slow  # each proposal reads its collection for a minute

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = 3000
SAMPLE = 1000  # a third of the collection: the proposal reads a sample, not every document
SLICE = SAMPLE // 20  # the documents of each of the 10 slices: half the sample
LATE = DOCUMENTS - DOCUMENTS * 6 // 100  # the first _id of the last 6 %


def order(n: int) -> dict:
    """The order with ``_id`` n; each field stands for one rule of the proposal."""
    document = {
        "_id": n,
        "code": n if n % 2 else f"C-{n}",  # string and int
        "weight": n if n % 3 == 0 else n + 0.5,  # int and double
        "counter": [n, Int64(n), n + 0.5][n % 3],  # int, long and double
        "amount": Decimal128(f"{n}.{n % 100:02d}"),  # up to 4 digits before the point, always 2 after
        "customer": {"name": f"customer {n}", "address": {"city": "Lyon", "zipCode": 69000 + n % 10}},
        "lines": [
            {"sku": f"S-{n}-{k}", "quantity": k + 1, "price": Decimal128("9.99")} for k in range(1 + n % 3)
        ],
        "a.b": n,  # a field name with a dot
        "placed_at": dt.datetime(2024, 1, 1) + dt.timedelta(hours=n),
    }
    if n >= LATE:
        document["late"] = True  # only in the last 6 % of the _id order
    return document


@pytest.fixture
def orders(mongo_collection):
    mongo_collection.insert_many([order(n) for n in range(DOCUMENTS)])
    return mongo_collection


def proposed(collection, out: Path, *options: str) -> tuple[Mapping, str]:
    """The mapping the command writes for ``collection``, loaded, and the file's text."""
    assert main([collection.database.name, collection.name, "--out", str(out), *options]) == 0
    return load_mapping(out), out.read_text()


@pytest.fixture
def orders_proposal(orders, tmp_path) -> tuple[Mapping, str]:
    return proposed(orders, tmp_path / "orders.yaml", "--sample", str(SAMPLE))


def column(columns: tuple[Column, ...], name: str) -> Column:
    found = [each for each in columns if each.name == name]
    assert found, f"no column {name}; columns: {[each.name for each in columns]}"
    return found[0]


def shape(each: Column) -> tuple:
    return each.path, each.type, each.accepts, each.nullable


def comments_above(text: str, name: str) -> str:
    """The comment lines right above the column or child table ``name`` (its evidence and flags), each
    wrapped line joined again."""
    lines = [line.strip() for line in text.splitlines()]
    at = lines.index(f"- name: {name}")
    start = at
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    return "\n".join(lines[start:at]).replace("\n#   ", " ")


def test_a_minority_type_a_coercion_can_take_is_flagged_with_the_coercion_to_declare(
    mongo_collection, tmp_path
):
    mongo_collection.insert_many(
        [
            {
                "_id": n,
                "amount": 10.5 if n % 50 == 0 else Decimal128(f"{n}.25"),  # 2 % doubles
                "paid_at": "2024-05-01T10:00:00Z" if n % 40 == 0 else dt.datetime(2024, 5, 1),
                "code": n if n % 2 else f"c{n}",  # half and half: no minority
                "meta": {f"key{n % 8}": n},  # free-form: each key in one object of eight
                "customer": {"name": f"c{n}", "email": f"c{n}@example.com"} if n % 3 else {"name": f"c{n}"},
            }
            for n in range(200)
        ]
    )

    mapping, text = proposed(mongo_collection, tmp_path / "invoices.yaml")

    assert {column.name: column.type for column in mapping.columns} == {
        "amount": "jsonb",  # the proposal decides nothing: the person does, by the FLAG
        "paid_at": "jsonb",
        "code": "jsonb",
        **{f"meta_key{k}": "bigint" for k in range(8)},
        "customer_name": "text",
        "customer_email": "text",
    }
    assert comments_above(text, "amount").endswith(
        "or, if the double values are the same data written otherwise, declare type: numeric(5,2), accepts: "
        "[decimal], coerce: {double: double_rounded} (docs/mappings.md, Declared coercions)"
    )
    assert "coerce: {string: iso8601}" in comments_above(text, "paid_at")
    assert "coerce:" not in comments_above(text, "code")
    assert (
        "# FLAGGED: the objects at meta vary in their keys (8 field names, none in more than 25 (12.5 %) of "
        "them): a free-form object? Its fields become the columns below, mostly NULL; to keep it whole "
        "instead, write one column in their place: {name: meta, path: [meta], type: jsonb, accepts: [object]}"
    ) in comments_above(text, "meta_key0")
    assert "vary in their keys" not in comments_above(text, "customer_name")  # optional fields, not free-form


def test_the_sample_reaches_both_ends_of_the_id_order_and_every_tenth_between(orders):
    sampled = sample(orders, SAMPLE)

    ids = set(sampled.ids)
    assert set(range(SLICE)) <= ids
    assert set(range(DOCUMENTS - SLICE, DOCUMENTS)) <= ids
    for tenth in range(10):
        assert len(ids & set(range(tenth * 300, tenth * 300 + 300))) >= SLICE, f"tenth {tenth}"
    assert SAMPLE // 2 < len(ids) <= SAMPLE


def test_a_collection_no_larger_than_the_sample_is_read_whole(mongo_collection):
    mongo_collection.insert_many([{"_id": n, "n": n} for n in range(150)])

    sampled = sample(mongo_collection, 150)

    assert sampled.whole and sorted(sampled.ids) == list(range(150))
    assert observe(mongo_collection, sampled).documents == 150


def test_the_command_tells_how_far_it_has_read_and_a_read_too_slow_says_to_lower_the_sample(
    orders, tmp_path, monkeypatch, capsys
):
    proposed(orders, tmp_path / "orders.yaml", "--sample", str(SAMPLE))

    told = capsys.readouterr().err.splitlines()
    assert re.fullmatch(
        rf"propose: reading ([\d,]+) distinct documents of about {DOCUMENTS:,}: .* in 2 batches .*", told[0]
    )
    assert re.fullmatch(r"propose: 500 of ([\d,]+) documents read in \d+ s; about .* left", told[1])
    assert re.fullmatch(r"propose: ([\d,]+) of \1 documents read in .*", told[2])

    # A server too slow for a batch: the sample is chosen as before, then every batch takes too long.
    monkeypatch.setattr(
        "mongo_migration.propose.sample", lambda source, size: Sample(DOCUMENTS, list(range(200)))
    )
    monkeypatch.setattr("mongo_migration.type_survey.READ_TIME_LIMIT_MS", 1)
    arguments = [
        orders.database.name,
        orders.name,
        "--out",
        str(tmp_path / "slow" / "o.yaml"),
        "--sample",
        "200",
    ]

    assert main(arguments) == 1
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith(
        "propose: the server spent more than 0.001 s (maxTimeMS) on one batch of up to 500 documents of "
        f"tests.{orders.name} (0 of 200 documents read in "
    )
    assert error.endswith(
        "the server is slow or busy for them. Lower --sample (e.g. --sample 100), or propose against a less "
        "busy member of the replica set."
    )


def test_batches_of_sampled_ids_add_up_to_what_one_aggregation_counts(orders, monkeypatch):
    sampled = sample(orders, SAMPLE)
    at_once = observe(orders, sampled)

    monkeypatch.setattr("mongo_migration.type_survey.IDS_PER_AGGREGATION", len(sampled.ids) // 3 + 1)
    in_batches = observe(orders, sampled)

    assert in_batches.seen == at_once.seen
    assert in_batches.places == at_once.places
    assert at_once.documents == len(sampled.ids)


def test_a_field_only_in_the_last_documents_of_the_id_order_is_found(orders_proposal):
    mapping, text = orders_proposal

    assert shape(column(mapping.columns, "late")) == (("late",), "boolean", ("bool",), True)
    assert "late: bool " in comments_above(text, "late")
    assert "missing in " in comments_above(text, "late")


def test_mixed_types_are_jsonb_accepting_exactly_them_and_flagged_unless_one_type_holds_them(orders_proposal):
    mapping, text = orders_proposal

    assert shape(column(mapping.columns, "code")) == (("code",), "jsonb", ("string", "int"), False)
    assert "FLAGGED: mixed types" in comments_above(text, "code")
    counter = column(mapping.columns, "counter")
    assert shape(counter) == (("counter",), "jsonb", ("double", "int", "long"), False)
    assert "FLAGGED: mixed types" in comments_above(text, "counter")
    weight = column(mapping.columns, "weight")
    assert shape(weight) == (("weight",), "double precision", ("double", "int"), False)
    assert "FLAGGED" not in comments_above(text, "weight")


def test_decimal128_amounts_are_numeric_with_their_digits_as_evidence(orders_proposal):
    mapping, text = orders_proposal

    assert shape(column(mapping.columns, "amount")) == (("amount",), "numeric", ("decimal",), False)
    evidence = comments_above(text, "amount")
    assert "decimal: at most 6 digits, at most 2 after the point" in evidence
    assert "numeric(6,2)" in evidence
    assert "dates: 2024-01-01 00:00:00.000+00 to " in comments_above(text, "placed_at")


def test_a_nested_object_is_flattened_and_an_array_of_objects_is_a_child_table(orders_proposal):
    mapping, text = orders_proposal

    assert "customer" not in [each.name for each in mapping.columns]
    assert shape(column(mapping.columns, "customer_name")) == (
        ("customer", "name"),
        "text",
        ("string",),
        False,
    )
    city = column(mapping.columns, "customer_address_city")
    assert shape(city) == (("customer", "address", "city"), "text", ("string",), False)
    zip_code = column(mapping.columns, "customer_address_zip_code")
    assert shape(zip_code) == (("customer", "address", "zipCode"), "bigint", ("int", "long"), False)
    [lines] = mapping.children
    assert (lines.name, lines.path, lines.nullable) == ("lines", ("lines",), False)
    assert [shape(each) for each in lines.columns] == [
        (("sku",), "text", ("string",), False),
        (("quantity",), "bigint", ("int", "long"), False),
        (("price",), "numeric", ("decimal",), False),
    ]
    assert "array lengths: 1 to 3" in comments_above(text, "lines")
    assert "lines" not in [each.name for each in mapping.columns]


def test_the_file_loads_and_a_field_named_with_a_dot_keeps_its_key_in_the_path(orders_proposal, orders):
    mapping, text = orders_proposal

    assert shape(column(mapping.columns, "a_b")) == (("a.b",), "bigint", ("int", "long"), False)
    assert mapping.dag_id == f"mongo_{orders.name}_to_postgres"
    assert (mapping.source.database, mapping.source.collection) == (orders.database.name, orders.name)
    assert (mapping.target.schema_, mapping.target.table) == ("public", orders.name)
    assert (mapping.schedule, mapping.keep_document) == (None, True)
    columns = [*mapping.columns, *(each for child in mapping.children for each in child.columns)]
    assert {each.on_violation for each in columns} == {"reject"}
    assert text.startswith(f"# PROPOSED from the data of {orders.database.name}.{orders.name}")
    assert "Review it, then commit it" in text
    assert f"{SLICE} consecutive _ids" in text and "from $sample" in text


def test_every_document_of_the_collection_converts_by_the_proposal_without_a_reject(orders_proposal, orders):
    mapping, _ = orders_proposal
    raw = orders.with_options(codec_options=CodecOptions(document_class=RawBSONDocument))

    batch = Conversion(mapping).rows(b"".join(document.raw for document in raw.find()), page=0)

    assert (batch.documents, batch.rejects) == (DOCUMENTS, [])
    assert batch.children["lines"].count(b"\n") == sum(1 + n % 3 for n in range(DOCUMENTS))


def test_names_that_collide_or_are_reserved_get_a_suffix_and_are_flagged(mongo_collection, tmp_path):
    mongo_collection.insert_many(
        [
            {
                "_id": n,
                "userName": "a",
                "user_name": "b",
                "page": n,
                "document": "d",
                "$price": 2,
                "nickname": None,
            }
            for n in range(100)
        ]
    )

    mapping, text = proposed(mongo_collection, tmp_path / "names.yaml")

    assert [(each.name, each.path) for each in mapping.columns] == [
        ("user_name", ("userName",)),
        ("user_name_2", ("user_name",)),
        ("page_2", ("page",)),
        ("document_2", ("document",)),
        ("_price", ("$price",)),
    ]
    assert "FLAGGED: named user_name_2: user_name is the name of userName" in comments_above(
        text, "user_name_2"
    )
    assert "FLAGGED: named page_2" in comments_above(text, "page_2")
    assert "FLAGGED: named document_2" in comments_above(text, "document_2")
    assert "# FLAGGED: field names starting with $ at $price" in text
    assert "nickname: null 100" in text  # only null: no column


def test_a_proposal_that_does_not_load_as_proposed_is_refused(mongo_collection):
    mongo_collection.insert_many([{"_id": n, "n": n} for n in range(10)])
    sampled = sample(mongo_collection, 100)
    proposal = propose(
        observe(mongo_collection, sampled), sampled, "tests", mongo_collection.name, "d", "public", "t"
    )
    text = render(proposal, "python -m mongo_migration.propose")
    check(text, proposal)

    with pytest.raises(ProposeError, match="does not load"):
        check(text.replace("type: bigint", "type: bigintt"), proposal)
    with pytest.raises(ProposeError, match="loads as another mapping"):
        check(text.replace("nullable: false", "nullable: true"), proposal)


def test_the_command_writes_the_file_and_replaces_one_only_when_forced(mongo_collection, tmp_path):
    mongo_collection.insert_many([{"_id": n, "status": "paid"} for n in range(100)])
    out = tmp_path / "mappings" / f"{mongo_collection.name}.yaml"
    command = [
        sys.executable,
        "-m",
        "mongo_migration.propose",
        "tests",
        mongo_collection.name,
        "--out",
        str(out),
    ]

    def run(*options: str) -> subprocess.CompletedProcess:
        return subprocess.run([*command, *options], cwd=ROOT, env=os.environ, capture_output=True, text=True)

    written = run()
    assert written.returncode == 0, written.stderr
    assert f"Wrote {out}: 1 column, 0 child tables and 0 FLAGGED lines from 100 documents" in written.stdout
    mapping = load_mapping(out)
    assert shape(column(mapping.columns, "status")) == (("status",), "text", ("string",), False)
    assert mapping.dag_id == f"mongo_{mongo_collection.name}_to_postgres"

    out.write_text("# a person's edits\n")
    refused = run()
    assert refused.returncode == 1
    assert "exists: pass --force to replace it" in refused.stderr
    assert out.read_text() == "# a person's edits\n"

    forced = run("--force")
    assert forced.returncode == 0, forced.stderr
    assert load_mapping(out).columns == mapping.columns


def test_a_sample_too_slow_to_choose_says_so_without_asking_for_a_smaller_one(
    orders, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr("mongo_migration.type_survey.READ_TIME_LIMIT_MS", 1)

    assert (
        main([orders.database.name, orders.name, "--out", str(tmp_path / "o.yaml"), "--sample", "200"]) == 1
    )
    error = capsys.readouterr().err.splitlines()[-1]
    assert error == (
        "propose: the server spent more than 0.001 s (maxTimeMS) on one read choosing the sample of "
        f"tests.{orders.name} (skips along the _id index, $sample): the server is slow or busy. Propose "
        "against a less busy member of the replica set."
    )
