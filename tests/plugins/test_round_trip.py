"""Generated documents of every BSON type, with ``_id`` values of every type, through COPY and back.

Each one must come back from the ``document`` jsonb column as the same BSON,
types included, unless it holds what PostgreSQL cannot store (a NUL character,
a field name starting with ``$``): then, and only then, it is in the rejects
table with its bytes as they were. What must be set aside is decided by the
test's own reference (``tests/bson_strategies.py``), not by the code under test.
"""

import bson
from bson import json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from hypothesis import HealthCheck, given, settings

from mongo_migration.documents import Conversion
from mongo_migration.mapping import Mapping
from mongo_migration.page_copy import copy_page
from mongo_migration.pages import Page
from mongo_migration.target import Tables
from tests.bson_equality import canonical_bson
from tests.bson_strategies import documents, must_be_set_aside, reference_key
from tests.staging import OUTSIDE_A_RUN, reset_staging, staged

# No typed columns: the whole document, in the document column.
DOCUMENT_ONLY = Mapping(
    dag_id="documents", source={"database": "d", "collection": "c"}, target={"table": "t"}
)

EXTENDED_JSON = json_util.JSONOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
AS_STORED = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents())
def test_every_document_comes_back_as_the_same_bson_or_only_then_is_a_reject_with_its_bytes(
    pg_conn, target_table, batch
):
    raw_documents = [bson.encode(document) for document in batch]
    tables = reset_staging(pg_conn, Tables("public", target_table, DOCUMENT_ONLY))
    page = Page(0, 0, 1, True, len(batch))

    stats = copy_page(
        [b"".join(raw_documents)], pg_conn, tables, Conversion(DOCUMENT_ONLY), OUTSIDE_A_RUN, page
    )

    rows = dict(pg_conn.execute(f"SELECT _id, document::text FROM {staged(target_table)}").fetchall())
    rejects = dict(
        pg_conn.execute(f"SELECT _id, document FROM {staged(target_table + '_rejects')}").fetchall()
    )
    assert stats.documents == len(batch)
    assert stats.rejected == len(rejects)
    for raw in raw_documents:
        sent = bson.decode(raw, AS_STORED)
        key = reference_key(sent["_id"])
        if must_be_set_aside(sent):
            assert key in rejects and key not in rows
            assert bytes(rejects[key]) == raw
        else:
            assert key in rows and key not in rejects
            back = json_util.loads(rows[key], json_options=EXTENDED_JSON)
            assert canonical_bson(back) == canonical_bson(sent)
