"""Test services: a PostgreSQL and a MongoDB wire-protocol server of their own.

They run from ``.stack-test`` on ports apart from the local stack's, so the
tests never touch the data of a developer's own runs. The environment that
points Airflow at them is set before Airflow is imported.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.timestamp import Timestamp

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "scripts" / "stack.sh"
STACK_ENV = {"STACK_DIR": str(ROOT / ".stack-test"), "PG_PORT": "55433", "MONGO_PORT": "57018"}


def _stack(command: str) -> str:
    return subprocess.run(
        ["bash", str(STACK), command],
        env={**os.environ, **STACK_ENV},
        check=True,
        capture_output=True,
        text=True,
    ).stdout


for line in _stack("env").splitlines():
    name, _, value = line.removeprefix("export ").partition("=")
    os.environ[name] = value.strip("'")


@pytest.fixture(scope="session")
def services():
    """Start the test services and Airflow's metadata database; stop the services at the end."""
    _stack("start")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    yield
    from airflow import settings

    settings.dispose_orm()  # close Airflow's own connections before PostgreSQL stops
    _stack("stop")


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
    """A fresh table name, dropped afterwards."""
    name = f"users_{uuid.uuid4().hex[:8]}"
    yield name
    pg_conn.execute(f"DROP TABLE IF EXISTS {name}")


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
