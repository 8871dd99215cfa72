"""The run's options as a task reads them: typed, bounded and refused by name; the mapping's share."""

import pytest
from pydantic import ValidationError

from mongo_migration import run_options
from mongo_migration.run_options import SECTIONS, Params, RunOptions


def test_options_rendered_as_text_read_as_their_types_and_a_boolean_is_only_true_or_false():
    read = RunOptions.read({"items_per_page": "100", "max_reject_percent": "0.5", "dry_run": " True "})

    assert (read.items_per_page, read.max_reject_percent, read.dry_run) == (100, 0.5, True)
    assert RunOptions.read({"publish_empty": "false", "verify_content": False}).publish_empty is False
    for value in ("yes", "1", "on", ""):
        with pytest.raises(ValidationError, match=r"dry_run\n.*is neither true nor false"):
            RunOptions.read({"dry_run": value})
    with pytest.raises(ValidationError, match="items_per_page"):
        RunOptions.read({"items_per_page": "0"})  # below its bound
    with pytest.raises(ValidationError, match="max_shrink_percent"):
        RunOptions.read({"max_shrink_percent": "12.5"})  # not a whole number


def test_a_mapping_sets_the_defaults_of_its_own_options_and_of_none_for_one_run():
    assert list(Params.model_fields) == list(run_options.MAPPING_DEFAULTS)
    assert Params().model_dump() == {
        name: getattr(RunOptions(), name) for name in run_options.MAPPING_DEFAULTS
    }
    for one_run in ("dry_run", "publish_unverified", "seed_users"):
        with pytest.raises(ValidationError, match=one_run):
            Params(**{one_run: 1})


def test_the_form_lists_every_option_in_its_sections_order_and_seed_users_only_where_a_dag_seeds():
    form = run_options.form(Params(mode="full"), seeding=True)
    sections = [schema["section"] for _, schema in form.values()]

    assert list(form) == list(RunOptions.model_fields)
    assert sections == sorted(sections, key=SECTIONS.index)
    assert form["mode"][0] == "full"  # the mapping's default
    assert "seed_users" not in run_options.form(Params(), seeding=False)
    assert run_options.templates(seeding=False)["dry_run"] == "{{ params.dry_run }}"
