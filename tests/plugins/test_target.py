"""The PostgreSQL side alone: pages of hand-made raw BSON into the real server."""

import bson

from mongo_migration import target
from mongo_migration.documents import id_checksum, id_key
from mongo_migration.pages import Page

GOOD = bson.encode({"_id": 1, "username": "fine"})
WITH_NUL = bson.encode({"_id": 2, "username": "nul\x00inside"})


def test_a_page_writes_rows_and_rejects_together_and_a_rerun_replaces_both(pg_conn, target_table):
    target.reset_table(pg_conn, target_table)
    page = Page(number=4, lower=1, upper=2, upper_inclusive=True, planned_documents=2)

    for _ in range(2):
        stats = target.replace_page(pg_conn, target_table, page, [GOOD + WITH_NUL])

    assert (stats.documents, stats.rejected) == (2, 1)
    assert target.count_rows(pg_conn, target_table) == (1, 1)
    [(key, reason, raw, page_number)] = pg_conn.execute(
        f"SELECT _id, reason, document, page FROM {target_table}_rejects"
    ).fetchall()
    assert (key, bytes(raw), page_number) == (id_key(2), WITH_NUL, 4)
    assert "NUL" in reason


def test_postgresql_computes_the_same_id_checksum_as_the_page(pg_conn, target_table):
    target.reset_table(pg_conn, target_table)
    page = Page(number=0, lower=1, upper=2, upper_inclusive=True, planned_documents=2)

    stats = target.replace_page(pg_conn, target_table, page, [GOOD + WITH_NUL])

    assert stats.id_checksum == id_checksum([id_key(1), id_key(2)])
    assert target.page_checksums(pg_conn, target_table) == {0: (2, stats.id_checksum)}
