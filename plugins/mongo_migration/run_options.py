"""The options of a run, declared once: their defaults, bounds, titles, descriptions and sections.

The DAG's trigger form is generated from these declarations (``form``), in
their order; a mapping's ``params`` may change the defaults of those in
``MAPPING_DEFAULTS`` (``Params``); and each task reads the rendered values
once, into a ``RunOptions`` (``RunOptions.read``): no default or bound is
written anywhere else, and ``docs/params.md``'s table is tested against the
form. Adding an option is a field here and the line of the task that reads it (a task that reads
options has ``OPTION_FIELDS`` in its template fields and is given ``options`` in the DAG file; a test
checks both); a mapping may set its default when it is in ``MAPPING_DEFAULTS``.

The source's and the target's names are not options but the mapping's; the
DAG file declares their fields, and they stay text all the way through.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator

from include import config

SECTIONS = ("Source", "Pages", "Target", "Publish", "For one run only")  # the form's order


def _option(default: Any, section: str, title: str, description: str, **bounds: Any) -> Any:
    """A field of the form: its section, title and description, as Airflow's Param shows them."""
    extra = {"section": section}
    return Field(default=default, title=title, description=description, json_schema_extra=extra, **bounds)


class RunOptions(BaseModel):
    """Every option of a run, in the form's order, as a task reads it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed_users: int = _option(
        0,  # seeding happens only when a run asks for it
        "Source",
        "Users to seed (0: none)",
        f"Fake users 0 to N-1 to ensure in the collection before copying (the seed project's amount: "
        f"{config.SEED_USERS:,}): missing ones, wherever they are, are inserted again; other documents are "
        "left alone. 0, the default, copies the collection as it is. Writes into the source: only in "
        f"manually triggered runs, and only where the deployment sets {config.ALLOW_SEEDING_VARIABLE}=true.",
        ge=0,
        le=100_000_000,
    )
    mode: Literal["incremental", "full"] = _option(
        config.COPY_MODE,
        "Source",
        "Copy mode",
        "incremental: apply only the changes since the point the live table was published as of, or copy "
        "in full when that cannot be done (first run, changes gone from the source's history, collection "
        "made again, mapping changed, table changed by someone else), saying why; full: copy the whole "
        "collection.",
    )
    items_per_page: int = _option(
        config.ITEMS_PER_PAGE,
        "Pages",
        "Items per page (documents)",
        "Documents per migrate_page task, each one a range of _id values; up to "
        f"{config.CLUSTER_SIZE_VARIABLE} (90 when unset) pages run at once, across the DAGs that share the "
        "page pool. More per page when the collection would need more pages than Airflow's "
        "[core] max_map_length (1024 by default).",
        ge=1,
        le=100_000,
    )
    max_shrink_percent: int = _option(
        config.MAX_SHRINK_PERCENT,
        "Publish",
        "Largest shrink allowed (%)",
        "publish refuses a copy with this many percent fewer rows than the live table, and a child table "
        "whose array path the mapping changed with this many percent fewer rows than the live one "
        "(100: any).",
        ge=0,
        le=100,
    )
    max_reject_percent: float = _option(
        config.MAX_REJECT_PERCENT,
        "Publish",
        "Most rejects allowed (%)",
        "publish refuses a copy that set aside more than this percent of its documents that the published "
        "table had not set aside (new ones, or ones a change broke; in the table's _rejects table, each "
        "with its column and reason; the same rejects night after night pass; 100: any).",
        ge=0,
        le=100,
    )
    max_null_rise_percent: int = _option(
        config.MAX_NULL_RISE_PERCENT,
        "Publish",
        "Largest rise of a column's NULLs allowed (points)",
        "After a mapping change, publish refuses a changed column whose share of NULL rows rose by more "
        "than this many percentage points against the live table, or a new column whose path no document "
        "has: what a path typed wrong does (100: any). A full copy's verify report lists every column's "
        "NULLs.",
        ge=0,
        le=100,
    )
    verify_content: bool = _option(
        False,
        "Publish",
        "Verify every document's content",
        "verify reads every document of the source again and compares it with its row and child rows, "
        "not only every _id: a second full read of the collection, for a run that must prove it.",
    )
    full_proof_days: int = _option(
        config.FULL_PROOF_DAYS,
        "Publish",
        "Full proof every (days)",
        "An incremental run proves what changed: each changed document read again from the source, and the "
        "source's count against the table's rows and rejects. The full proof, which reads every _id of the "
        "source again, runs on full copies and when the last one is this many days old (0: every run).",
        ge=0,
        le=366,
    )
    publish_wait_seconds: int = _option(
        config.PUBLISH_WAIT_SECONDS,
        "Publish",
        "Wait for a busy table (seconds)",
        "How long publish keeps trying, in attempts of at most 5 s, while other sessions lock the live "
        "table.",
        ge=0,
        le=1800,  # leaves publish's execution_timeout (1 h) half its time to work
    )
    publish_empty: bool = _option(
        False,
        "For one run only",
        "Publish an empty copy",
        "Let publish empty a live table that holds rows (refused otherwise).",
    )
    publish_unverified: bool = _option(
        False,
        "For one run only",
        "Publish without verify's proof",
        "Let publish go on when verify returned no proof (marked successful by hand); without verify's "
        "counts, what a changed mapping emptied is not judged (a warning says so).",
    )
    dry_run: bool = _option(
        False,
        "For one run only",
        "Dry run",
        "Check the source and the target, report what this run would do (full or incremental and why, "
        "pages, what publish would say of the live table) and stop there: nothing is written anywhere.",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _true_or_false(cls, value: Any, info: ValidationInfo) -> Any:
        """A boolean Param renders as "True" or "False": any other text is refused by name, never read as
        either (pydantic alone would take "yes", "on" or "1"). A mapping's ``params`` are read as before,
        by pydantic alone."""
        if cls.model_fields[info.field_name].annotation not in (bool, "bool"):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if isinstance(value, bool):
            return value
        raise ValueError(f"{value!r} is neither true nor false")

    @classmethod
    def read(cls, rendered: dict[str, Any]) -> RunOptions:
        """The options as a task's templates rendered them: text, turned into their types and checked."""
        return cls.model_validate(rendered)


# The options a mapping's ``params`` may give its own defaults for.
MAPPING_DEFAULTS = (
    "mode",
    "items_per_page",
    "max_shrink_percent",
    "max_reject_percent",
    "max_null_rise_percent",
    "verify_content",
    "full_proof_days",
    "publish_wait_seconds",
)
Params = create_model(
    "Params",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __doc__="The defaults a mapping's ``params`` may change, for its own DAG.",
    **{
        name: (RunOptions.model_fields[name].annotation, RunOptions.model_fields[name])
        for name in MAPPING_DEFAULTS
    },
)


def names(seeding: bool) -> list[str]:
    """The options of a DAG's form, and so of its tasks: ``seed_users`` only where the DAG seeds."""
    return [name for name in RunOptions.model_fields if seeding or name != "seed_users"]


def templates(seeding: bool) -> dict[str, str]:
    """What a task's ``options`` field renders: the run's value of each option."""
    return {name: f"{{{{ params.{name} }}}}" for name in names(seeding)}


def form(defaults: BaseModel, seeding: bool) -> dict[str, tuple[Any, dict]]:
    """Each option of the trigger form: its default (the mapping's ``Params``) and its JSON schema, as
    Airflow's ``Param(default, **schema)`` takes them."""
    values = RunOptions(**defaults.model_dump())
    schema = RunOptions.model_json_schema()["properties"]
    return {
        name: (getattr(values, name), {key: value for key, value in schema[name].items() if key != "default"})
        for name in names(seeding)
    }
