"""The fast COPY text path loads exactly what the straightforward path loads.

The straightforward path hands Python values to psycopg's ``write_row`` and
lets psycopg do the COPY escaping; the fast path writes COPY text itself. Both
load into real PostgreSQL tables, which must then hold the same rows.
"""

import datetime as dt

import bson
from bson.int64 import Int64
from bson.objectid import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mongo_migration import target
from mongo_migration.documents import CODEC_OPTIONS, COLUMNS, copy_rows, id_key, to_extended_json
from tests.staging import reset_staging, staged

# PostgreSQL's text and jsonb cannot hold NUL; every other character may appear,
# and those that COPY or JSON must escape appear often.
text = st.text(
    st.sampled_from('\t\n\r\\"\b\x7f é€😀')
    | st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
    max_size=20,
)
keys = st.text(st.characters(exclude_characters="\x00.$", exclude_categories=["Cs"]), min_size=1, max_size=8)
scalars = (
    text
    | st.integers(-(2**31), 2**31 - 1)
    | st.integers(-(2**63), 2**63 - 1).map(Int64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none()
    | st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda value: value.replace(microsecond=value.microsecond // 1000 * 1000)
    )
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
documents = st.fixed_dictionaries(
    {"_id": st.builds(ObjectId)},
    optional={"username": text | values, "email": text, "age": values, "created_at": values, "extra": values},
)


def straightforward_row(document: dict) -> tuple:
    """The row as plain Python values, the way one would write it without a profile in hand."""
    age, created_at = document.get("age"), document.get("created_at")
    return (
        id_key(document["_id"]),
        document.get("username") if isinstance(document.get("username"), str) else None,
        document.get("email") if isinstance(document.get("email"), str) else None,
        age if isinstance(age, int) and not isinstance(age, bool) and -(2**31) <= age < 2**31 else None,
        created_at.replace(tzinfo=dt.UTC) if isinstance(created_at, dt.datetime) else None,
        to_extended_json(document),
        7,
    )


def load(pg_conn, table: str, rows_by_path) -> list:
    reset_staging(pg_conn, table)
    with pg_conn.cursor() as cursor, cursor.copy(target.statement("copy_page", table)) as copy:
        rows_by_path(copy)
    columns = ", ".join(COLUMNS)
    return pg_conn.execute(f"SELECT {columns} FROM {staged(table)} ORDER BY _id").fetchall()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(documents, min_size=1, max_size=5, unique_by=lambda document: document["_id"]))
def test_fast_copy_text_loads_the_same_rows_as_psycopg_write_row(pg_conn, target_table, batch):
    raw_batch = b"".join(map(bson.encode, batch))
    decoded = bson.decode_all(raw_batch, CODEC_OPTIONS)

    def straightforward(copy):
        for document in decoded:
            copy.write_row(straightforward_row(document))

    def fast(copy):
        copy.write(copy_rows(raw_batch, 7).rows)

    assert load(pg_conn, target_table, fast) == load(pg_conn, target_table, straightforward)
