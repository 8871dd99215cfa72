"""The documentation: every measured figure carries the command that produced it and its date."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
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


def architecture_layers() -> list[list[str]]:
    """The modules of each layer, top first, as docs/architecture.md's first text block names them."""
    block = (DOCS / "architecture.md").read_text().split("## Layers", 1)[1].split("```text\n", 1)[1]
    lines = block.split("```", 1)[0].splitlines()
    return [re.findall(r"\S+\.py", line) for line in lines]


def module_name(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def test_the_architecture_page_names_every_module_and_no_import_goes_up_a_layer():
    layers = architecture_layers()
    plugins = ROOT / "plugins" / "mongo_migration"
    named = [path for layer in layers for path in layer]
    modules = {str(path.relative_to(plugins)) for path in plugins.rglob("*.py")} - {"__init__.py"}
    modules |= {f"dags/{path.name}" for path in (ROOT / "dags").glob("*.py")}
    assert sorted(named) == sorted(modules), "docs/architecture.md's layers and the code's modules differ"
    layer_of = {module_name(path): index for index, layer in enumerate(layers) for path in layer}
    for path in named:
        file = ROOT / path if path.startswith("dags/") else plugins / path
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mongo_migration"):
                imported = node.module.removeprefix("mongo_migration").lstrip(".")
                for name in [imported] if imported else [alias.name for alias in node.names]:
                    if name.startswith(module_name(path) + "."):
                        continue  # a package's own modules
                    assert layer_of[name] > layer_of[module_name(path)], (
                        f"{path} imports {name}, not below it"
                    )
