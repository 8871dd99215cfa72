"""Timeouts on every connection, and errors that name the connection when a server is unreachable."""

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import certifi
import psycopg
import pytest
from airflow.models.connection import Connection
from airflow.providers.postgres.hooks.postgres import PostgresHook
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from mongo_migration.connections import (
    MONGO_TIMEOUTS_MS,
    CertificateFileError,
    UnreachableError,
    mongo_hook,
    mongo_hosts,
    postgres_connection,
    transaction,
)
from mongo_migration.operators import MigratePageOperator, ResetTableOperator
from mongo_migration.pages import Page
from tests.conftest import mongo_connection
from tests.staging import USERS

NOTHING_LISTENS = "127.0.0.1:9"


def test_source_client_has_timeouts_unless_the_connection_sets_its_own(services, monkeypatch):
    with mongo_hook("mongo_default") as hook:
        options = hook.get_conn().options
        assert (options.server_selection_timeout, options.pool_options.socket_timeout) == (10, 600)
    monkeypatch.setenv("AIRFLOW_CONN_MONGO_SHORT", mongo_connection(serverSelectionTimeoutMS=500))
    with mongo_hook("mongo_short") as hook:
        assert hook.get_conn().options.server_selection_timeout == 0.5


def test_target_transactions_have_statement_and_lock_timeouts_and_name_their_task(services):
    with postgres_connection("postgres_default", application_name="mongo_migration:verify") as conn:
        with transaction(conn):
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "1h"
            assert conn.execute("SHOW lock_timeout").fetchone()[0] == "1min"
            assert conn.execute("SHOW application_name").fetchone()[0] == "mongo_migration:verify"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"  # set in the transaction alone


def test_an_unreachable_source_fails_the_page_naming_the_connection_and_host(
    target_table, context, monkeypatch
):
    ResetTableOperator(task_id="reset_table", target_table=target_table, mapping=USERS).execute(context)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MONGO_DOWN",
        f"mongo://{NOTHING_LISTENS}/?directConnection=true&serverSelectionTimeoutMS=300",
    )
    page = Page(0, 1, 2, True, 2)
    operator = MigratePageOperator(
        task_id="migrate_page",
        page=page.to_xcom(),
        mongo_conn_id="mongo_down",
        mongo_database="tests",
        mongo_collection="users",
        target_table=target_table,
        mapping=USERS,
    )

    with pytest.raises(
        UnreachableError, match=rf"MongoDB connection 'mongo_down' \({NOTHING_LISTENS}\) failed"
    ):
        operator.execute(context)


def test_an_unreachable_target_fails_naming_the_connection_and_host_but_not_the_password(
    context, monkeypatch
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSTGRES_DOWN", f"postgresql://someone:s3cret-pw@{NOTHING_LISTENS}/target"
    )
    operator = ResetTableOperator(
        task_id="reset_table", target_table="users", postgres_conn_id="postgres_down", mapping=USERS
    )

    with pytest.raises(UnreachableError) as failure:
        operator.execute(context)

    assert f"PostgreSQL connection 'postgres_down' ({NOTHING_LISTENS}) failed" in str(failure.value)
    assert "s3cret-pw" not in str(failure.value)


def test_a_lock_timeout_keeps_its_own_message_and_is_not_called_unreachable(pg_conn, target_table):
    pg_conn.execute(f"CREATE TABLE {target_table} (x int)")
    with postgres_connection("postgres_default", application_name="tests") as holder:
        holder.execute(f"LOCK TABLE {target_table} IN ACCESS EXCLUSIVE MODE")  # held until the end

        with (
            pytest.raises(psycopg.errors.LockNotAvailable, match="lock timeout"),
            postgres_connection("postgres_default", application_name="tests") as conn,
            transaction(conn),
        ):
            conn.execute("SET LOCAL lock_timeout = '100ms'")
            conn.execute(f"SELECT * FROM {target_table}")


def test_through_pgbouncer_each_transaction_has_its_timeouts_and_the_connection_its_task(services):
    with (
        postgres_connection("postgres_pgbouncer", application_name="mongo_migration:publish") as conn,
        transaction(conn),
    ):
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "1h"
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == "1min"
        assert conn.execute("SHOW application_name").fetchone()[0] == "mongo_migration:publish"
    assert "PGAPPNAME" not in os.environ  # set for the connect alone


def documented_connections() -> list:
    """Every ``AIRFLOW_CONN_<ID>='<value>'`` of the documentation and ``.env.example``, by where it is."""
    found = []
    for path in [ROOT / ".env.example", ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for kind, value in DOCUMENTED_CONNECTION.findall(line):
                found.append(pytest.param(kind, value, id=f"{path.name}:{number}"))
    return found


ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_CONNECTION = re.compile(r"AIRFLOW_CONN_(MONGO|POSTGRES)_DEFAULT='([^']+)'")
CERTS = "/opt/airflow/certs/"  # where the compose file mounts ./certs


def written(value: str, certs: Path) -> tuple[str, dict]:
    """A documented connection read as a person reads it, not by the hooks: its host field and options.

    The containers' certificate folder becomes ``certs``, which holds a real CA bundle under each name.
    """
    for name in re.findall(rf"{CERTS}([\w.-]+)", value):
        shutil.copy(certifi.where(), certs / name)
    value = value.replace(CERTS, f"{certs}/")
    if value.startswith("{"):
        fields = json.loads(value)
        port = f":{fields['port']}" if "port" in fields else ""
        return f"{fields['host']}{port}", {**fields.get("extra", {}), "dbname": fields.get("schema")}
    parts = urlsplit(value)
    return parts.netloc.rpartition("@")[2], {**dict(parse_qsl(parts.query)), "dbname": parts.path[1:]}


@pytest.mark.parametrize(("kind", "value"), documented_connections())
def test_every_documented_connection_builds_its_client_with_each_host_and_option(
    kind, value, tmp_path, monkeypatch
):
    hosts, options = written(value, tmp_path)
    monkeypatch.setenv("AIRFLOW_CONN_DOCUMENTED", value.replace(CERTS, f"{tmp_path}/"))
    if kind == "MONGO":
        monkeypatch.setitem(MONGO_TIMEOUTS_MS, "connect", False)  # no DNS lookup, no socket
        with mongo_hook("documented") as hook:
            client = hook.get_conn()
            srv = options.pop("srv", False)
            options.pop("dbname")
            if srv:
                assert client._resolve_srv_info["fqdn"] == hosts
            else:
                seeds = [f"{host}:{port}" for host, port in client.topology_description.server_descriptions()]
                assert sorted(seeds) == sorted(hosts.split(","))
            assert {name: str(client.options._options[name]).lower() for name in options} == {
                name: str(value).lower() for name, value in options.items()
            }
    else:

        class Arguments(PostgresHook):
            def _create_connection(self, conn_args):  # what would reach psycopg.connect
                return conn_args

        arguments = Arguments(postgres_conn_id="documented").get_conn()
        libpq = conninfo_to_dict(make_conninfo(**{k: v for k, v in arguments.items() if v is not None}))
        assert f"{libpq['host']}:{libpq['port']}" == hosts
        assert {name: libpq[name] for name in options} == options


def test_the_documentation_shows_a_replica_set_atlas_and_verified_tls_on_both_sides():
    values = [param.values[1] for param in documented_connections()]
    assert any(
        '"replicaSet"' in value and "," in json.loads(value)["host"] for value in values if value[0] == "{"
    )
    assert any('"srv": true' in value for value in values)
    assert any("tlsCAFile" in value for value in values)
    assert any("sslmode=verify-full&sslrootcert=" in value for value in values)


def test_a_certificate_file_the_task_cannot_read_is_named_and_not_retried(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_MONGO_CA",
        json.dumps(
            {"conn_type": "mongo", "host": "db1:27017", "extra": {"tls": True, "tlsCAFile": "/no/ca.pem"}}
        ),
    )
    with (
        pytest.raises(CertificateFileError, match=r"names a file .* \(tlsCAFile /no/ca.pem\): No such"),
        mongo_hook("mongo_ca"),
    ):
        pass


@pytest.mark.parametrize(
    ("host", "port", "hosts"),
    [
        (
            "db1.example.com:27017,db2.example.com:27018",
            None,
            [("db1.example.com", 27017), ("db2.example.com", 27018)],
        ),
        ("cluster0.abcde.mongodb.net", None, [("cluster0.abcde.mongodb.net", 27017)]),  # SRV: no port
        ("mongo.example.com", 27020, [("mongo.example.com", 27020)]),  # the URI form's port
        ("[::1]:27019", None, [("[::1]", 27019)]),
        ("[::1]", None, [("[::1]", 27017)]),
    ],
)
def test_the_sources_hosts_are_read_from_a_list_an_srv_name_or_one_host(host, port, hosts):
    assert mongo_hosts(Connection(conn_id="source", conn_type="mongo", host=host, port=port)) == hosts
