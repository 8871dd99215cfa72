"""The copy mode's decisions that need no service: why published rows cannot be brought up to date by
changes alone, and which columns a changed mapping's publish judges."""

from mongo_migration import copy_mode, target
from tests.staging import USERS

POINT = {"cluster_time": {"t": 1796600000, "i": 1}, "token": {"_data": "82"}}


def versions(mapping=USERS, conversion=2) -> dict:
    return {"mapping": mapping.version, "conversion": conversion, "shape": mapping.shape()}


def versions_now(mapping=USERS) -> dict:
    return copy_mode.versions_of(mapping)


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


def published(position=POINT, watch=target.WATCHED, versions=None, lost=None):
    return target.PublishedState(position, watch, versions or versions_now(), lost, None)


PUBLISHED = published()  # a publish an incremental run may start from


def test_a_run_copies_in_full_for_each_reason_a_publish_recorded_and_may_start_from_its_point_otherwise():
    email = USERS.columns[1].model_copy(update={"path": ("emial",)})
    typo = versions_now(USERS.model_copy(update={"columns": (USERS.columns[0], email, *USERS.columns[2:])}))

    def why(mode="incremental", state=PUBLISHED, now=None) -> str | None:
        return copy_mode.reason_for(mode, state, now or versions_now(), "public.users")

    assert why() is None  # the stream is asked next whether it still holds the point
    assert why(mode="full") == "the Param mode asks for one"
    assert why(state=None).startswith("public.users has no published point to start from")
    assert why(state=published(position=None)).startswith("public.users has no published point")
    assert why(state=published(lost="history lost")) == (
        "an earlier run could not start from public.users's published point: history lost"
    )
    assert why(now=typo).startswith("the mapping changed since the last publish (column email: path [email]")
    assert why(mode="full", now=typo).startswith("the Param mode asks for one; and the mapping changed")
    assert why(state=published(watch="sha256:10:9219338231373641217/0:0")).startswith(
        "public.users was published by an earlier version of this project"
    )
