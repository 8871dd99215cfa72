"""A client that keeps writing to a collection while a run copies it, and logs what it did and when.

Run as its own process (``python -m tests.writer URI DATABASE COLLECTION LOG``)
until it gets SIGTERM. Each write is one line of its log: the operation, the
``_id``, the document as the write left it (null: gone) and the write's
operation time, so ``source_at`` can tell what the collection held at any
cluster time. Writes, in turn: inserts beyond the ``_id`` range (new
ObjectIds), inserts inside it (ObjectIds with old timestamps, as a client
with a skewed clock makes), updates, replaces, deletes, and deletes followed
by an insert of the same ``_id``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pymongo
from bson import json_util
from bson.objectid import ObjectId
from bson.timestamp import Timestamp

from mongo_migration.documents import CODEC_OPTIONS

ROOT = Path(__file__).resolve().parents[1]
WRITES_PER_SECOND = 100  # at most; the tests ask for 50 at least, on a busy machine
KINDS = ("insert beyond", "insert inside", "update", "replace", "delete", "delete and insert again")
EXTENDED_JSON = json_util.CANONICAL_JSON_OPTIONS


def old_object_id(rng: random.Random) -> ObjectId:
    """An ObjectId made by a client whose clock says 2020 to 2024."""
    moment = dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randrange(5 * 365 * 86400))
    return ObjectId(int(moment.timestamp()).to_bytes(4, "big") + rng.randbytes(8))


def write(uri: str, database: str, collection_name: str, log_path: str, seed: int = 7) -> None:
    rng = random.Random(seed)
    client = pymongo.MongoClient(uri)
    collection = client[database].get_collection(collection_name, codec_options=CODEC_OPTIONS)
    ids = [document["_id"] for document in collection.find({}, {"_id": 1})]
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with open(log_path, "w") as log, client.start_session() as session:

        def record(kind: str, key, document) -> None:
            """Log the write just made; ``document`` may come from a read after it."""
            entry = {
                "kind": kind,
                "_id": json_util.dumps(key, json_options=EXTENDED_JSON),
                "document": None
                if document is None
                else json_util.dumps(document, json_options=EXTENDED_JSON),
                "t": [written.time, written.inc],
                "wall": time.time(),
            }
            log.write(json.dumps(entry) + "\n")
            log.flush()

        n = 0
        while not stopping:
            started = time.monotonic()
            kind = KINDS[n % len(KINDS)]
            n += 1
            fields = {"username": f"writer {n}", "age": rng.randrange(18, 90), "n": n}
            if kind.startswith("insert"):
                key = ObjectId() if kind == "insert beyond" else old_object_id(rng)
                collection.insert_one({"_id": key, **fields}, session=session)
                written = session.operation_time
                ids.append(key)
                record(kind, key, {"_id": key, **fields})
            elif not ids:
                continue
            elif kind == "update":  # this process is the only writer: a read after it sees its result
                key = rng.choice(ids)
                collection.update_one({"_id": key}, {"$set": fields}, session=session)
                written = session.operation_time
                record(kind, key, collection.find_one({"_id": key}, session=session))
            elif kind == "replace":
                key = rng.choice(ids)
                collection.replace_one({"_id": key}, fields, session=session)
                written = session.operation_time
                record(kind, key, {"_id": key, **fields})
            else:
                key = ids.pop(rng.randrange(len(ids)))
                collection.delete_one({"_id": key}, session=session)
                written = session.operation_time
                record("delete", key, None)
                if kind == "delete and insert again":
                    collection.insert_one({"_id": key, **fields}, session=session)
                    written = session.operation_time
                    ids.append(key)
                    record("insert again", key, {"_id": key, **fields})
            time.sleep(max(0.0, 1 / WRITES_PER_SECOND - (time.monotonic() - started)))


@contextmanager
def writing(collection, log: Path):
    """The writer process, working on ``collection`` until the block ends."""
    uri = "mongodb://{}:{}/?directConnection=true".format(*collection.database.client.address)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.writer", uri, collection.database.name, collection.name, str(log)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"},
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def _json(value) -> str:
    return json_util.dumps(value, json_options=EXTENDED_JSON)


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def key(document: dict) -> str:
    """A document's ``_id`` as canonical Extended JSON, which keeps its type."""
    return _json(document["_id"])


def source_at(initial: list[dict], log: list[dict], cluster_time: Timestamp) -> dict[str, dict]:
    """What the collection held at ``cluster_time``: ``initial`` and the writes up to it, by ``key``."""
    held = {key(document): document for document in initial}
    for entry in log:
        if Timestamp(*entry["t"]) > cluster_time:
            break
        if entry["document"] is None:
            held.pop(entry["_id"])
        else:
            document = json_util.loads(entry["document"], json_options=EXTENDED_JSON)
            held[entry["_id"]] = document
    return held


if __name__ == "__main__":
    write(*sys.argv[1:5])


def published_and_expected(conn, table: str, initial: list[dict], log: Path) -> tuple[dict, dict, Timestamp]:
    """The live table's documents, the source's at its publish's point (by ``key``), and that point."""
    documents = [json_util.loads(text) for (text,) in conn.execute(f"SELECT document::text FROM {table}")]
    (position,) = conn.execute(
        'SELECT position FROM mongo_migration_staging."Published" WHERE target_table = %s', [table]
    ).fetchone()
    point = Timestamp(position["cluster_time"]["t"], position["cluster_time"]["i"])
    expected = source_at(initial, read_log(log), point)
    return {key(document): document for document in documents}, expected, point
