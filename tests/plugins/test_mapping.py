"""Reading a mapping file: every problem named with its file and field, lossy type pairs refused."""

import itertools
from pathlib import Path

import pytest
import yaml

from include import config
from mongo_migration import contract
from mongo_migration.mapping import (
    Mapping,
    MappingError,
    changed_columns,
    load_mapping,
    load_mappings,
    shape_changes,
)

VALID = {
    "dag_id": "mongo_orders_to_postgres",
    "source": {"database": "app", "collection": "orders"},
    "target": {"schema": "sales", "table": "orders"},
    "columns": [{"name": "total", "path": ["total"], "type": "numeric", "accepts": ["decimal"]}],
    "children": [
        {
            "name": "items",
            "path": ["items"],
            "columns": [{"name": "sku", "path": ["sku"], "type": "text"}],
        }
    ],
}


def written(folder: Path, name: str, content: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(content))
    return path


def problems(tmp_path: Path, **changes) -> str:
    with pytest.raises(MappingError) as error:
        load_mapping(written(tmp_path, "orders.yaml", {**VALID, **changes}))
    return str(error.value)


def test_the_shipped_mappings_load_and_the_users_one_gives_todays_table():
    mappings, errors = load_mappings(config.MAPPINGS_DIR)
    assert errors == []
    users = {mapping.dag_id: mapping for mapping in mappings}["mongo_to_postgres"]
    assert (users.source.database, users.source.collection) == ("app", "users")
    assert (users.target.schema_, users.target.table, users.keep_document) == ("public", "users", True)
    assert [(column.name, column.type) for column in users.columns] == [
        ("username", "text"),
        ("email", "text"),
        ("age", "integer"),
        ("created_at", "timestamptz"),
    ]
    assert users.seed_users and users.schedule == "0 2 * * *"


def test_a_valid_mapping_fills_the_defaults_of_its_type_and_of_the_configuration(tmp_path):
    mapping = load_mapping(written(tmp_path, "orders.yaml", VALID))
    [sku] = mapping.children[0].columns
    assert sku.accepts == contract.DEFAULT_ACCEPTS["text"]
    assert (sku.nullable, sku.on_violation) == (True, "reject")
    assert mapping.params.items_per_page == config.ITEMS_PER_PAGE
    assert mapping.relations("orders") == ["orders", "orders_rejects", "orders_items"]
    assert mapping.schedule is None and mapping.pool == config.PAGE_POOL


def test_every_problem_of_a_file_is_named_at_once_with_the_file_and_the_field(tmp_path):
    message = problems(
        tmp_path,
        target={"table": "Orders"},
        colums=[],
        columns=[
            {"name": "price", "path": ["price"], "type": "numeric", "accepts": ["double"]},
            {"name": "qty", "path": ["q"], "type": "float4"},
        ],
    )
    lines = message.splitlines()
    assert all(line.startswith(f"{tmp_path}/orders.yaml: ") for line in lines)
    assert any("target.table: 'Orders' is not a plain lowercase PostgreSQL name" in line for line in lines)
    assert any("colums: is not a field of a mapping (a typo?)" in line for line in lines)
    assert any("columns[0] (price): accepts: numeric cannot hold double exactly" in line for line in lines)
    assert any("columns[1] (qty).type: 'float4' is not a type of the contract" in line for line in lines)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"columns": [{"name": "page", "path": ["p"], "type": "text"}]}, "['page'] are the machinery's own"),
        (
            {
                "columns": [
                    {"name": "a", "path": ["a"], "type": "text"},
                    {"name": "a", "path": ["b"], "type": "text"},
                ]
            },
            "columns named twice: ['a']",
        ),
        ({"columns": [{"name": "a", "path": [], "type": "text"}]}, "needs a path of at least one field name"),
        (
            {"columns": [{"name": "a", "path": ["a"], "type": "text", "accepts": ["null"]}]},
            "set nullable: true",
        ),
        (
            {"columns": [{"name": "a", "path": ["a"], "type": "text", "on_violation": "null"}]},
            "'reject' or 'fail'",
        ),
        ({"target": {"table": "orders_rejects"}}, "the rejects table of another target"),
        ({"target": {"schema": "mongo_migration_staging", "table": "t"}}, "holds the staging tables"),
        ({"target": {"schema": "s" * 40, "table": "t" * 20}}, "would be longer than PostgreSQL's 63 bytes"),
        ({"children": [{"name": "rejects", "path": ["r"], "columns": []}]}, "is the table's rejects table"),
        ({"timeout_minutes": {"migrate_pages": 5}}, "unknown tasks ['migrate_pages']"),
        ({"source": {"database": "app", "collection": "system.users"}}, "source.collection"),
    ],
    ids=lambda value: "" if isinstance(value, dict) else value[:30],
)
def test_a_mapping_that_cannot_be_used_is_refused_naming_what_is_wrong(tmp_path, changes, expected):
    assert expected in problems(tmp_path, **changes)


def test_every_pair_of_bson_and_column_type_outside_the_contract_is_refused_when_read(tmp_path):
    """The contract's table is the only way in: any other pair could lose something."""
    for bson_type, pg_type in itertools.product(contract.BSON_TYPES, contract.PG_TYPES):
        column = {"name": "c", "path": ["c"], "type": pg_type, "accepts": [bson_type]}
        mapping = {**VALID, "columns": [column]}
        if bson_type in contract.PG_TYPES[pg_type]:
            assert Mapping.model_validate(mapping).columns[0].accepts == (bson_type,)
        else:
            with pytest.raises(ValueError, match=f"{pg_type} cannot hold {bson_type} exactly"):
                Mapping.model_validate(mapping)


def test_the_pairs_the_contract_allows_are_the_documented_ones():
    allowed = {pg_type: sorted(holds) for pg_type, holds in contract.PG_TYPES.items() if pg_type != "jsonb"}
    assert allowed == {
        "integer": ["int"],
        "bigint": ["int", "long", "timestamp"],
        "numeric": ["decimal", "int", "long"],
        "double precision": ["double", "int"],
        "boolean": ["bool"],
        "timestamptz": ["date"],
        "text": ["objectId", "string"],
        "bytea": ["binData", "objectId"],
        "uuid": ["uuid"],
    }
    assert sorted(contract.PG_TYPES["jsonb"]) == sorted(contract.BSON_TYPES)


def test_the_version_changes_with_what_shapes_rows_and_only_with_that(tmp_path):
    base = Mapping.model_validate(VALID)
    same_shape = Mapping.model_validate({**VALID, "schedule": "@daily", "description": "other words"})
    explicit_defaults = Mapping.model_validate(
        {**VALID, "columns": [{**VALID["columns"][0], "nullable": True, "on_violation": "reject"}]}
    )
    retyped = Mapping.model_validate({**VALID, "columns": [{**VALID["columns"][0], "type": "numeric(12,2)"}]})
    without_document = Mapping.model_validate({**VALID, "keep_document": False})
    assert base.version == same_shape.version == explicit_defaults.version
    assert len({base.version, retyped.version, without_document.version}) == 3


def test_a_changed_mapping_is_described_column_by_column_in_the_words_of_the_file():
    before = Mapping.model_validate(
        {
            **VALID,
            "columns": [
                {"name": "total", "path": ["total"], "type": "numeric", "accepts": ["decimal"]},
                {"name": "email", "path": ["customer", "email"], "type": "text"},
                {"name": "note", "path": ["note"], "type": "text"},
            ],
        }
    )
    after = Mapping.model_validate(
        {
            **VALID,
            "keep_document": False,
            "columns": [
                {"name": "total", "path": ["total"], "type": "numeric(12,2)", "accepts": ["decimal", "int"]},
                {"name": "email", "path": ["customer", "emial"], "type": "text", "nullable": False},
                {"name": "placed_at", "path": ["placed_at"], "type": "timestamptz"},
            ],
            "children": [
                {
                    "name": "items",
                    "path": ["lines"],
                    "columns": [{"name": "qty", "path": ["qty"], "type": "int"}],
                },
                {"name": "tags", "path": ["tags"], "columns": [{"name": "tag", "path": [], "type": "text"}]},
            ],
        }
    )

    assert shape_changes(before.shape(), after.shape()) == [
        "keep_document: True → False",
        "column note removed",
        "column total: type numeric → numeric(12,2)",
        "column total: accepts decimal → decimal, int",
        "column email: path [customer, email] → [customer, emial]",
        "column email: nullable True → False",
        "column placed_at added (timestamptz at [placed_at])",
        "child table items: path [items] → [lines]",
        "child table tags added (the array at [tags])",
        "column items.sku removed",
        "column items.qty added (integer at [qty])",
    ]
    assert shape_changes(before.shape(), before.shape()) == []


def test_the_shipped_mappings_keep_their_versions_so_that_a_release_does_not_copy_every_table_in_full():
    # A new field of a column (coerce) must not change the hash of a mapping that does not use it.
    versions = {path.stem: load_mapping(path).version for path in sorted(config.MAPPINGS_DIR.glob("*.yaml"))}
    assert versions == {"orders": "d3b6b29618242b3c", "users": "e6d5c7770ca2152d"}


def test_the_columns_a_changed_mapping_judges_are_those_it_added_or_shaped_otherwise():
    before = Mapping.model_validate(VALID).shape()
    moved = Mapping.model_validate(
        {
            **VALID,
            "columns": [
                {**VALID["columns"][0], "coerce": {"string": "decimal_string"}},
                {"name": "note", "path": ["note"], "type": "text"},
            ],
            "children": [{**VALID["children"][0], "path": ["lines"]}],
        }
    ).shape()

    assert changed_columns(before, before) == set()
    assert changed_columns(before, moved) == {"total", "note", "items[]"}  # items.sku itself is the same
    assert changed_columns(None, before) == {"total", "items[]", "items.sku"}  # nothing recorded: all
    # a column and a child table may share a name: each is judged on its own
    both = {**before, "columns": [*before["columns"], {"name": "items", "path": ["items"], "type": "jsonb"}]}
    typo = {**both, "columns": [*before["columns"], {"name": "items", "path": ["itmes"], "type": "jsonb"}]}
    assert changed_columns(both, typo) == {"items"}
    reordered = {**before, "columns": [*before["columns"], {**before["columns"][0], "name": "b"}]}
    assert shape_changes(reordered, {**reordered, "columns": reordered["columns"][::-1]}) == [
        "the columns' order: total, b → b, total"
    ]


def test_one_bad_file_leaves_the_others_loaded_and_files_that_share_a_dag_id_or_a_table_are_all_refused(
    tmp_path,
):
    written(tmp_path, "a.yaml", VALID)
    written(tmp_path, "b.yaml", {**VALID, "target": {"table": "other"}})  # the same dag_id as a.yaml
    written(tmp_path, "c.yaml", {**VALID, "dag_id": "c", "columns": "not a list"})
    (tmp_path / "d.yaml").write_text("dag_id: [unclosed")
    written(tmp_path, "e.yaml", {**VALID, "dag_id": "e", "target": {"schema": "crm", "table": "returns"}})
    written(tmp_path, "f.yml", {**VALID, "dag_id": "f", "target": {"schema": "crm", "table": "returns"}})
    written(tmp_path, "g.yaml", {**VALID, "dag_id": "g", "target": {"schema": "crm", "table": "gone"}})

    mappings, errors = load_mappings(tmp_path)

    assert [mapping.file.name for mapping in mappings] == ["g.yaml"]
    lines = "\n".join(str(error) for error in errors).splitlines()
    for expected in [
        f"{tmp_path}/a.yaml: dag_id: 'mongo_orders_to_postgres' is also the DAG of {tmp_path}/b.yaml",
        f"{tmp_path}/b.yaml: dag_id: 'mongo_orders_to_postgres' is also the DAG of {tmp_path}/a.yaml",
        f"{tmp_path}/c.yaml: columns: Input should be a valid tuple",
        f"{tmp_path}/d.yaml: cannot be read as YAML: while parsing a flow sequence",
        f"{tmp_path}/e.yaml: target: crm.returns, crm.returns_items, crm.returns_rejects is also written by "
        f"{tmp_path}/f.yml",
        f"{tmp_path}/f.yml: target: crm.returns, crm.returns_items, crm.returns_rejects is also written by "
        f"{tmp_path}/e.yaml",
    ]:
        assert expected in lines


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"dag_id: a\ndag_id: b\n", "keys given twice: ['dag_id']"),
        ("description: caf\u00e9\n".encode("latin-1"), "cannot be read as YAML: 'utf-8' codec can't decode"),
    ],
    ids=["a key twice", "not UTF-8"],
)
def test_a_file_that_is_no_clean_yaml_is_refused_naming_it(tmp_path, content, expected):
    (tmp_path / "broken.yaml").write_bytes(content)
    [error] = load_mappings(tmp_path)[1]
    assert str(error).startswith(f"{tmp_path}/broken.yaml: ") and expected in str(error)


@pytest.mark.parametrize("schedule", ["0 2 * * *", "@daily", "@once", None])
def test_a_schedule_is_a_cron_expression_or_a_preset(schedule):
    assert Mapping.model_validate({**VALID, "schedule": schedule}).schedule == schedule


@pytest.mark.parametrize(
    ("schedule", "error"),
    [
        ("30 2 * *", "'30 2 * *' has 4 fields; a schedule has 5 (minute hour day month weekday)"),
        ("0 0 2 * * *", "'0 0 2 * * *' has 6 fields; a schedule has 5"),  # croniter's 6th field: seconds
        (
            "30 25 * * *",
            "'30 25 * * *' is not a schedule Airflow can run: [30 25 * * *] is not acceptable, out of range",
        ),
        ("@nightly", "'@nightly' is not a schedule Airflow can run"),
    ],
)
def test_a_schedule_with_a_typo_is_this_files_error_naming_what_is_wrong(tmp_path, schedule, error):
    assert f"schedule: {error}" in problems(tmp_path, schedule=schedule)


def test_a_path_of_one_field_may_be_written_as_a_string_and_a_dotted_one_is_named(tmp_path):
    one_field = {
        **VALID,
        "columns": [{"name": "total", "path": "total", "type": "numeric", "accepts": ["decimal"]}],
    }
    assert Mapping.model_validate(one_field) == Mapping.model_validate(
        VALID
    )  # the same mapping, the same version
    dotted = [{"name": "email", "path": "customer.email", "type": "text"}]
    assert (
        "columns[0] (email).path: 'customer.email' is one string: write the field names as a list, "
        "[customer, email] (or ['customer.email'] for one field whose name holds a dot)"
    ) in problems(tmp_path, columns=dotted)
