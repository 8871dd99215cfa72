"""Where and when a benchmark ran, written beside every figure it reports, and where its results go."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def measured_on() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def machine() -> str:
    """The processor, cores, memory, OS and Python of this machine."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    model = models[0] if models else platform.machine()
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{model}, {len(os.sched_getaffinity(0))} cores, {memory_kib / 2**20:.0f} GiB, "
        f"{platform.freedesktop_os_release().get('PRETTY_NAME', platform.system())}, "
        f"Python {platform.python_version()}"
    )


def save_results(name: str, figures: dict, markdown: str) -> None:
    """``results/<name>.json`` and ``results/<name>.md``, and the Markdown on the console."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    print(markdown)
