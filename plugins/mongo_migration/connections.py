"""Opening the source and target through their Airflow connections, with timeouts and clear errors.

Every network call has a bound, and a server that cannot be reached fails the
task with a message naming the connection and its host, not a driver's stack
trace. The task's retries (``default_args``) then try again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from pymongo.errors import ConfigurationError, ConnectionFailure

# Defaults a connection's own extras override.
MONGO_TIMEOUTS_MS = {
    "serverSelectionTimeoutMS": 10_000,
    "connectTimeoutMS": 10_000,
    "socketTimeoutMS": 600_000,  # one batch of a range query that scans a large collection
}
POSTGRES_CONNECT_TIMEOUT_SECONDS = "10"
POSTGRES_STATEMENT_TIMEOUT_MS = 3_600_000
POSTGRES_LOCK_TIMEOUT_MS = 60_000  # waiting for another run's or a person's lock on the table


class UnreachableError(AirflowException):
    """A server could not be reached or stopped answering; a retry may succeed."""


class CertificateFileError(AirflowFailException):
    """A connection names a certificate file the task cannot read; a retry will not find it either."""


@contextmanager
def mongo_hook(conn_id: str) -> Iterator[MongoHook]:
    """The source's hook, its client bounded by ``MONGO_TIMEOUTS_MS``; closed on exit."""
    hook = MongoHook(mongo_conn_id=conn_id)
    hook.extras = {**MONGO_TIMEOUTS_MS, **hook.extras}
    try:
        hook.get_conn()  # the client checks its options here, and looks up an SRV name
    except ConfigurationError as error:
        if not hook.connection.extra_dejson.get("srv"):
            raise
        raise _unreachable("MongoDB", conn_id, hook.connection.host, error) from None  # a DNS answer missing
    except OSError as error:  # pymongo's "The tlscafile file is not readable" names no file
        files = [f"{name} {path}" for name, path in hook.extras.items() if name.lower().endswith("file")]
        raise CertificateFileError(
            f"MongoDB connection {conn_id!r} names a file this task cannot read ({', '.join(files)}): "
            f"{error.strerror}"
        ) from None
    try:
        with hook:
            yield hook
    except ConnectionFailure as error:
        where = ",".join(f"{host}:{port}" for host, port in mongo_hosts(hook.connection))
        raise _unreachable("MongoDB", conn_id, where, error) from None


def _unreachable(server: str, conn_id: str, where: str, error: Exception) -> UnreachableError:
    """An error naming the connection and where it points (never its password), and the driver's reason."""
    return UnreachableError(
        f"{server} connection {conn_id!r} ({where}) failed: {str(error).splitlines()[0][:300]}"
    )


def mongo_hosts(connection) -> list[tuple[str, int]]:
    """The source's hosts and ports as the connection names them: a replica set's list (the JSON form's
    ``host``), an SRV name (its port stands for 27017), or one host."""
    hosts = []
    for address in (connection.host or "localhost").split(","):
        host, colon, port = address.strip().rpartition(":")
        if not colon or "]" in port:  # no port, or an IPv6 address in brackets without one
            host, port = address.strip(), ""
        hosts.append((host, int(port or connection.port or 27017)))
    return hosts


@contextmanager
def postgres_connection(conn_id: str, application_name: str) -> Iterator[psycopg.Connection]:
    """The target's connection, with a connect timeout; committed and closed on exit.

    Works through PgBouncer in transaction pooling mode: no startup options (it
    refuses them), no prepared statements (it cannot keep them), and the
    statement and lock timeouts are set inside each ``transaction``.
    ``application_name`` shows in ``pg_stat_activity``, naming the task that
    holds a connection.
    """
    # libpq reads these when the connection's extras set no connect_timeout or
    # application_name of their own; PgBouncer passes the application name on.
    os.environ.setdefault("PGCONNECT_TIMEOUT", POSTGRES_CONNECT_TIMEOUT_SECONDS)
    hook = PostgresHook(postgres_conn_id=conn_id)
    try:
        with _application_name(application_name):
            conn = hook.get_conn()
        with conn:
            conn.prepare_threshold = None
            yield conn
    except psycopg.OperationalError as error:
        if not _lost_connection(error):
            raise  # a lock or statement timeout, a deadlock, a full disk: its own message is the truth
        where = f"{hook.connection.host}:{hook.connection.port or 5432}"
        raise _unreachable("PostgreSQL", conn_id, where, error) from None


@contextmanager
def _application_name(name: str) -> Iterator[None]:
    """``PGAPPNAME`` while the connection is made (the hook takes no such argument), then as it was."""
    before = os.environ.get("PGAPPNAME")
    os.environ["PGAPPNAME"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PGAPPNAME", None)
        else:
            os.environ["PGAPPNAME"] = before


@contextmanager
def transaction(conn: psycopg.Connection) -> Iterator[None]:
    """A transaction bounded by the statement and lock timeouts, set inside it (``SET LOCAL``).

    Set per transaction, not per session: behind PgBouncer's transaction
    pooling each transaction may run on another server connection.
    """
    with conn.transaction():
        conn.execute(
            f"SET LOCAL statement_timeout = {POSTGRES_STATEMENT_TIMEOUT_MS}; "
            f"SET LOCAL lock_timeout = {POSTGRES_LOCK_TIMEOUT_MS}"
        )
        yield


def _lost_connection(error: psycopg.OperationalError) -> bool:
    """Whether the server could not be reached or the connection broke: no SQLSTATE, class 08,
    or the server shutting down or starting (57P01-57P03)."""
    return error.sqlstate is None or error.sqlstate[:2] == "08" or error.sqlstate in _SERVER_GOING_AWAY


_SERVER_GOING_AWAY = {"57P01", "57P02", "57P03"}  # admin shutdown, crash shutdown, cannot connect now
