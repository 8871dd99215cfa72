"""Failpoints: named places in the production path where a test can hold a task.

The production code reaches one in a single line, ``failpoint(name, page=..., documents=...)``
(the page and the count are 0 where they mean nothing),
which does nothing unless the environment variable ``MONGO_MIGRATION_FAILPOINT``
names a file that exists. The file holds ``<name> <page> <documents>``: the
first task that reaches failpoint ``<name>`` on page ``<page>`` with at least
``<documents>`` documents behind it takes the file (renamed to ``<file>.taken``,
so no other page and no retry holds again), writes its process id to
``<file>.held`` and waits until ``<file>.resume`` exists, ten minutes at most.
With ``*`` for the page, every page that gets there holds, each announcing
itself in ``<file>.held.<process id>``: a test counts the pages running at once.
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
    if setting and (held := _take(Path(setting), name, page, documents)):
        _hold(Path(setting), held)


def _take(armed: Path, name: str, page: int, documents: int) -> Path | None:
    """Where this task announces it holds, if the armed failpoint is this one."""
    try:
        armed_name, armed_page, armed_documents = armed.read_text().split()
    except FileNotFoundError:
        return None
    except ValueError:
        raise ValueError(f"failpoint file {armed} does not hold '<name> <page> <documents>'") from None
    every_page = armed_page == "*"
    if armed_name != name or not (every_page or int(armed_page) == page) or documents < int(armed_documents):
        return None
    if every_page:
        return Path(f"{armed}.held.{os.getpid()}")
    try:
        armed.rename(f"{armed}.taken")  # one task wins
    except FileNotFoundError:
        return None
    return Path(f"{armed}.held")


def _hold(armed: Path, held: Path) -> None:
    announcing = Path(f"{held}.tmp")
    announcing.write_text(str(os.getpid()))
    announcing.rename(held)  # whole or not at all
    resume = Path(f"{armed}.resume")
    deadline = time.monotonic() + MAX_HOLD_SECONDS
    while not resume.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
