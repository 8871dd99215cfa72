"""A page's memory stays bounded however many of its documents are set aside, on the real PostgreSQL.

The page runs in a process of its own, as a task would, so that its peak
resident memory is the page's: 600 documents of 1 MB (twice the target), every
one of them rejected (a NUL character), in batches of at most 16 MB as a server
sends them. (Measured here: 245 MB with the bound, the test fails without it.)
"""

import os
import subprocess
import sys

from tests.staging import staged

PAGE_MEMORY_TARGET_MB = 300  # docs/performance.md: a page task's peak memory
PAGE = """
import resource, sys
import bson
from airflow.providers.postgres.hooks.postgres import PostgresHook
from mongo_migration.documents import Conversion
from mongo_migration.page_copy import copy_page
from mongo_migration.pages import Page
from tests.staging import OUTSIDE_A_RUN, USERS, reset_staging

table, documents, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per_batch = 16 * 2**20 // size

def batches():
    for first in range(0, documents, per_batch):
        numbers = range(first, min(documents, first + per_batch))
        yield b"".join(bson.encode({"_id": n, "blob": "x" * size + "\\x00"}) for n in numbers)

with PostgresHook().get_conn() as conn:
    conn.autocommit = True
    tables = reset_staging(conn, table)
    page = Page(0, 0, documents, True, documents)
    stats = copy_page(batches(), conn, tables, Conversion(USERS), OUTSIDE_A_RUN, page)
print(stats.rejected, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_a_page_whose_every_large_document_is_rejected_stays_within_the_page_memory_target(
    pg_conn, target_table
):
    documents, size = 600, 2**20
    result = subprocess.run(
        [sys.executable, "-c", PAGE, target_table, str(documents), str(size)],
        env=os.environ,
        capture_output=True,
        text=True,
        check=True,
    )
    rejected, peak_mb = map(int, result.stdout.split()[-2:])

    assert rejected == documents
    assert pg_conn.execute(f"SELECT count(*) FROM {staged(target_table + '_rejects')}").fetchone() == (
        documents,
    )
    assert peak_mb < PAGE_MEMORY_TARGET_MB, f"the page peaked at {peak_mb} MB"
