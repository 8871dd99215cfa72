"""Where and when a benchmark ran, written beside every figure it reports."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path


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
