"""A mapping file that changes between two runs, run with ``dag.test()`` against the real services.

The mapping is a file in the mappings folder (a folder of the test's own, with
the shipped mappings beside it), from which the DAG file makes its DAG, as a
person's edit would; the second run's mapping drops a column, adds two,
retypes one and gives the child table a column. That run must copy in full and
publish the new shape in place; the run after it is incremental again.
"""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from bson.decimal128 import Decimal128

from include import config
from mongo_migration.documents import id_key
from tests.dag_runs import label, result, state
from tests.staging import drop_tables

pytestmark = pytest.mark.system  # runs the DAG or the deployment's processes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mappings_folder(tmp_path, monkeypatch):
    """A mappings folder of the test's own, with the shipped mappings in it."""
    for shipped in config.MAPPINGS_DIR.glob("*.yaml"):
        (tmp_path / shipped.name).write_text(shipped.read_text())
    monkeypatch.setattr(config, "MAPPINGS_DIR", tmp_path)
    return tmp_path


def write_mapping(
    folder: Path, collection: str, table: str, columns: list[dict], line_columns: list[dict], lines=("lines",)
):
    """The mapping file, and the DAG the DAG file makes of it."""
    mapping = {
        "dag_id": "tests_mapping_change",
        "source": {"database": "tests", "collection": collection},
        "target": {"table": table},
        "params": {"items_per_page": 20},
        "columns": columns,
        "children": [{"name": "lines", "path": list(lines), "columns": line_columns}],
    }
    (folder / "changing.yaml").write_text(yaml.safe_dump(mapping))
    return DagBag(dag_folder=ROOT / "dags").dags["tests_mapping_change"]


@pytest.fixture
def table(pg_conn):
    yield "mapping_change"
    drop_tables(pg_conn, "mapping_change")


def migrate_pages(dag_run) -> int:
    return sum(
        1 for ti in dag_run.get_task_instances() if ti.task_id == "migrate_page" and ti.state == "success"
    )


def test_a_changed_mapping_copies_in_full_once_and_publishes_its_new_shape_in_place(
    mongo_collection, pg_conn, table, mappings_folder
):
    mongo_collection.insert_many(
        [
            {
                "_id": n,
                "sku": f"s{n}",
                "amount": n * 10,
                "note": f"note {n}",
                "colour": ["red", "blue"][n % 2],
                "placed_at": dt.datetime(2024, 1, 1) + dt.timedelta(hours=n),
                "lines": [{"qty": q, "price": Decimal128(f"{n}.{q}5")} for q in range(n % 3)],
            }
            for n in range(50)
        ]
    )
    before = write_mapping(
        mappings_folder,
        mongo_collection.name,
        table,
        [
            {"name": "sku", "path": ["sku"], "type": "text", "nullable": False},
            {"name": "amount", "path": ["amount"], "type": "integer"},
            {"name": "note", "path": ["note"], "type": "text"},
        ],
        [{"name": "qty", "path": ["qty"], "type": "integer"}],
    )
    first = before.test()
    assert first.state == "success"
    oid = pg_conn.execute("SELECT %s::regclass::oid", [table]).fetchone()[0]
    after = write_mapping(
        mappings_folder,
        mongo_collection.name,
        table,
        [
            {"name": "sku", "path": ["sku"], "type": "text", "nullable": False},
            {"name": "amount", "path": ["amount"], "type": "numeric", "accepts": ["int", "long"]},
            {"name": "colour", "path": ["colour"], "type": "text"},
            {"name": "placed_at", "path": ["placed_at"], "type": "timestamptz"},
        ],
        [
            {"name": "qty", "path": ["qty"], "type": "integer"},
            {"name": "price", "path": ["price"], "type": "numeric", "accepts": ["decimal"]},
        ],
    )

    changed = after.test()

    assert changed.state == "success"
    assert migrate_pages(changed) == 3  # copied in full: 50 documents in pages of 20
    assert pg_conn.execute("SELECT %s::regclass::oid", [table]).fetchone()[0] == oid  # in place
    rows = pg_conn.execute(f"SELECT _id, amount, colour, placed_at FROM {table}").fetchall()
    assert {key: values for key, *values in rows} == {
        id_key(n): [
            Decimal(n * 10),
            ["red", "blue"][n % 2],
            dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=n),
        ]
        for n in range(50)
    }
    described = [column.name for column in pg_conn.execute(f"SELECT * FROM {table} LIMIT 0").description]
    assert described == ["_id", "sku", "amount", "document", "page", "colour", "placed_at"]  # note dropped
    lines = pg_conn.execute(
        f"SELECT _id, _index, qty, price FROM {table}_lines ORDER BY _id, _index"
    ).fetchall()
    assert lines == sorted((id_key(n), q, q, Decimal(f"{n}.{q}5")) for n in range(50) for q in range(n % 3))

    again = after.test()

    assert again.state == "success"
    assert migrate_pages(again) == 0  # incremental: the mapping is the one its table was published with


def test_a_path_typed_wrong_is_named_as_the_mapping_change_and_publish_refuses_the_emptied_column(
    mongo_collection, pg_conn, table, mappings_folder
):
    # The typo: [customer, emial] for [customer, email], which no document has.
    mongo_collection.insert_many(
        [
            {"_id": n, "sku": f"s{n}", "customer": {"email": f"c{n}@example.com"} if n % 10 else None}
            for n in range(50)
        ]
    )

    def mapping(email_path: list[str]):
        columns = [
            {"name": "sku", "path": ["sku"], "type": "text"},
            {"name": "customer_email", "path": email_path, "type": "text"},
        ]
        lines = [{"name": "qty", "path": ["qty"], "type": "integer"}]
        return write_mapping(mappings_folder, mongo_collection.name, table, columns, lines)

    right = mapping(["customer", "email"])
    assert right.test().state == "success"
    # The data drifting is no mapping's fault: an incremental night publishes it, judging nothing.
    mongo_collection.update_many({"_id": {"$lt": 20}}, {"$unset": {"customer": ""}})
    drifted = right.test()
    assert drifted.state == "success" and migrate_pages(drifted) == 0
    published = pg_conn.execute(f"SELECT _id, customer_email FROM {table}").fetchall()
    assert sum(email is None for _, email in published) == 23  # 5 null customers, 18 more now absent
    typo = mapping(["customer", "emial"])

    refused = typo.test()

    assert refused.state == "failed"
    assert state(refused, "verify") == "success"
    assert state(refused, "publish") == "failed"
    assert pg_conn.execute(f"SELECT _id, customer_email FROM {table}").fetchall() == published
    assert label(refused, "open_change_stream") == (
        "full: the mapping changed since the last publish (column customer_email: path [customer, email] → "
        "[customer, emial]): a full copy writes every row again in its new shape"
    )
    [email] = [
        found
        for found in result(refused, "verify")["columns"]["columns"]
        if found["column"] == "customer_email"
    ]
    assert email == {
        "table": table,
        "column": "customer_email",
        "path": ["customer", "emial"],
        "rows": 50,
        "nulls": 50,
        "live_rows": 50,
        "live_nulls": 23,
        "absent": 50,
        "coerced": 0,
        "judged": True,  # the column the mapping changed
    }
    [sku] = [found for found in result(refused, "verify")["columns"]["columns"] if found["column"] == "sku"]
    assert not sku["judged"]

    allowed = typo.test(run_conf={"max_null_rise_percent": 100})  # a person who checked, for one run

    assert allowed.state == "success"
    assert pg_conn.execute(f"SELECT count(*) FROM {table} WHERE customer_email IS NULL").fetchone() == (50,)


def test_an_array_path_typed_wrong_is_refused_before_it_empties_the_published_child_table(
    mongo_collection, pg_conn, table, mappings_folder
):
    mongo_collection.insert_many(
        [{"_id": n, "sku": f"s{n}", "lines": [{"qty": 1}, {"qty": 2}]} for n in range(30)]
    )
    columns, lines = (
        [{"name": "sku", "path": ["sku"], "type": "text"}],
        [{"name": "qty", "path": ["qty"], "type": "int"}],
    )
    assert (
        write_mapping(mappings_folder, mongo_collection.name, table, columns, lines).test().state == "success"
    )
    typo = write_mapping(mappings_folder, mongo_collection.name, table, columns, lines, lines=("liens",))

    refused = typo.test()

    assert state(refused, "publish") == "failed"
    assert pg_conn.execute(f"SELECT count(*) FROM {table}_lines").fetchone() == (60,)
    [child] = result(refused, "verify")["columns"]["children"]
    assert child == {"table": f"{table}_lines", "path": ["liens"], "rows": 0, "live_rows": 60, "judged": True}
    assert typo.test(run_conf={"max_shrink_percent": 100}).state == "success"  # for one run, once checked
    assert pg_conn.execute(f"SELECT count(*) FROM {table}_lines").fetchone() == (0,)
