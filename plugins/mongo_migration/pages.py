"""Pages: contiguous ``_id`` ranges of at most ``items_per_page`` documents each.

A page is the range from its first ``_id`` (inclusive) to the next page's first
``_id`` (exclusive); the last page of a type ends at the last ``_id`` of that
type seen when planning (inclusive). Together they cover exactly the ``_id``
values that existed at plan time, each document in exactly one page. Range
queries cost the same whatever the page's position, unlike ``skip()``, whose
cost grows with the offset.

MongoDB compares values of different types only by their type's rank ("type
bracketing"): ``{"$gte": 5, "$lt": "a"}`` matches nothing at all. So a page
never spans two types: a collection whose ``_id`` values mix numbers, strings
and ObjectIds gets separate pages for each. NaN is a bracket of its own here:
it sorts before every number, but ``{"$gte": NaN}`` matches no number, so NaN
gets a page of its own, matched by equality. Binary values sort by length,
then subtype, then bytes, and not every server filters them in that order
(the local SecantusDB compares bytes alone), so a page of binary ``_id``
values also keeps to one length.

The server finds the pages' bounds (:func:`plan_pages`): on MongoDB a walk of
the ``_id`` index, whatever the collection's size; only the bounds reach Python.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

from bson import json_util
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from pymongo.client_session import ClientSession
from pymongo.collection import Collection

_EXTENDED_JSON = json_util.CANONICAL_JSON_OPTIONS
_RELAXED_JSON = json_util.RELAXED_JSON_OPTIONS

# MongoDB's documented comparison order of BSON types ("Comparison/Sort Order"
# in the MongoDB manual), lowest first: values compare with each other only
# within their bracket. The Python types are those pymongo decodes BSON into:
# a symbol decodes as str and undefined as None (brackets 4 and 2 take them),
# a DBRef is stored as an object.
_TYPE_RANKS: dict[type, int] = {
    MinKey: 1,
    type(None): 2,
    int: 3,  # int32, and int64 (bson.Int64 is an int); bool has its own rank below
    float: 3,
    Decimal128: 3,
    str: 4,
    dict: 5,  # SON is a dict
    DBRef: 5,  # pymongo also reads the deprecated DBPointer as a DBRef, which MongoDB ranks after regex
    list: 6,
    bytes: 7,
    Binary: 7,
    ObjectId: 8,
    bool: 9,
    dt.datetime: 10,
    DatetimeMS: 10,
    Timestamp: 11,
    Regex: 12,
    re.Pattern: 12,
    Code: 13,  # JavaScript code; with a scope it ranks 14 (see type_rank)
    MaxKey: 15,
}
_NUMBERS = _TYPE_RANKS[float]
_BINARY = _TYPE_RANKS[bytes]
_CODE_WITH_SCOPE = _TYPE_RANKS[Code] + 1
# Brackets that hold a single value: a page of them is that value, not a range.
_SINGLE_VALUE_RANKS = {_TYPE_RANKS[MinKey], _TYPE_RANKS[type(None)], _TYPE_RANKS[MaxKey]}


def type_rank(value: Any) -> int:
    """The rank of ``value``'s type bracket in MongoDB's comparison order."""
    for kind in type(value).__mro__:  # Code before the str it derives from, bool before int
        if kind in _TYPE_RANKS:
            if kind is Code and value.scope is not None:
                return _CODE_WITH_SCOPE
            return _TYPE_RANKS[kind]
    raise TypeError(f"an _id of type {type(value).__name__} has no known place in MongoDB's order")


def _is_nan(value: Any) -> bool:
    if type(value) is float:
        return math.isnan(value)
    return type(value) is Decimal128 and value.to_decimal().is_nan()


def comparison_group(value: Any) -> tuple:
    """Values that every server compares alike: a page never leaves its group.

    NaN is a group of its own: it sorts before every number, but no range
    that starts at NaN matches a number.
    """
    rank = type_rank(value)
    if rank == _BINARY:  # the stored length: subtype 2 keeps a length of its own inside
        return rank, len(value) + (4 if getattr(value, "subtype", 0) == 2 else 0)
    if rank == _NUMBERS and _is_nan(value):
        return rank, "NaN"
    return (rank,)


def _single_value(value: Any) -> bool:
    """Whether the page holding ``value`` is matched by equality: its group holds one value only."""
    return type_rank(value) in _SINGLE_VALUE_RANKS or _is_nan(value)


@dataclass(frozen=True)
class Page:
    number: int
    lower: Any  # first _id of the page, inclusive
    upper: Any  # next page's first _id (exclusive), or the last _id of its type (inclusive)
    upper_inclusive: bool
    planned_documents: int

    def mongo_filter(self) -> dict:
        if _single_value(self.lower):
            return {"_id": self.lower}
        upper_operator = "$lte" if self.upper_inclusive else "$lt"
        return {"_id": {"$gte": self.lower, upper_operator: self.upper}}

    def label(self) -> str:
        """The page as the UI shows it: its number and ``_id`` range."""
        if _single_value(self.lower):
            return f"page {self.number}: _id {_short(self.lower)}"
        closing = "]" if self.upper_inclusive else ")"
        return f"page {self.number}: _id [{_short(self.lower)}, {_short(self.upper)}{closing}"

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


def _short(value: Any) -> str:
    text = str(value) if isinstance(value, ObjectId) else json_util.dumps(value, json_options=_RELAXED_JSON)
    return text if len(text) <= 40 else text[:39] + "…"


def plan_pages(
    collection: Collection, items_per_page: int, session: ClientSession | None = None
) -> list[Page]:
    """Cut the collection into pages from the server's numbering of its ``_id`` index (in ``session``).

    One aggregation numbers the ``_id``s in order and returns only the first of every
    ``items_per_page``, the first of each comparison group (with the ``_id`` before it,
    its group's last) and the last, so 50 million documents in pages of 8000 bring
    about 6,250 values into Python, not 50 million. It needs MongoDB 5.0 or later.
    """
    if items_per_page < 1:
        raise ValueError(f"items_per_page must be at least 1, got {items_per_page}")
    cuts = collection.aggregate(
        _page_cuts(items_per_page), hint={"_id": 1}, allowDiskUse=True, batchSize=1000, session=session
    )
    pages: list[Page] = []
    first = None  # the cut that starts the page being built

    def close(upper: Any, upper_inclusive: bool, documents: int) -> None:
        pages.append(Page(len(pages), first["_id"], upper, upper_inclusive, documents))

    for cut in sorted(cuts, key=lambda cut: cut["position"]):  # $setWindowFields promises no order
        if first is not None and cut["starts_page"]:
            if cut["starts_group"]:  # the group before ended just before it
                close(cut["previous"], True, cut["position"] - first["position"])
            else:
                close(cut["_id"], False, cut["position"] - first["position"])
        if cut["starts_page"]:
            first = cut
        if cut["is_last"]:
            close(cut["_id"], True, cut["position"] - first["position"] + 1)
    return pages


def _page_cuts(items_per_page: int) -> list[dict]:
    """The ``_id``s that start a page (every ``items_per_page``-th, each group's first), and the last."""
    return [
        {
            "$setWindowFields": {
                "sortBy": {"_id": 1},
                "output": {
                    "position": {"$documentNumber": {}},
                    "previous": {"$shift": {"output": "$_id", "by": -1}},
                    "is_last": {"$shift": {"output": False, "by": 1, "default": True}},
                },
            }
        },
        {
            "$set": {
                "starts_group": {
                    "$and": [{"$gt": ["$position", 1]}, {"$ne": [_group_of("$_id"), _group_of("$previous")]}]
                },
                "on_the_grid": {"$eq": [{"$mod": [{"$subtract": ["$position", 1]}, items_per_page]}, 0]},
            }
        },
        {"$match": {"$or": [{"starts_group": True}, {"on_the_grid": True}, {"is_last": True}]}},
        {
            "$project": {
                "position": 1,
                "previous": 1,
                "is_last": 1,
                "starts_group": 1,
                "starts_page": {"$or": ["$starts_group", "$on_the_grid"]},
            }
        },
    ]


def _group_of(path: str) -> dict:
    """The comparison group of the value at ``path``, in MQL, or a finer one (each BSON type of its own).

    Kept to three conditions per value: the local server evaluates it in Python.
    """
    return {
        "$cond": [
            {"$isNumber": path},
            {"$cond": [{"$eq": [path, math.nan]}, "NaN", "number"]},
            {"$cond": [{"$eq": [{"$type": path}, "binData"]}, {"$binarySize": path}, {"$type": path}]},
        ]
    }


def fewer_pages(pages: list[Page], most: int) -> list[Page]:
    """``pages`` merged with their neighbours of the same group, as few at a time as leaves ``most`` pages.

    Airflow maps at most ``[core] max_map_length`` tasks; merging the planned pages
    rather than planning larger ones keeps every bound the server found. A group
    cannot merge with another, so more groups than ``most`` cannot fit.
    """
    if len(pages) <= most:
        return pages
    merging = math.ceil(len(pages) / most)
    while len(merged := _merge(pages, merging)) > most and merging < len(pages):
        merging += 1
    if len(merged) > most:
        raise ValueError(
            f"{len(merged)} pages even merged as far as they go: the _id values are of more types "
            f"(a page never holds two) than the {most} pages allowed"
        )
    return merged


def _merge(pages: list[Page], count: int) -> list[Page]:
    """Each run of up to ``count`` consecutive pages of one group as one page."""
    merged: list[Page] = []
    taken = 0
    for page in pages:
        if merged and not merged[-1].upper_inclusive and taken < count:  # its group goes on
            last = merged[-1]
            documents = last.planned_documents + page.planned_documents
            merged[-1] = Page(last.number, last.lower, page.upper, page.upper_inclusive, documents)
            taken += 1
        else:
            merged.append(
                Page(len(merged), page.lower, page.upper, page.upper_inclusive, page.planned_documents)
            )
            taken = 1
    return merged


def planned_range_filter(pages: list[Page]) -> dict:
    """The MongoDB filter for everything the pages cover together: one range per comparison group."""
    ranges: dict[tuple, Page] = {}  # the first page of each group
    clauses = []
    for page in pages:
        first = ranges.setdefault(comparison_group(page.lower), page)
        if page.upper_inclusive:
            clauses.append(Page(0, first.lower, page.upper, True, 0).mongo_filter())
    return {"$or": clauses} if clauses else {"_id": {"$in": []}}


def count_all(source: Collection, session: ClientSession) -> int:
    """The collection's documents, counted on its ``_id`` index (a covered count on MongoDB)."""
    return source.count_documents({}, hint=[("_id", 1)], session=session)


def matching_otherwise(source: Collection, pages: list[Page], most: int = 10) -> list[str]:
    """Up to ``most`` pages whose filter matches another number of documents than the plan gave them."""
    problems = []
    for page in pages:
        matched = source.count_documents(page.mongo_filter())
        if matched != page.planned_documents:
            problems.append(f"{page.label()} was planned {page.planned_documents} and matches {matched}")
            if len(problems) == most:
                break
    return problems


@dataclass(frozen=True)
class PlanCheck:
    """The counts a plan is checked by: the collection before and after its scan, what the scan saw, and
    what the planned ranges match now."""

    before: int
    after: int
    planned: int
    in_ranges: int

    def matches(self) -> bool:
        """What the ranges match is what the scan saw, and a collection that did not change meanwhile
        holds no more than that."""
        return self.in_ranges == self.planned and not (self.before == self.after != self.planned)

    def __str__(self) -> str:
        return (
            f"{self.before} documents before the plan's scan and {self.after} after it, which saw "
            f"{self.planned}; its _id ranges now match {self.in_ranges}"
        )


def plan_and_check(
    source: Collection, items_per_page: int, session: ClientSession
) -> tuple[list[Page], PlanCheck]:
    """The pages of ``source``, with the counts that check them against it."""
    before = count_all(source, session)
    pages = plan_pages(source, items_per_page, session)
    planned = sum(page.planned_documents for page in pages)
    in_ranges = source.count_documents(planned_range_filter(pages), session=session)
    return pages, PlanCheck(before, count_all(source, session), planned, in_ranges)


def mismatch(source: Collection, pages: list[Page], check: PlanCheck, streaming: bool) -> str:
    """Why a plan that does not match its source is refused, naming the pages that match otherwise;
    ``streaming``: the source has a change stream, and did not change while it was planned."""
    return (
        f"The plan of {source.full_name} does not match the source"
        + (", which did not change meanwhile" if streaming else "")
        + f": {check}; "
        + "; ".join(matching_otherwise(source, pages) or ["no page differs"])
        + ". The scan missed documents, a range cannot express what it saw"
        + ("" if streaming else ", or the source was written to (a retry plans again)")
    )
