"""What a collection holds: the BSON types at every path of a sample of its documents, counted by the server.

A proposed mapping (``propose.py``) is only as good as what it knows of the
data, and the data is too large to bring to Python. So the server does the
counting: ``sample`` chooses the documents, ``observe`` has the server count
them, and only the counts and the evidence a proposal needs (the extremes of
dates, integers and lengths, the Decimal128 digits, the subtypes of small
binaries) reach Python, in ``Observed``. It only reads.

The sample spans the whole ``_id`` range: ``SLICES`` runs of consecutive
``_id``s evenly spaced along the ``_id`` order, the first and the last documents
included (each found by a skip on the ``_id`` index, which reads no document),
and as many documents again from ``$sample``; a collection no larger than the
sample is read whole. One aggregation per batch of sampled ``_id``s turns each
document into its paths (``$objectToArray``, ``$map`` and ``$reduce``, one stage
per level, an array's elements as the path segment ``ELEMENT``) and groups them
by path and ``$type``. It needs MongoDB 4.4 or later (``$binarySize``); the
local SecantusDB runs it too.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from bson.codec_options import CodecOptions, DatetimeConversion
from pymongo.collection import Collection

from mongo_migration.documents import id_key

# Documents read when the collection holds more: on a real MongoDB 10,000 take seconds; the local
# SecantusDB needs 10 to 100 ms a document (docs/mappings.md), so the default finishes in minutes there.
SAMPLE_SIZE = 3_000
SLICES = 10  # runs of consecutive _ids, evenly spaced, that take half the sample; $sample takes the rest
IDS_PER_AGGREGATION = 500  # sampled _ids one aggregation matches ($in): progress is told after each
# The server's time for one read (maxTimeMS): a slower one fails, saying to lower --sample, rather than
# waiting for the connection's socket timeout, which reads like a network fault.
READ_TIME_LIMIT_MS = 120_000
MAX_DEPTH = 8  # path segments followed below the document (an array's element is one)
ARRAY_ELEMENTS = 100  # of each array, the first ones are read
SMALL_BINARY_BYTES = 64  # binaries up to this size come to Python for their subtype (UUIDs, hashes)
OBJECT_TO_ARRAY_REFUSED = 40390  # the server's error: $objectToArray of something that is no document
ELEMENT = None  # the path segment "an element of the array" (a field name is never null)

# Dates as milliseconds from 1970: every year compares and prints, even beyond Python's.
_CODEC_OPTIONS = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_MS)
# The $type names of deprecated types, as the contract names them once pymongo has decoded them.
_DEPRECATED_TYPE_NAMES = {"symbol": "string", "undefined": "null", "dbPointer": "object"}
_UUID_SUBTYPE = 4  # a binary of this subtype is the contract's "uuid", any other its "binData"


# --- the sample -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """The documents a proposal reads, by ``_id``: a sample, or the whole collection (``whole``)."""

    estimated: int  # documents in the collection, as the server estimates them
    ids: list
    slice_size: int = 0
    random_size: int = 0
    taken_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    whole: bool = False

    def described(self) -> str:
        if self.whole:
            return f"the whole collection ({len(self.ids):,} documents)"
        return (
            f"{len(self.ids):,} distinct documents of about {self.estimated:,}: {SLICES} slices of "
            f"{self.slice_size:,} consecutive _ids evenly spaced along the _id order (the first and the last "
            f"{self.slice_size:,} included) and {self.random_size:,} from $sample"
        )


def sample(collection: Collection, size: int) -> Sample:
    """``size`` documents from across the whole ``_id`` range, or the whole collection if it is no larger.

    Half come in ``SLICES`` runs of consecutive ``_id``s (``_slices``), so a
    field that only recent documents have is seen; the other half comes from
    ``$sample``, so nothing between the slices is left out.
    """
    estimated = collection.estimated_document_count()
    if estimated <= size:
        everything = collection.find({}, {"_id": 1}, sort=[("_id", 1)], max_time_ms=READ_TIME_LIMIT_MS)
        return Sample(estimated, [document["_id"] for document in everything], whole=True)
    slice_size = size // (2 * SLICES)
    random_size = size - SLICES * slice_size
    ids: dict[str, Any] = {}  # by id_key: a document taken twice is read once
    for document in chain(_slices(collection, estimated, slice_size), _at_random(collection, random_size)):
        ids.setdefault(id_key(document["_id"]), document["_id"])
    return Sample(estimated, list(ids.values()), slice_size, random_size)


def _slices(collection: Collection, estimated: int, slice_size: int) -> Iterator[dict]:
    """The ``_id``s of ``SLICES`` runs whose starts are evenly spaced from the first ``_id`` to the last.

    Half of the runs are counted from the end (a skip on the ``_id`` index in
    descending order), so the last documents are read even when the server's
    estimate of the count is off.
    """
    for number in range(SLICES):
        from_the_end = number >= SLICES // 2
        step = number if not from_the_end else SLICES - 1 - number
        yield from collection.find(
            {},
            {"_id": 1},
            sort=[("_id", -1 if from_the_end else 1)],
            skip=round(step * (estimated - slice_size) / (SLICES - 1)),
            limit=slice_size,
            hint=[("_id", 1)],
            max_time_ms=READ_TIME_LIMIT_MS,
        )


def _at_random(collection: Collection, size: int) -> Iterator[dict]:
    pipeline = [{"$sample": {"size": size}}, {"$project": {"_id": 1}}]
    yield from collection.aggregate(pipeline, maxTimeMS=READ_TIME_LIMIT_MS)


# --- what the server counts -------------------------------------------------------------------------------


def observe(
    collection: Collection, sampled: Sample, progress: Callable[[int], None] = lambda read: None
) -> Observed:
    """The server's counts of every path and type in the sampled documents, a batch of ``_id``s at a time,
    each within ``READ_TIME_LIMIT_MS``; ``progress`` hears how many documents are read after each batch."""
    source = collection.with_options(codec_options=_CODEC_OPTIONS)
    observed = Observed()
    for start in range(0, len(sampled.ids), IDS_PER_AGGREGATION):
        batch = sampled.ids[start : start + IDS_PER_AGGREGATION]
        pipeline = [{"$match": {"_id": {"$in": batch}}}, *paths_pipeline()]
        for row in source.aggregate(pipeline, allowDiskUse=True, maxTimeMS=READ_TIME_LIMIT_MS):
            observed.add(row)
        progress(start + len(batch))
    return observed


class Observed:
    """The sample's paths, the BSON types at each (named as the contract names them) and their evidence."""

    def __init__(self) -> None:
        self.seen: dict[tuple, dict[str, Seen]] = {}
        self.places: dict[tuple, dict[str, int]] = {}  # below each path: its field names and their places

    def add(self, row: dict) -> None:
        """A row of the aggregation; a binary of subtype 4 is a ``uuid``, any other a ``binData``."""
        path, server_type = tuple(row["_id"]["p"]), row["_id"]["t"]
        seen = Seen(row["count"], row["place"], row["low"], row["high"], set(row["decimals"]), nul=row["nul"])
        if server_type == "binData":
            subtypes = Counter(0 if type(binary) is bytes else binary.subtype for binary in row["binaries"])
            if uuids := subtypes.pop(_UUID_SUBTYPE, 0):
                self._add(path, "uuid", Seen(uuids, row["place"], subtypes=Counter({_UUID_SUBTYPE: uuids})))
            seen = Seen(row["count"] - uuids, row["place"], subtypes=subtypes)
            seen.unread_binaries = row["count"] - len(row["binaries"])
        if seen.count:
            self._add(path, _DEPRECATED_TYPE_NAMES.get(server_type, server_type), seen)
        if path and path[-1] is not ELEMENT:
            places = self.places.setdefault(path[:-1], {})
            places[path[-1]] = min(places.get(path[-1], row["place"]), row["place"])

    def _add(self, path: tuple, bson_type: str, seen: Seen) -> None:
        if bson_type in (types := self.seen.setdefault(path, {})):
            types[bson_type].merge(seen)
        else:
            types[bson_type] = seen

    @property
    def documents(self) -> int:
        return self.seen[()]["object"].count if () in self.seen else 0

    def at(self, path: tuple) -> dict[str, Seen]:
        return self.seen.get(path, {})

    def field_names(self, path: tuple) -> list[str]:
        """The fields below ``path``, in the order the documents have them."""
        places = self.places.get(path, {})
        return sorted(places, key=lambda name: (places[name], name))


@dataclass
class Seen:
    """What the sample holds at one path in one BSON type."""

    count: int
    place: int  # the smallest place among its siblings: the order of the file
    low: Any = None  # the smallest date, int, string length or array length
    high: Any = None
    decimals: set[str] = field(default_factory=set)  # each Decimal128's text, once
    subtypes: Counter = field(default_factory=Counter)  # of the binaries read
    unread_binaries: int = 0  # over SMALL_BINARY_BYTES: their subtype was not read
    nul: int = 0  # strings holding NUL

    def merge(self, other: Seen) -> None:
        """Add what another batch of the sample saw."""
        self.count += other.count
        self.place = min(self.place, other.place)
        if other.low is not None:
            self.low = other.low if self.low is None else min(self.low, other.low)
            self.high = other.high if self.high is None else max(self.high, other.high)
        self.decimals |= other.decimals
        self.subtypes += other.subtypes
        self.unread_binaries += other.unread_binaries
        self.nul += other.nul


# --- the aggregation --------------------------------------------------------------------------------------

# A row per (path, type): how many, the first place among siblings, and the evidence (see _summary).
_BY_PATH_AND_TYPE = {
    "_id": {"p": "$seen.p", "t": "$seen.t"},
    "count": {"$sum": 1},
    "place": {"$min": "$seen.i"},
    "low": {"$min": "$seen.x"},
    "high": {"$max": "$seen.x"},
    "decimals": {"$addToSet": "$seen.d"},
    "binaries": {"$push": "$seen.b"},
    "nul": {"$sum": "$seen.z"},
}


def paths_pipeline() -> list[dict]:
    """Each document as its paths, grouped by path and ``$type``: a row per (path, type), with the evidence.

    A document becomes the entries ``{p: path, v: value, i: place among its
    siblings}`` of its fields, then of their fields and elements, one
    ``$project`` per level down to ``MAX_DEPTH``. Each entry is summarised
    (``seen``: its type and the value its evidence needs) when it is reached;
    only objects and arrays go on to the next level. The document itself is the
    path ``[]``, so its count is the number of documents read.
    """
    everything_but_id = {
        "$filter": {
            "input": {"$objectToArray": "$$ROOT"},
            "as": "field",
            "cond": {"$ne": ["$$field.k", "_id"]},
        }
    }
    document = {"$literal": [{"p": [], "t": "object", "i": 0}]}
    first = {"$project": {"_id": 0, "seen": document, "next": _fields(everything_but_id, [])}}
    levels = [_level(depth) for depth in range(1, MAX_DEPTH + 1)]
    return [first, *levels, {"$unwind": "$seen"}, {"$group": _BY_PATH_AND_TYPE}]


def _level(depth: int) -> dict:
    """The stage that summarises one level's entries and, above ``MAX_DEPTH``, finds the next level's."""
    summaries = {"$map": {"input": "$next", "as": "entry", "in": _summary("$$entry")}}
    level = {"seen": {"$concatArrays": ["$seen", summaries]}}
    if depth < MAX_DEPTH:
        below = {"$let": {"vars": {"entry": "$$this"}, "in": _below("$$entry")}}
        level["next"] = {
            "$reduce": {"input": "$next", "initialValue": [], "in": {"$concatArrays": ["$$value", below]}}
        }
    return {"$project": level}


def _fields(key_values: Any, path: Any) -> dict:
    """The entries of an object's fields (``key_values``: its ``$objectToArray``), each with its place."""
    field_entry = {
        "p": {"$concatArrays": [path, ["$$field.k"]]},
        "v": "$$field.v",
        "i": {"$arrayElemAt": ["$$pair", 1]},
    }
    return {
        "$let": {
            "vars": {"fields": key_values},
            "in": {
                "$map": {
                    "input": {"$zip": {"inputs": ["$$fields", {"$range": [0, {"$size": "$$fields"}]}]}},
                    "as": "pair",
                    "in": {"$let": {"vars": {"field": {"$arrayElemAt": ["$$pair", 0]}}, "in": field_entry}},
                }
            },
        }
    }


def _below(entry: str) -> dict:
    """The entries one level below an entry: an object's fields, an array's first elements, else none."""
    element = {"p": {"$concatArrays": [f"{entry}.p", [ELEMENT]]}, "v": "$$element", "i": 0}
    first_elements = {"$slice": [f"{entry}.v", ARRAY_ELEMENTS]}
    return {
        "$switch": {
            "branches": [
                {
                    "case": {"$eq": [{"$type": f"{entry}.v"}, "object"]},
                    "then": _fields({"$objectToArray": f"{entry}.v"}, f"{entry}.p"),
                },
                {
                    "case": {"$isArray": f"{entry}.v"},
                    "then": {"$map": {"input": first_elements, "as": "element", "in": element}},
                },
            ],
            "default": [],
        }
    }


def _summary(entry: str) -> dict:
    """An entry as its path, place and ``$type``, with the value its type's evidence needs.

    ``x``: see ``_extreme``; ``d``: a Decimal128 as text (for its digits);
    ``b``: a small binary (for its subtype); ``z``: 1 for a string holding NUL.
    """
    value = f"{entry}.v"

    def when(bson_type: str, then: Any) -> dict:
        return {"$cond": [{"$eq": ["$$type", bson_type]}, then, "$$REMOVE"]}

    small = {"$lte": [{"$binarySize": value}, SMALL_BINARY_BYTES]}
    holds_nul = {"$gte": [{"$indexOfBytes": [value, "\x00"]}, 0]}
    return {
        "$let": {
            "vars": {"type": {"$type": value}},
            "in": {
                "p": f"{entry}.p",
                "i": f"{entry}.i",
                "t": "$$type",
                "x": _extreme(value),
                "d": when("decimal", {"$toString": value}),
                "b": when("binData", {"$cond": [small, value, "$$REMOVE"]}),
                "z": when("string", {"$cond": [holds_nul, 1, "$$REMOVE"]}),
            },
        }
    }


def _extreme(value: str) -> dict:
    """What the group keeps the smallest and the largest of: a date, an int or long, a string's length or
    an array's length (``$$type`` is the value's type)."""
    return {
        "$switch": {
            "branches": [
                {"case": {"$in": ["$$type", ["date", "int", "long"]]}, "then": value},
                {"case": {"$eq": ["$$type", "string"]}, "then": {"$strLenCP": value}},
                {"case": {"$eq": ["$$type", "array"]}, "then": {"$size": value}},
            ],
            "default": "$$REMOVE",
        }
    }
