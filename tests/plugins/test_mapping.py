"""Reading a mapping file: every problem named with its file and field, lossy type pairs refused."""

import itertools
from pathlib import Path

import pytest
import yaml

from include import config
from mongo_migration import contract
from mongo_migration.mapping import Mapping, MappingError, load_mapping, load_mappings

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


def test_one_bad_file_leaves_the_others_loaded_and_a_dag_id_given_twice_is_an_error_of_the_later(tmp_path):
    written(tmp_path, "a.yaml", VALID)
    written(tmp_path, "b.yaml", {**VALID, "target": {"table": "other"}})
    written(tmp_path, "c.yaml", {**VALID, "dag_id": "c", "columns": "not a list"})
    (tmp_path / "d.yaml").write_text("dag_id: [unclosed")

    mappings, errors = load_mappings(tmp_path)

    assert [mapping.file.name for mapping in mappings] == ["a.yaml"]
    messages = [str(error) for error in errors]
    assert (
        messages[0]
        == f"{tmp_path}/b.yaml: dag_id: 'mongo_orders_to_postgres' is the DAG of {tmp_path}/a.yaml"
    )
    assert messages[1].startswith(f"{tmp_path}/c.yaml: columns: ")
    assert messages[2].startswith(f"{tmp_path}/d.yaml: cannot be read as YAML")
