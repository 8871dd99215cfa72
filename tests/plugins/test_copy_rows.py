"""The fast COPY text path loads exactly the rows that a straightforward, independent path loads.

The reference builds each row from the document's own values and lets
psycopg's ``write_row`` do the COPY escaping, with the document written by
``bson.json_util`` (canonical Extended JSON); it calls nothing of the code
under test. Both load into real PostgreSQL tables; the typed columns must be
equal as PostgreSQL holds them, the ``document`` columns must read back as the
same BSON, and exactly the documents the reference sets aside must be rejected.
"""

import datetime as dt

import bson
from bson import json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.int64 import Int64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mongo_migration import target
from mongo_migration.documents import copy_rows
from tests.bson_equality import canonical_bson
from tests.bson_strategies import documents, must_be_set_aside, reference_key, text, values
from tests.staging import reset_staging, staged

AS_STORED = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
EXTENDED_JSON = json_util.JSONOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
PAGE = 7
# The user fields that have typed columns, often of the expected type, often not.
user_fields = st.one_of(
    text,
    values,
    st.integers(-(2**31) - 2, 2**31 + 1),
    st.integers(-(2**33), 2**33).map(Int64),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
)


def reference_row(document: dict) -> tuple:
    """The row as the README describes it, from the document's values."""

    def text_or_null(value):
        return value if type(value) is str else None

    age, created_at = document.get("age"), document.get("created_at")
    return (
        reference_key(document["_id"]),
        text_or_null(document.get("username")),
        text_or_null(document.get("email")),
        age if type(age) in (int, Int64) and -(2**31) <= age < 2**31 else None,
        created_at.replace(tzinfo=dt.UTC) if type(created_at) is dt.datetime else None,
        json_util.dumps(document, json_options=json_util.CANONICAL_JSON_OPTIONS),
        PAGE,
    )


def load(pg_conn, table: str, write) -> dict:
    reset_staging(pg_conn, table)
    with pg_conn.cursor() as cursor, cursor.copy(target.statement("copy_page", table)) as copy:
        write(copy)
    rows = pg_conn.execute(
        f"SELECT _id, username, email, age, created_at, page, document::text FROM {staged(table)}"
    ).fetchall()
    return {
        row[0]: (*row[:6], canonical_bson(json_util.loads(row[6], json_options=EXTENDED_JSON)))
        for row in rows
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents(st.one_of(user_fields, values)), st.data())
def test_fast_copy_text_loads_the_same_rows_as_psycopg_write_row_over_the_documents_values(
    pg_conn, target_table, batch, data
):
    for document in batch:  # the typed columns' fields, present more often than chance would make them
        for field in data.draw(st.sets(st.sampled_from(["username", "email", "age", "created_at"]))):
            document[field] = data.draw(user_fields)
    raw_batch = b"".join(map(bson.encode, batch))
    as_stored = [bson.decode(bson.encode(document), AS_STORED) for document in batch]
    kept = [document for document in as_stored if not must_be_set_aside(document)]

    fast = copy_rows(raw_batch, PAGE)

    assert sorted(reject.key for reject in fast.rejects) == sorted(
        reference_key(document["_id"]) for document in as_stored if must_be_set_aside(document)
    )
    assert fast.documents == len(batch)
    loaded_fast = load(pg_conn, target_table, lambda copy: copy.write(fast.rows))
    loaded_reference = load(
        pg_conn, target_table, lambda copy: [copy.write_row(reference_row(document)) for document in kept]
    )
    assert loaded_fast == loaded_reference
