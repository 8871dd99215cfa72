"""A test-only switch that pauses a page at a chosen row, so a fault test can strike mid-COPY.

Off unless the environment variable ``MONGO_MIGRATION_PAUSE_FILE`` names a file
that exists. The file holds ``<page> <row>``: the first try of that page, once it
has handed at least ``<row>`` documents to COPY (0: before its first read),
writes its process id to ``<file>.paused`` and waits until ``<file>.resume``
exists, for ten minutes at most. Retries never pause.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

PAUSE_FILE_VARIABLE = "MONGO_MIGRATION_PAUSE_FILE"
MAX_PAUSE_SECONDS = 600


def pausing(raw_batches: Iterable[bytes], page: int, try_number: int) -> Iterator[bytes]:
    """The batches, with a pause before the first one read after the chosen row."""
    setting = os.environ.get(PAUSE_FILE_VARIABLE)
    pause_file = Path(setting) if setting else None
    if try_number != 1 or pause_file is None or not pause_file.exists():
        yield from raw_batches
        return
    pause_page, pause_row = map(int, pause_file.read_text().split())
    if pause_page != page:
        yield from raw_batches
        return
    documents = 0
    batches = iter(raw_batches)
    while True:
        if documents >= pause_row:
            _pause(pause_file)
            pause_row = float("inf")
        batch = next(batches, None)
        if batch is None:
            return
        documents += _count_documents(batch)
        yield batch


def _pause(pause_file: Path) -> None:
    announcing = Path(f"{pause_file}.paused.tmp")
    announcing.write_text(str(os.getpid()))
    announcing.rename(f"{pause_file}.paused")  # whole or not at all
    resume = Path(f"{pause_file}.resume")
    deadline = time.monotonic() + MAX_PAUSE_SECONDS
    while not resume.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _count_documents(raw_batch: bytes) -> int:
    """The documents in a batch of BSON documents laid end to end, each starting with its length."""
    count = offset = 0
    while offset < len(raw_batch):
        offset += int.from_bytes(raw_batch[offset : offset + 4], "little")
        count += 1
    return count
