"""The target role that deploy/roles/postgres.sql makes is all a run needs: preflight passes with exactly
its grants, and a full run and an incremental one publish as that role, in a database of their own."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.postgres.hooks.postgres import PostgresHook

from tests.conftest import SPARSE_USERS

pytestmark = pytest.mark.system  # runs the DAG or the deployment's processes

ROOT = Path(__file__).resolve().parents[1]
ROLE_SCRIPT = ROOT / "deploy" / "roles" / "postgres.sql"
PSQL = "/usr/lib/postgresql/15/bin/psql"
SCRIPT = ["-v", "schema=public", "-f", str(ROLE_SCRIPT)]


@pytest.fixture
def least_privileged(services, monkeypatch):
    """A fresh target database, the script run in it twice (it may be run again), and postgres_default
    pointed at the role it made; dropped after."""
    admin = PostgresHook().get_conn()
    admin.autocommit = True
    name = f"least_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {name}")
    connection = PostgresHook().connection
    superuser = f"postgresql://{connection.login}:{connection.password}@{connection.host}:{connection.port}"
    for _ in range(2):
        subprocess.run(
            [PSQL, f"{superuser}/{name}", "-q", "-v", "password=role-pw", "-v", f"role={name}", *SCRIPT],
            check=True,
            capture_output=True,
        )
    host = f"{connection.host}:{connection.port}"
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", f"postgresql://{name}:role-pw@{host}/{name}")
    yield name
    admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    admin.execute(f"DROP ROLE {name}")
    admin.close()


def test_a_run_as_the_scripts_role_passes_preflight_and_publishes_tables_it_owns(
    least_privileged, mongo_collection
):
    mongo_collection.insert_many([{"username": f"u{n}", "age": n} for n in range(50)])
    dag = DagBag(dag_folder=ROOT / "dags").dags["mongo_to_postgres"]
    conf = {"mongo_database": "tests", "mongo_collection": mongo_collection.name, "target_table": "users"}
    conf |= SPARSE_USERS

    runs = [dag.test(run_conf=conf)]
    mongo_collection.update_one({"username": "u7"}, {"$set": {"age": 70}})
    runs.append(dag.test(run_conf=conf))

    states = [{ti.task_id: ti.state for ti in run.get_task_instances()} for run in runs]
    assert [run.state for run in runs] == ["success", "success"], states
    assert [state["migrate_page"] for state in states] == ["success", "skipped"]  # full, then incremental
    with psycopg.connect(os.environ["AIRFLOW_CONN_POSTGRES_DEFAULT"]) as conn:
        assert conn.execute("SELECT count(*), sum(age) FROM public.users").fetchone() == (
            50,
            49 * 50 // 2 + 63,
        )
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'users'").fetchone()
        assert owner == (least_privileged,)
