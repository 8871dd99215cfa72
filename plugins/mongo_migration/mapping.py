"""A mapping: what one collection becomes in PostgreSQL, read and checked from a file in ``include/mappings``.

A mapping names the source collection and the target table, the typed columns
(each a path into the document, a PostgreSQL type, the BSON types it accepts,
whether it may be NULL and what a violation does), the arrays that become
child tables keyed by the parent's ``_id`` and the index in the array, and the
DAG's schedule and defaults. Reading one touches no service: the DAG file
reads them all when it is parsed.

Everything wrong with a file is reported at once, each problem naming the file
and the field (``MappingError``). A pair of BSON and PostgreSQL types that could
lose anything is refused here (``contract.refusal``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from include import config
from mongo_migration import contract
from mongo_migration.run_options import Params

_PROJECT = Path(__file__).resolve().parents[2]
STAGING_SCHEMA = "mongo_migration_staging"
NAME = re.compile(r"[a-z_][a-z0-9_]*")  # a plain lowercase PostgreSQL name, never quoted differently
MAX_NAME_BYTES = 63  # PostgreSQL truncates longer names
# Columns the machinery writes itself: the key, the whole document, the page that wrote the row;
# a child table's rows are keyed by the parent's _id and the index in the array.
RESERVED_COLUMNS = ("_id", "document", "page")
RESERVED_CHILD_COLUMNS = ("_id", "_index", "page")
REJECTS_SUFFIX = "_rejects"


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file, each field and what is wrong."""


def plain_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a plain lowercase PostgreSQL name (letters a-z, digits and _, "
            "not starting with a digit)"
        )
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"{name!r} is longer than PostgreSQL's {MAX_NAME_BYTES} bytes")
    return name


PlainName = Annotated[str, AfterValidator(plain_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")


def _path_of_one_field(path: object) -> object:
    """A path written as one string: a field name (``path: status``) is that one field; one with a dot is
    refused by name rather than guessed at, since a field name may hold a dot."""
    if not isinstance(path, str):
        return path
    if "." in path:
        fields = ", ".join(path.split("."))
        raise ValueError(
            f"{path!r} is one string: write the field names as a list, [{fields}] (or [{path!r}] for one "
            "field whose name holds a dot)"
        )
    return (path,)


class Column(_Strict):
    """A typed column: the value at ``path`` in the document (or in an array's element)."""

    name: PlainName
    path: tuple[str, ...] = Field(description="field names from the document down; [] is the element itself")
    type: str
    accepts: tuple[str, ...] = ()  # filled with the type's defaults when left out
    # A BSON type the column cannot hold exactly, converted by a declared rule (contract.COERCIONS)
    coerce: dict[str, str] = {}
    nullable: bool = True  # a missing field or a null is NULL; else the document is a violation
    on_violation: Literal["reject", "fail"] = "reject"

    @field_validator("type")
    @classmethod
    def _known_type(cls, declared: str) -> str:
        return contract.column_type(declared)

    _one_field = field_validator("path", mode="before")(_path_of_one_field)

    @field_validator("path")
    @classmethod
    def _field_names(cls, path: tuple[str, ...]) -> tuple[str, ...]:
        if any(not key for key in path):
            raise ValueError("a field name in a path cannot be empty")
        return path

    @model_validator(mode="after")
    def _exact_pairs(self) -> Column:
        if not self.accepts:
            object.__setattr__(self, "accepts", contract.DEFAULT_ACCEPTS[contract.base_type(self.type)])
        if "null" in self.accepts:
            raise ValueError("accepts: null is not a type to accept: set nullable: true")
        problems = [problem for name in self.accepts if (problem := contract.refusal(name, self.type))]
        if problems:
            raise ValueError("accepts: " + "; ".join(problems))
        problems = [
            f"{name}: {problem}"
            for name, coercion in self.coerce.items()
            if (problem := contract.coercion_refusal(name, coercion, self.type))
        ]
        if problems:
            raise ValueError("coerce: " + "; ".join(problems))
        return self


class Child(_Strict):
    """An array of the document as a table of its own: a row per element, keyed by (_id, _index)."""

    name: PlainName  # the table is <target table>_<name>
    path: tuple[str, ...]
    nullable: bool = True  # a missing or null array has no rows; else the document is a violation
    on_violation: Literal["reject", "fail"] = "reject"
    columns: tuple[Column, ...]

    _one_field = field_validator("path", mode="before")(_path_of_one_field)

    @field_validator("path")
    @classmethod
    def _a_field(cls, path: tuple[str, ...]) -> tuple[str, ...]:
        if not path or any(not key for key in path):
            raise ValueError("the array's path needs at least one field name, none empty")
        return path

    @field_validator("columns")
    @classmethod
    def _child_columns(cls, columns: tuple[Column, ...]) -> tuple[Column, ...]:
        _check_column_names(columns, RESERVED_CHILD_COLUMNS)
        return columns


# The source's names as a mapping or a run's Params may give them: no MongoDB operator or path in them.
DATABASE_NAME = r"[A-Za-z0-9_\[\]-]{1,63}"
COLLECTION_NAME = r"(?!system\.)[A-Za-z0-9_.\[\]-]{1,120}"


class Source(_Strict):
    database: str = Field(pattern=rf"^{DATABASE_NAME}$")
    collection: str = Field(pattern=rf"^{COLLECTION_NAME}$")


class Target(_Strict):
    schema_: str = Field(alias="schema", default=config.TARGET_SCHEMA)
    table: str

    @field_validator("schema_")
    @classmethod
    def _schema(cls, schema: str) -> str:
        if schema == STAGING_SCHEMA:
            raise ValueError(f"{STAGING_SCHEMA} holds the staging tables; choose another schema")
        return plain_name(schema)

    @field_validator("table")
    @classmethod
    def _table(cls, table: str) -> str:
        if table.endswith(REJECTS_SUFFIX):
            raise ValueError(f"a name ending in {REJECTS_SUFFIX} is the rejects table of another target")
        return plain_name(table)


class Mapping(_Strict):
    """One collection → one table (and its child tables), and the DAG that copies it."""

    dag_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,200}$")
    description: str = ""
    source: Source
    target: Target
    keep_document: bool = True  # the whole document as Extended JSON in the column "document"
    columns: tuple[Column, ...] = ()
    children: tuple[Child, ...] = ()
    schedule: str | None = None  # a cron expression or preset; none: runs only when triggered
    seed_users: bool = False  # the seed project's fake users (the users DAG only)
    pool: str = config.PAGE_POOL
    params: Params = Params()
    timeout_minutes: dict[str, int] = {}  # per task, and "run" for the whole run; else include/config.py
    file: Path = Field(default=Path("<memory>"), exclude=True)

    @field_validator("columns")
    @classmethod
    def _columns(cls, columns: tuple[Column, ...]) -> tuple[Column, ...]:
        _check_column_names(columns, RESERVED_COLUMNS)
        if any(not column.path for column in columns):
            raise ValueError("a column of the table needs a path of at least one field name")
        return columns

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, schedule: str | None) -> str | None:
        """A cron expression of 5 fields or a preset, checked as Airflow's timetables check it (with
        croniter), so that a typo is this file's error, not one of the DAG file that would take every DAG
        down. croniter also takes a 6th field, of seconds, so "0 0 2 * * *" would run every second of
        midnight on the 2nd: refused here by its count of fields."""
        if schedule is None or schedule in ("@once", "@continuous"):
            return schedule
        fields = schedule.split()
        if not schedule.startswith("@") and len(fields) != 5:
            raise ValueError(
                f"{schedule!r} has {len(fields)} fields; a schedule has 5 (minute hour day month weekday), "
                "e.g. '0 2 * * *' for 02:00 UTC every day, or is a preset such as @daily"
            )
        try:
            croniter(schedule)
        except (ValueError, KeyError) as error:  # croniter's errors are ValueErrors
            raise ValueError(f"{schedule!r} is not a schedule Airflow can run: {error}") from None
        return schedule

    @field_validator("timeout_minutes")
    @classmethod
    def _timeouts(cls, timeouts: dict[str, int]) -> dict[str, int]:
        unknown = set(timeouts) - {"run", "deadline", *config.TASK_TIMEOUTS}
        if unknown:
            raise ValueError(
                f"unknown tasks {sorted(unknown)}; tasks: run, deadline, {', '.join(config.TASK_TIMEOUTS)}"
            )
        if any(minutes < 1 for minutes in timeouts.values()):
            raise ValueError("a timeout is at least 1 minute")
        return timeouts

    @model_validator(mode="after")
    def _names_fit(self) -> Mapping:
        names = [child.name for child in self.children]
        if len(set(names)) != len(names):
            raise ValueError("children: two arrays with the same name")
        check_relation_names(self.target.schema_, self.target.table, self)
        return self

    def relations(self, table: str) -> list[str]:
        """The tables a target table ``table`` comes with: itself, its rejects table and its children."""
        return [table, table + REJECTS_SUFFIX, *(f"{table}_{child.name}" for child in self.children)]

    def shape(self) -> dict:
        """What decides the rows, as publish records it (``shape_changes`` compares two). A column without
        coercions leaves the key out, so that the versions of mappings written before it stay the same."""
        shape = self.model_dump(mode="json", include={"keep_document", "columns", "children"})
        for column in [
            *shape["columns"],
            *(column for child in shape["children"] for column in child["columns"]),
        ]:
            if not column["coerce"]:
                del column["coerce"]
        return shape

    @property
    def version(self) -> str:
        """A hash of what decides the rows: a different one means the next run copies in full."""
        return hashlib.sha256(json.dumps(self.shape(), sort_keys=True).encode()).hexdigest()[:16]


def shape_changes(published: dict, now: dict) -> list[str]:
    """What changed from one mapping's ``shape`` to another's, column by column, as people read it:
    ``column customer_email: path [customer, email] → [customer, emial]``."""
    changes = []
    if published.get("keep_document") != now.get("keep_document"):
        changes.append(f"keep_document: {published.get('keep_document')} → {now.get('keep_document')}")
    changes += _named_changes("column", published.get("columns", []), now.get("columns", []))
    names = [[column["name"] for column in shape.get("columns", [])] for shape in (published, now)]
    if sorted(names[0]) == sorted(names[1]) and names[0] != names[1]:
        changes.append(f"the columns' order: {', '.join(names[0])} → {', '.join(names[1])}")
    changes += _named_changes("child table", published.get("children", []), now.get("children", []))
    before = {child["name"]: child for child in published.get("children", [])}
    for child in now.get("children", []):
        if child["name"] in before:
            old = before[child["name"]]["columns"]
            changes += _named_changes(f"column {child['name']}.", old, child["columns"], separator="")
    return changes


def changed_columns(published: dict | None, now: dict) -> set[str]:
    """The columns (``child.column`` in a child table) and child tables (``child[]``) that the shape
    ``now`` adds or shapes otherwise than the ``published`` one: what a publish should judge as a
    mapping's change (None: no shape recorded, so all of them)."""
    current, before = _shaped(now), _shaped(published or {})
    return {name for name, item in current.items() if published is None or before.get(name) != item}


def _shaped(shape: dict) -> dict[str, dict]:
    found = {column["name"]: column for column in shape.get("columns", [])}
    for child in shape.get("children", []):
        found[f"{child['name']}[]"] = {key: value for key, value in child.items() if key != "columns"}
        found |= {f"{child['name']}.{column['name']}": column for column in child["columns"]}
    return found


def _named_changes(kind: str, before: list[dict], after: list[dict], separator: str = " ") -> list[str]:
    """Columns (or child tables) removed, added, and changed field by field, by name."""
    old = {item["name"]: item for item in before}
    new = {item["name"]: item for item in after}
    changes = [f"{kind}{separator}{name} removed" for name in old if name not in new]
    for name, item in new.items():
        if name not in old:
            what = f"{item['type']} at " if "type" in item else "the array at "
            changes.append(f"{kind}{separator}{name} added ({what}{_shown_path(item['path'])})")
            continue
        for key, value in item.items():
            if key not in ("name", "columns") and old[name].get(key) != value:
                was, now = old[name].get(key), value
                if key == "path":
                    was, now = _shown_path(was or []), _shown_path(now)
                elif isinstance(value, list):
                    was, now = ", ".join(was or []) or "none", ", ".join(now) or "none"
                elif isinstance(value, dict):
                    was, now = (
                        ", ".join(f"{k}: {v}" for k, v in (d or {}).items()) or "none" for d in (was, now)
                    )
                changes.append(f"{kind}{separator}{name}: {key} {was} → {now}")
    return changes


def _shown_path(path: list[str]) -> str:
    return f"[{', '.join(path)}]"


def check_relation_names(schema: str, table: str, mapping: Mapping) -> None:
    """Refuse a target whose tables, or their staging names ``<schema>.<table>``, PostgreSQL would
    truncate, or that one name would give twice."""
    relations = mapping.relations(table)
    for relation in relations:
        plain_name(relation)
        staged = f"{schema}.{relation}"
        if len(staged.encode()) > MAX_NAME_BYTES:
            raise ValueError(
                f'the staging table {STAGING_SCHEMA}."{staged}" would be longer than PostgreSQL\'s '
                f"{MAX_NAME_BYTES} bytes: use a shorter schema, table or child name"
            )
    if len(set(relations)) != len(relations):
        raise ValueError(f"a child table's name is the table's rejects table: {relations}")


def _check_column_names(columns: tuple[Column, ...], reserved: tuple[str, ...]) -> None:
    names = [column.name for column in columns]
    taken = sorted({name for name in names if name in reserved})
    if taken:
        raise ValueError(f"{taken} are the machinery's own columns ({', '.join(reserved)})")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"columns named twice: {twice}")


def load_mapping(path: Path) -> Mapping:
    """The mapping in a YAML file, checked; ``MappingError`` naming the file and every problem."""
    where = _shown(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise MappingError(f"{where}: cannot be read as YAML: {error}") from None
    if not isinstance(data, dict):
        raise MappingError(f"{where}: a mapping is a YAML object (dag_id, source, target, columns, ...)")
    try:
        return Mapping.model_validate({**data, "file": path})
    except ValidationError as error:
        problems = [
            f"{where}: {_field(problem['loc'], data)}: {_message(problem)}" for problem in error.errors()
        ]
        raise MappingError("\n".join(problems)) from None


def load_mappings(folder: Path | None = None) -> tuple[list[Mapping], list[MappingError]]:
    """Every mapping of the folder (``config.MAPPINGS_DIR`` by default; ``*.yaml``, by file name), and the
    errors of those that cannot be used.

    Two files that give the same DAG id, or write one table, are both refused: which one would win is
    no decision a file name should make.
    """
    loaded, errors = [], []
    for path in sorted((folder or config.MAPPINGS_DIR).glob("*.y*ml")):
        try:
            loaded.append(load_mapping(path))
        except MappingError as error:
            errors.append(error)
    clashes = {mapping.file: _clashes(mapping, loaded) for mapping in loaded}
    errors += [MappingError("\n".join(found)) for found in clashes.values() if found]
    return [mapping for mapping in loaded if not clashes[mapping.file]], errors


def _clashes(mapping: Mapping, others: list[Mapping]) -> list[str]:
    """What ``mapping`` shares with another file: its DAG id, or a table it writes."""
    found = []
    tables = {(mapping.target.schema_, relation) for relation in mapping.relations(mapping.target.table)}
    for other in others:
        if other.file == mapping.file:
            continue
        shared = tables & {
            (other.target.schema_, relation) for relation in other.relations(other.target.table)
        }
        if other.dag_id == mapping.dag_id:
            found.append(
                f"{_shown(mapping.file)}: dag_id: {mapping.dag_id!r} is also the DAG of {_shown(other.file)}"
            )
        elif shared:
            names = ", ".join(sorted(f"{schema}.{relation}" for schema, relation in shared))
            found.append(f"{_shown(mapping.file)}: target: {names} is also written by {_shown(other.file)}")
    return found


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice (plain YAML keeps the last one, silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        twice = sorted({str(key) for key in keys if keys.count(key) > 1})
        if twice:
            raise yaml.constructor.ConstructorError(None, None, f"keys given twice: {twice}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _shown(path: Path) -> str:
    """The file as people know it: relative to the project when it is inside it."""
    try:
        return str(path.resolve().relative_to(_PROJECT))
    except ValueError:
        return str(path)


def _field(location: tuple, data: dict) -> str:
    """A field's place as the file spells it: ``columns[2] (price).type``."""
    shown, node = "", data
    for part in location:
        if isinstance(part, int):
            shown += f"[{part}]"
            item = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                shown += f" ({item['name']})"
            node = item
        else:
            shown += ("." if shown else "") + ("schema" if part == "schema_" else str(part))
            node = node.get(part if part != "schema_" else "schema") if isinstance(node, dict) else None
    return shown or "the file"


def _message(problem: dict) -> str:
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        return "is not a field of a mapping (a typo?)"
    return message
