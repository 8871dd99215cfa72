"""The copy mode's decisions that need no service: why published rows cannot be brought up to date by
changes alone, and which columns a changed mapping's publish judges."""

from mongo_migration import copy_mode
from tests.staging import USERS


def versions(mapping=USERS, conversion=2) -> dict:
    return {"mapping": mapping.version, "conversion": conversion, "shape": mapping.shape()}


def test_the_same_versions_need_no_full_copy_and_a_changed_mapping_is_named_column_by_column():
    age = USERS.columns[2].model_copy(update={"type": "bigint", "accepts": ("int", "long")})
    wider = USERS.model_copy(update={"columns": (*USERS.columns[:2], age, USERS.columns[3])})

    assert copy_mode.versions_differ(versions(), versions()) is None
    assert copy_mode.versions_differ(versions(), versions(wider)) == (
        "the mapping changed since the last publish (column age: type integer → bigint; column age: accepts "
        "int → int, long): a full copy writes every row again in its new shape"
    )
    assert copy_mode.versions_differ(
        {"mapping": "1a2b", "conversion": 2}, versions()
    ) == (  # no shape recorded
        f"the mapping changed since the last publish (version 1a2b, now {USERS.version}): a full copy writes "
        "every row again in its new shape"
    )
    assert copy_mode.versions_differ(versions(conversion=1), versions()).startswith(
        "the conversion changed since the last publish (version 1, now 2)"
    )


def test_a_publish_judges_what_the_mapping_changed_everything_on_a_first_publish_and_nothing_otherwise():
    email = USERS.columns[1].model_copy(update={"path": ("emial",)})
    typo = USERS.model_copy(update={"columns": (USERS.columns[0], email, *USERS.columns[2:])})

    assert copy_mode.changed_since_publish(typo, versions()) == {"email"}
    assert copy_mode.changed_since_publish(USERS, versions()) == set()
    assert (
        copy_mode.changed_since_publish(USERS, {"mapping": USERS.version}) == set()
    )  # no shape, same version
    assert copy_mode.changed_since_publish(USERS, None) == {"username", "email", "age", "created_at"}
