"""Demo orders for the example mapping ``include/mappings/orders.yaml``, the same ones on every call.

Order number ``n`` always has the same ``_id`` (the number as an ObjectId) and
fields: a nested customer, Decimal128 amounts, a date, one to five items and
sometimes a note, all of the types the mapping accepts. Filling again only
inserts the orders that are missing.

    python -m mongo_migration.demo orders 10000 [--database app --collection orders]
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from bson.decimal128 import Decimal128
from bson.objectid import ObjectId
from pymongo.collection import Collection

from include import config
from mongo_migration.users import insert_missing

BATCH_SIZE = 10_000
_STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")
_CITIES = (("Lisbon", "PT"), ("Lyon", "FR"), ("Leeds", "GB"), ("Leipzig", "DE"), ("Lima", "PE"))
_FIRST_ORDER = dt.datetime(2024, 1, 1)


def order_id(number: int) -> ObjectId:
    return ObjectId(number.to_bytes(12, "big"))


def fake_orders(first: int, count: int, seed: int = config.FAKER_SEED) -> list[dict]:
    """Orders ``first`` to ``first + count - 1``, each drawn from a generator seeded with its number."""
    orders = []
    for number in range(first, first + count):
        draw = random.Random(seed * 1_000_003 + number)
        city, country = draw.choice(_CITIES)
        items = [
            {
                "sku": f"SKU-{draw.randrange(1000):04d}",
                "quantity": draw.randint(1, 5),
                "unit_price": Decimal(draw.randrange(100, 100_000)) / 100,
                **({"options": {"size": draw.choice("SML")}} if draw.random() < 0.3 else {}),
            }
            for _ in range(draw.randint(1, 5))
        ]
        total = sum(item["quantity"] * item["unit_price"] for item in items)
        orders.append(
            {
                "_id": order_id(number),
                "number": f"ORD-{number:08d}",
                "status": draw.choice(_STATUSES),
                "placed_at": _FIRST_ORDER
                + dt.timedelta(seconds=number * 37, milliseconds=draw.randrange(1000)),
                "total": Decimal128(total),
                "currency": "EUR",
                "customer": {
                    "name": f"Customer {draw.randrange(100_000)}",
                    "email": f"customer{number}@example.org",
                    "address": {"city": city, "country": country},
                },
                "items": [{**item, "unit_price": Decimal128(item["unit_price"])} for item in items],
                **({"notes": "leave at the door"} if draw.random() < 0.2 else {}),
            }
        )
    return orders


def fill_orders(collection: Collection, wanted: int) -> int:
    """Ensure orders 0 to ``wanted - 1`` are in the collection; how many were inserted."""
    inserted = 0
    for first in range(0, wanted, BATCH_SIZE):
        inserted += insert_missing(collection, fake_orders(first, min(BATCH_SIZE, wanted - first)))
    return inserted
