"""Fake users for the source collection, the same ones on every run.

User number ``n`` always has the same ``_id`` and fields: its ObjectId is the
number itself and each batch of users draws from Faker seeded with its batch
number. So a seed that is retried or repeated only inserts the users that are
missing, and a duplicate ``_id`` is the proof that a user is already there.

Seeding writes into the source: the operator runs it only where the
deployment allows it (``include/config.py``) and never in a scheduled run.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator

from bson.objectid import ObjectId
from faker import Faker
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

BATCH_SIZE = 10_000
_DUPLICATE_KEY = 11000
# The seeded users' ObjectIds start at this time, one second apart.
_FIRST_ID_TIME = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp())
_SIGNUP_START = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
_SIGNUP_END = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def user_id(number: int) -> ObjectId:
    """The user's number as an ObjectId: its time part is 1970, where no real ObjectId lies."""
    return ObjectId(number.to_bytes(12, "big"))


def fake_users(first: int, count: int, faker_seed: int) -> list[dict]:
    """Users ``first`` to ``first + count - 1``; ``first`` must start a batch."""
    if first % BATCH_SIZE:
        raise ValueError(f"first user {first} does not start a batch of {BATCH_SIZE}")
    # Without weighting, Faker draws names about 30 times faster.
    fake = Faker(use_weighting=False)
    fake.seed_instance(faker_seed + first // BATCH_SIZE)
    users = []
    for number in range(first, first + count):
        first_name, last_name = fake.first_name(), fake.last_name()
        username = f"{first_name}.{last_name}{number}".lower()
        users.append(
            {
                "_id": user_id(number),
                "username": username,
                "email": f"{username}@{fake.free_email_domain()}",
                "first_name": first_name,
                "last_name": last_name,
                "age": fake.random_int(18, 90),
                "created_at": fake.date_time_between(_SIGNUP_START, _SIGNUP_END),
                "active": fake.boolean(80),
                "address": {
                    "street": f"{fake.building_number()} {fake.street_name()}",
                    "city": fake.city(),
                    "postcode": fake.postcode(),
                    "country": fake.country_code(),
                },
                "tags": fake.words(fake.random_int(0, 4), unique=True),
            }
        )
    return users


def seed_users(collection: Collection, wanted: int, faker_seed: int) -> int:
    """Ensure users 0 to ``wanted - 1`` are in the collection; return how many were inserted.

    One ordered scan of the seeded ``_id`` range finds the users that are
    missing, never seeded or deleted since, wherever they are; only the batches
    that hold them are generated again, and only the missing users inserted.
    Other documents in the collection are left alone and do not count.
    """
    inserted = 0
    missing = _missing_users(collection, wanted)
    for first, numbers in itertools.groupby(missing, key=lambda number: number // BATCH_SIZE * BATCH_SIZE):
        wanted_here = set(numbers)
        batch = fake_users(first, max(wanted_here) - first + 1, faker_seed)
        users = [user for number, user in enumerate(batch, first) if number in wanted_here]
        inserted += insert_missing(collection, users)
    return inserted


def _missing_users(collection: Collection, wanted: int) -> Iterator[int]:
    """The user numbers below ``wanted`` whose ``_id`` is not in the collection, in order."""
    expected = 0
    seeded = {"_id": {"$gte": user_id(0), "$lt": user_id(wanted)}}
    for document in collection.find(seeded, {"_id": 1}, sort=[("_id", 1)]):
        number = int.from_bytes(document["_id"].binary, "big")
        yield from range(expected, number)
        expected = number + 1
    yield from range(expected, wanted)


def insert_missing(collection: Collection, documents: list[dict]) -> int:
    """Insert the documents whose ``_id`` is not in the collection yet; how many were."""
    try:
        return len(collection.insert_many(documents, ordered=False).inserted_ids)
    except BulkWriteError as error:
        errors = error.details["writeErrors"]
        if any(e["code"] != _DUPLICATE_KEY for e in errors):
            raise
        return error.details["nInserted"]
