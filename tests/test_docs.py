"""The documentation: every measured figure carries the command that produced it and its date."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
FIGURE = re.compile(r"\d[\d,.]*\s?(?:s|ms|min|MB|GB|kB|\u00d7|documents/s)(?!\w)")
COMMAND = re.compile(r"(?:bash scripts/[\w-]+\.sh|\.venv/bin/\w+|CI=true bash \.ci/run)")
DATE = re.compile(r"20\d\d-\d\d-\d\d")


def sections(page: Path) -> list[tuple[str, str]]:
    """A page's sections (## and ###), each with its text."""
    parts = re.split(r"(?m)^(#{1,3} .*)$", page.read_text())
    return list(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda page: page.name)
def test_every_measured_figure_carries_its_command_and_date(page):
    for title, text in sections(page):
        measured = (page.name == "performance.md" and FIGURE.search(text)) or "measured" in text.lower()
        if measured:
            assert COMMAND.search(text), f"{page.name} {title}: a figure without the command that produced it"
            assert DATE.search(text), f"{page.name} {title}: a figure without its date"
