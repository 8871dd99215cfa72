"""Test services: a PostgreSQL and a MongoDB wire-protocol server of their own.

They run from ``.stack-test`` on ports apart from the local stack's, so the
tests never touch the data of a developer's own runs. The environment that
points Airflow at them is set before Airflow is imported.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from bson.binary import Binary
from bson.code import Code
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

from mongo_migration.failpoint import FAILPOINT_VARIABLE
from tests.airflow_api import running_airflow

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "scripts" / "stack.sh"
STACK_ENV = {
    "STACK_DIR": str(ROOT / ".stack-test"),
    "PG_PORT": "55433",
    "TARGET_PG_PORT": "55443",
    "BOUNCER_PORT": "55453",
    "MONGO_PORT": "57018",
    "MONGO_OPLOG_ENTRIES": "30000",  # small enough for a test to push a position out of the history
}
AIRFLOW_PORT = 8098
# The DAG tests' documents often hold few of the users' fields, so that a first publish would refuse each
# column whose path no document has: their runs allow it (the guard's own tests are in test_publish.py and
# test_mapping_change.py).
SPARSE_USERS = {"max_null_rise_percent": 100}
FAILPOINT_FILE = ROOT / ".stack-test" / "failpoint" / "armed"


def stack(command: str) -> str:
    """Run ``scripts/stack.sh <command>`` on the test stack."""
    return subprocess.run(
        ["bash", str(STACK), command],
        env={**os.environ, **STACK_ENV},
        check=True,
        capture_output=True,
        text=True,
    ).stdout


for line in stack("env").splitlines():
    name, _, value = line.removeprefix("export ").partition("=")
    os.environ[name] = value.strip("'")


def mongo_connection(**extra) -> str:
    """The test source's connection (the JSON form, as a replica set) with ``extra`` options added."""
    connection = json.loads(os.environ["AIRFLOW_CONN_MONGO_DEFAULT"])
    return json.dumps({**connection, "extra": {**connection["extra"], **extra}})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``services`` every test that needs the test stack, through any of its fixtures: ``-m "not
    services"`` is then the tier that needs nothing running."""
    for item in items:
        if "services" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def services():
    """Start the test services and an empty Airflow metadata database (with the page pool); stop them after.

    Emptied first: a run an interrupted session left running would hold the DAG's one active run.
    """
    stack("start")
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "airflow"), "db", "reset", "--yes"], check=True, capture_output=True
    )
    subprocess.run(["bash", str(ROOT / "scripts" / "airflow-init.sh")], check=True, capture_output=True)
    yield
    from airflow import settings

    settings.dispose_orm()  # close Airflow's own connections before PostgreSQL stops
    stack("stop")


def local_airflow(**settings: str):
    """``scripts/airflow-local.sh`` on the test stack, with ``settings`` added to its environment.

    Task processes see ``FAILPOINT_FILE`` (failpoint.py). Fixtures that use it are
    module-scoped: a scheduler would also pick up the runs that ``dag.test()``
    makes in other modules.
    """
    FAILPOINT_FILE.parent.mkdir(parents=True, exist_ok=True)
    return running_airflow(
        {
            **os.environ,
            **STACK_ENV,
            "AIRFLOW_PORT": str(AIRFLOW_PORT),
            FAILPOINT_VARIABLE: str(FAILPOINT_FILE),
            **settings,
        }
    )


@pytest.fixture(scope="module")
def airflow_services(services):
    """Airflow's API server, scheduler, DAG processor and triggerer on the test stack (LocalExecutor)."""
    with local_airflow() as api:
        yield api


@pytest.fixture
def mongo_collection(services):
    """An empty collection of its own in the test database, dropped afterwards."""
    from airflow.providers.mongo.hooks.mongo import MongoHook

    with MongoHook() as hook:
        collection = hook.get_collection(f"users_{uuid.uuid4().hex[:8]}", "tests")
        yield collection
        collection.drop()


@pytest.fixture
def pg_conn(services):
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    with PostgresHook().get_conn() as conn:
        conn.autocommit = True
        yield conn


@pytest.fixture
def target_table(pg_conn):
    """A fresh table name; its live and staging tables are dropped afterwards."""
    from tests.staging import drop_tables  # imports Airflow: only once the environment above is set

    name = f"users_{uuid.uuid4().hex[:8]}"
    yield name
    drop_tables(pg_conn, name)


@pytest.fixture
def context():
    """What the operators read from a task's context: their run, and a first try.

    No other run is active in Airflow (``get_dr_count``): the tests that need
    Airflow's own answer run the DAG.
    """
    run = SimpleNamespace(
        dag_id="tests",
        run_id=f"manual__{uuid.uuid4().hex[:8]}",
        run_type="manual",
        start_date=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=10),
    )
    return {"dag_run": run, "ti": SimpleNamespace(try_number=1, get_dr_count=lambda **_: 0)}


@pytest.fixture
def mixed_ids() -> list:
    """``_id`` values of every type MongoDB allows, several of most, in no order."""
    return [
        *range(5),
        *(Int64(2**40 + n) for n in range(3)),
        2.5,
        -1e300,
        Decimal128("7.25"),
        *(f"user-{n}" for n in range(4)),
        *(ObjectId() for _ in range(4)),
        *(Binary.from_uuid(uuid.UUID(int=n)) for n in range(3)),
        Binary(b"\x00\x01", 0),
        Binary(b"\x02", 0),
        Binary(b"\x03", 5),  # SecantusDB takes equal bytes of another subtype for a duplicate
        {"tenant": 1, "n": 1},
        {"tenant": 1, "n": 2},
        None,
        MinKey(),
        MaxKey(),
        True,
        False,
        dt.datetime(2020, 1, 1),
        Timestamp(5, 1),
    ]


@pytest.fixture
def nasty_documents() -> dict[str, dict]:
    """Documents PostgreSQL cannot take as they are, one per case, by the case they prove.

    The cases whose name says NUL or $ cannot be written faithfully and must be
    set aside as rejects, and so must the user whose age is text (the users
    mapping's column accepts int); every other one must arrive whole. (Dates beyond
    Python's years 1-9999 are tested without a server: SecantusDB refuses them.)
    """
    deep: dict = {"bottom": True}
    for _ in range(95):
        deep = {"down": deep}
    return {
        "every BSON type": {
            "double": 1.5,
            "whole double": 42.0,
            "string": 'tab\t newline\n return\r backslash\\ quote" ünïcödé 😀',
            "document": {"nested": {"list": [1, "two", 3.0]}},
            "array": [1, [2, [3]], {"x": None}],
            "binary": Binary(b"\x00\xff", 0),
            "uuid": Binary.from_uuid(uuid.UUID(int=7)),
            "md5": Binary(b"0123456789abcdef", 5),
            "user binary": Binary(b"\x01", 0x80),
            "object id": ObjectId("65a1b2c3d4e5f60718293a4b"),
            "bool": True,
            "date": dt.datetime(2020, 2, 29, 12, 0, 0, 123000),
            "null": None,
            "regex": Regex("^a.*z$", "imsx"),
            "code": Code("function () { return 1 }"),
            "code with scope": Code("x + 1", {"x": 1}),
            "int32": 2**31 - 1,
            "timestamp": Timestamp(1_700_000_000, 7),
            "int64": Int64(7),
            "decimal": Decimal128("-1.10E-100"),
            "min": MinKey(),
            "max": MaxKey(),
        },
        "date before 1970": {"created_at": dt.datetime(1900, 1, 1, 0, 0, 0, 1000)},
        "decimal NaN and infinities": {
            "d": [Decimal128("NaN"), Decimal128("Infinity"), Decimal128("-Infinity")]
        },
        "double NaN and infinities": {"d": [float("nan"), float("inf"), float("-inf")]},
        "doubles beyond 2**53": {"d": [1e20, -(2.0**64), 9007199254740993.0]},
        "keys with dots": {"a.b": 1, "x": {"c.d": 2}},
        "deep nesting": {"deep": deep},
        "near 16 MB": {"blob": "x" * (15 * 1024 * 1024)},
        "age as text": {"age": "42"},
        "age null": {"age": None},
        "age missing": {"username": "nobody"},
        "unknown extra fields": {"username": "u", "favourite_colour": "teal", "score": [1, 2]},
        "NUL in a string": {"username": "nul\x00inside"},
        "NUL in a nested string": {"address": {"city": "a\x00b"}},
        "key starting with $": {"$where": "1"},
        "nested key starting with $": {"meta": {"$oid": "not an id"}},
    }
