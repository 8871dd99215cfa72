"""Failpoints: named places in the production path where a fault test can hold a task.

The production code reaches one in a single line, ``failpoint(name, page=..., documents=...)``
(the page and the count are 0 where they mean nothing),
which does nothing unless the environment variable ``MONGO_MIGRATION_FAILPOINT``
names a file that exists. The file holds ``<name> <page> <documents>``: the
first task that reaches failpoint ``<name>`` on page ``<page>`` with at least
``<documents>`` documents behind it takes the file (renamed to ``<file>.taken``,
so no other page and no retry holds again), writes its process id to
``<file>.held`` and waits until ``<file>.resume`` exists, ten minutes at most.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

FAILPOINT_VARIABLE = "MONGO_MIGRATION_FAILPOINT"
MAX_HOLD_SECONDS = 600


def failpoint(name: str, *, page: int = 0, documents: int = 0) -> None:
    """Hold here if a test armed failpoint ``name`` for this page and this many documents."""
    setting = os.environ.get(FAILPOINT_VARIABLE)
    if setting and _take(Path(setting), name, page, documents):
        _hold(Path(setting))


def _take(armed: Path, name: str, page: int, documents: int) -> bool:
    try:
        armed_name, armed_page, armed_documents = armed.read_text().split()
    except FileNotFoundError:
        return False
    except ValueError:
        raise ValueError(f"failpoint file {armed} does not hold '<name> <page> <documents>'") from None
    if (armed_name, int(armed_page)) != (name, page) or documents < int(armed_documents):
        return False
    try:
        armed.rename(f"{armed}.taken")  # one task wins
    except FileNotFoundError:
        return False
    return True


def _hold(armed: Path) -> None:
    announcing = Path(f"{armed}.held.tmp")
    announcing.write_text(str(os.getpid()))
    announcing.rename(f"{armed}.held")  # whole or not at all
    resume = Path(f"{armed}.resume")
    deadline = time.monotonic() + MAX_HOLD_SECONDS
    while not resume.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
