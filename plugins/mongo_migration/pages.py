"""Pages: contiguous ``_id`` ranges of about ``items_per_page`` documents each.

A page is the range from its first ``_id`` (inclusive) to the next page's first
``_id`` (exclusive); the last page ends at the last ``_id`` seen when planning
(inclusive). Together they cover exactly the ``_id`` range that existed at plan
time, each document in exactly one page. Range queries cost the same whatever
the page's position, unlike ``skip()``, whose cost grows with the offset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bson import json_util
from pymongo.collection import Collection

_EXTENDED_JSON = json_util.CANONICAL_JSON_OPTIONS
READ_BATCH_SIZE = 2000  # documents per batch: small enough for conversion and COPY to overlap


@dataclass(frozen=True)
class Page:
    number: int
    lower: Any  # first _id of the page, inclusive
    upper: Any  # next page's first _id (exclusive), or the last page's last _id (inclusive)
    upper_inclusive: bool
    planned_documents: int

    def mongo_filter(self) -> dict:
        upper_operator = "$lte" if self.upper_inclusive else "$lt"
        return {"_id": {"$gte": self.lower, upper_operator: self.upper}}

    def read(self, collection: Collection) -> Iterator[bytes]:
        """The page's documents as raw BSON batches: no decoding until they are converted."""
        return collection.find_raw_batches(self.mongo_filter(), batch_size=READ_BATCH_SIZE)

    def to_xcom(self) -> dict:
        """A JSON-safe form: bounds as canonical Extended JSON, which keeps their BSON types."""
        return {
            "number": self.number,
            "lower": json_util.dumps(self.lower, json_options=_EXTENDED_JSON),
            "upper": json_util.dumps(self.upper, json_options=_EXTENDED_JSON),
            "upper_inclusive": self.upper_inclusive,
            "planned_documents": self.planned_documents,
        }

    @classmethod
    def from_xcom(cls, data: dict) -> Page:
        return cls(
            number=data["number"],
            lower=json_util.loads(data["lower"], json_options=_EXTENDED_JSON),
            upper=json_util.loads(data["upper"], json_options=_EXTENDED_JSON),
            upper_inclusive=data["upper_inclusive"],
            planned_documents=data["planned_documents"],
        )


def plan_pages(collection: Collection, items_per_page: int) -> list[Page]:
    """Cut the collection into pages from one ordered scan of its ``_id`` values."""
    if items_per_page < 1:
        raise ValueError(f"items_per_page must be at least 1, got {items_per_page}")
    first_ids: list[Any] = []
    last_id = None
    count = 0
    for count, document in enumerate(collection.find({}, {"_id": 1}, sort=[("_id", 1)]), 1):
        last_id = document["_id"]
        if (count - 1) % items_per_page == 0:
            first_ids.append(last_id)
    pages = []
    for number, lower in enumerate(first_ids):
        is_last = number == len(first_ids) - 1
        pages.append(
            Page(
                number=number,
                lower=lower,
                upper=last_id if is_last else first_ids[number + 1],
                upper_inclusive=is_last,
                planned_documents=count - number * items_per_page if is_last else items_per_page,
            )
        )
    return pages


def planned_range_filter(pages: list[Page]) -> dict:
    """The MongoDB filter for everything the pages cover together."""
    if not pages:
        return {"_id": {"$in": []}}
    return {"_id": {"$gte": pages[0].lower, "$lte": pages[-1].upper}}
