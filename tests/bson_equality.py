"""Comparing documents the way BSON does: values and their types, not Python's looser equality."""

import bson
from bson.code import Code
from bson.dbref import DBRef

from mongo_migration.documents import CODEC_OPTIONS


def canonical_bson(document: dict) -> bytes:
    """The document's BSON with keys sorted at every level, in a code's scope and a DBRef too
    (jsonb keeps no key order).

    Equal only if every value and its type are: Python alone would take 1, 1.0
    and Int64(1) for equal.
    """

    def sort(value):
        if isinstance(value, dict):
            return {key: sort(value[key]) for key in sorted(value)}
        if isinstance(value, list):
            return [sort(item) for item in value]
        if isinstance(value, Code) and value.scope is not None:
            return Code(str(value), sort(value.scope))
        if isinstance(value, DBRef):
            extra = {key: item for key, item in value.as_doc().items() if key not in ("$ref", "$id", "$db")}
            return DBRef(value.collection, sort(value.id), value.database, **sort(extra))
        return value

    return bson.encode(sort(document), codec_options=CODEC_OPTIONS)
