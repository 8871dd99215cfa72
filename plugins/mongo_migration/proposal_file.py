"""The proposal as a mapping file: rendered with its evidence as comments, checked by loading it as
the DAGs will, and written whole, never over a file unless asked."""

from __future__ import annotations

import math
import os
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import yaml

from include import config
from mongo_migration.mapping import MappingError, load_mapping
from mongo_migration.proposal import Note, Proposal, ProposedChild, ProposedColumn
from mongo_migration.type_survey import ARRAY_ELEMENTS, MAX_DEPTH, SMALL_BINARY_BYTES

COMMENT_WIDTH = 110  # of the file's comment lines


class ProposeError(Exception):
    """A proposal that cannot be made or written; the message says what and why."""


# --- the file ---------------------------------------------------------------------------------------------


def render(proposal: Proposal, command: str) -> str:
    """The mapping file: a header for the person who reviews it, then the mapping with its evidence."""
    lines = [*_header(proposal, command), *_comment_lines([], proposal.flags, "")]
    lines += _yaml_lines(
        {
            "dag_id": proposal.dag_id,
            "description": f"{proposal.collection} (proposed from its data), MongoDB → PostgreSQL.",
            "source": {"database": proposal.database, "collection": proposal.collection},
            "target": {"schema": proposal.schema, "table": proposal.table},
        }
    )
    lines.append(
        '# A cron expression or preset ("30 2 * * *", "@daily") runs it on a schedule; null: when triggered.'
    )
    lines += _yaml_lines({"schedule": None})
    lines.append('# The whole document as Extended JSON in the column "document", beside the typed columns.')
    lines += _yaml_lines({"keep_document": True})
    items = [item for item in proposal.items if not isinstance(item, ProposedChild)]
    lines.append("columns:" if proposal.columns() else "columns: []")
    lines += [line for item in items for line in _item_lines(item, "  ")]
    if proposal.children():
        lines.append("children:")
        lines += [line for child in proposal.children() for line in _child_lines(child, "  ")]
    return "\n".join(lines) + "\n"


def _header(proposal: Proposal, command: str) -> list[str]:
    """Where the file comes from, what to do with it, and what the sample was."""
    taken_at = proposal.sampled.taken_at.strftime("%Y-%m-%d %H:%M UTC")
    paragraphs = [
        f"Review it, then commit it: the DAG {proposal.dag_id} appears once this file is in "
        "include/mappings/. Check each column's type, nullable and name against the evidence above it, "
        f"and decide each FLAGGED line ({proposal.flag_count()} in this file): the data could not.",
        f"The sample: {proposal.sampled.described()}. The server counted the BSON types ($type) at every "
        f"path of the {proposal.documents:,} documents read, following objects {MAX_DEPTH} levels deep and "
        f"the first {ARRAY_ELEMENTS} elements of each array (an element is shown as []). Missing and null "
        "are shares of those documents (of the elements, in a child table). The Decimal128 digits and the "
        f"subtypes of binaries up to {SMALL_BINARY_BYTES} bytes were worked out in Python from the values "
        "the server returned.",
    ]
    lines = [f"# PROPOSED from the data of {proposal.database}.{proposal.collection} on {taken_at} by"]
    lines.append(f"#   {command}")
    for paragraph in paragraphs:
        lines += [
            "#",
            *textwrap.wrap(paragraph, width=COMMENT_WIDTH, initial_indent="# ", subsequent_indent="# "),
        ]
    return lines


def _item_lines(item: ProposedColumn | Note, indent: str) -> list[str]:
    if isinstance(item, Note):
        return _comment_lines(item.lines, item.flags, indent)
    column = {
        "name": item.name,
        "path": list(item.path),
        "type": item.type,
        "accepts": list(item.accepts),
        "nullable": item.nullable,
        "on_violation": "reject",
    }
    return _comment_lines(item.evidence, item.flags, indent) + [
        indent + line for line in _yaml_list_item(column)
    ]


def _child_lines(child: ProposedChild, indent: str) -> list[str]:
    head = {
        "name": child.name,
        "path": list(child.path),
        "nullable": child.nullable,
        "on_violation": "reject",
    }
    lines = _comment_lines(child.evidence, child.flags, indent)
    lines += [indent + line for line in _yaml_list_item(head)]
    lines.append(f"{indent}  columns:")
    return lines + [line for item in child.items for line in _item_lines(item, indent + "    ")]


def _comment_lines(evidence: list[str], flags: list[str], indent: str) -> list[str]:
    """Comment lines of at most ``COMMENT_WIDTH`` characters; what goes on continues indented."""
    lines = [(f"{indent}# ", line) for line in evidence] + [(f"{indent}# FLAGGED: ", flag) for flag in flags]
    return [
        wrapped
        for start, text in lines
        for wrapped in textwrap.wrap(
            text,
            width=max(COMMENT_WIDTH, len(start) + 40),
            initial_indent=start,
            subsequent_indent=f"{indent}#   ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    ]


class _MappingDumper(yaml.SafeDumper):
    """YAML as the mappings are written by hand: objects as blocks, lists (paths, accepts) on one line."""


_MappingDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def _yaml_lines(data: Any) -> list[str]:
    """``data`` as YAML lines, every field name quoted as YAML needs."""
    text = yaml.dump(
        data,
        Dumper=_MappingDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=math.inf,
    )
    return text.splitlines()


def _yaml_list_item(data: dict) -> list[str]:
    """``data`` as an item of a YAML list: ``- name: ...``, its other keys beneath."""
    first, *rest = _yaml_lines(data)
    return ["- " + first, *("  " + line for line in rest)]


def check(text: str, proposal: Proposal) -> None:
    """Refuse a file that does not load with ``load_mapping``, or loads as anything but the proposal."""
    with tempfile.TemporaryDirectory(prefix="propose-") as scratch:
        written = Path(scratch) / f"{proposal.collection}.yaml"
        written.write_text(text)
        try:
            mapping = load_mapping(written)
        except MappingError as error:
            raise ProposeError(
                f"the proposed mapping does not load, so it was not written:\n{error}"
            ) from None
    loaded = (
        _shape(mapping.columns),
        [(child.name, child.path, child.nullable, _shape(child.columns)) for child in mapping.children],
    )
    meant = (
        _shape(proposal.columns()),
        [(child.name, child.path, child.nullable, _shape(child.columns())) for child in proposal.children()],
    )
    if loaded != meant:
        raise ProposeError(
            "the proposed mapping loads as another mapping than proposed, so it was not written"
        )


def _shape(columns: Any) -> list[tuple]:
    """What ``check`` compares of each column, of the file's and of the proposal's alike."""
    return [(column.name, column.path, column.type, column.accepts, column.nullable) for column in columns]


def clashes(out: Path, dag_id: str, schema: str, table: str) -> list[str]:
    """The other mappings beside ``out`` that have its DAG id or write its table."""
    found = []
    for other in sorted(out.parent.glob("*.yaml")):
        if other.resolve() == out.resolve():
            continue
        try:
            data = yaml.safe_load(other.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(data, dict):
            continue
        target = data.get("target") or {}
        if data.get("dag_id") == dag_id:
            found.append(f"{other} has the dag_id {dag_id} (choose another with --dag-id)")
        if (target.get("schema", config.TARGET_SCHEMA), target.get("table")) == (schema, table):
            found.append(f"{other} writes the table {schema}.{table} (choose another with --table)")
    return found


def write(text: str, out: Path, force: bool) -> None:
    """Write the file whole, never half of it; replace a file that is there only when ``force``."""
    with tempfile.NamedTemporaryFile("w", dir=out.parent, prefix=f".{out.name}.", delete=False) as scratch:
        scratch.write(text)
    os.chmod(scratch.name, 0o644)  # readable by Airflow, as a file a person writes is
    try:
        if force:
            os.replace(scratch.name, out)
        else:
            os.link(scratch.name, out)  # refuses a file that appeared meanwhile
    except FileExistsError:
        raise ProposeError(f"{out} exists: pass --force to replace it") from None
    finally:
        Path(scratch.name).unlink(missing_ok=True)
