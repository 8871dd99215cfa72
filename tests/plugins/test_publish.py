"""Publishing into a live table that people and other objects depend on, on the real PostgreSQL.

The live table is first published by one load, then changed by people and
tools (a view, a foreign key, a policy, ...), then published again from a load
in which one user is gone, one changed and one new. Everything that is not its
rows must survive; its rows must equal the second load's.
"""

import threading
import time
import uuid
from pathlib import Path

import bson
import pytest
from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from bson import json_util

from mongo_migration import target
from mongo_migration.documents import Conversion, id_key
from mongo_migration.failpoint import FAILPOINT_VARIABLE
from mongo_migration.mapping import Mapping
from mongo_migration.page_copy import copy_page
from mongo_migration.pages import Page
from mongo_migration.run_options import RunOptions
from mongo_migration.target import Owner, Tables
from tests.staging import USERS, staged, users

FIRST, SECOND = Owner("mongo_to_postgres", "scheduled__1"), Owner("mongo_to_postgres", "scheduled__2")
PAGE = Page(number=0, lower=1, upper=4, upper_inclusive=True, planned_documents=3)


ROWS = Conversion(USERS)


def load(conn, table: str, owner: Owner, named: dict[int, str]) -> None:
    target.reset_table(conn, users(table), owner, lambda other: False)
    copy_page([documents(named)], conn, users(table), ROWS, owner, PAGE)


def documents(named: dict[int, str]) -> bytes:
    return b"".join(bson.encode({"_id": number, "username": name}) for number, name in named.items())


def publish(conn, table: str, owner: Owner, wait_seconds: float = 0, **allowed) -> dict:
    """Publish as a run whose verify proved the staging table as it is."""
    guards = target.Guards(verified=target.staged_state(conn, users(table)), options=RunOptions(**allowed))
    return target.publish(conn, users(table), owner, guards, wait_seconds)


def usernames(conn, table: str) -> dict:
    return dict(conn.execute(f"SELECT _id, username FROM {table}").fetchall())


@pytest.fixture
def live(pg_conn, target_table):
    """A published live table of users 1, 2 and 3, and the second run's load: 1 gone, 2 changed, 4 new."""
    load(pg_conn, target_table, FIRST, {1: "ann", 2: "bob", 3: "cy"})
    publish(pg_conn, target_table, FIRST)
    load(pg_conn, target_table, SECOND, {2: "bobby", 3: "cy", 4: "di"})
    return target_table


# Each case: (what a person does to the live table, a query whose answer must be the same after
# the second publish; run by the table's owner). {t} is the table, {role} a fresh role.
DEPENDANTS = {
    "a plain view": (
        "CREATE VIEW {t}_names AS SELECT username FROM {t}",
        "SELECT pg_get_viewdef('{t}_names'::regclass)",
    ),
    "a materialized view": (
        "CREATE MATERIALIZED VIEW {t}_counted AS SELECT count(*) AS users FROM {t}",
        "SELECT count(*) FROM pg_matviews WHERE matviewname = '{t}_counted'",
    ),
    "a foreign key from another table": (
        "CREATE TABLE {t}_orders (user_id text REFERENCES {t} (_id)); "
        "INSERT INTO {t}_orders VALUES ('{kept}')",
        "SELECT conname, confrelid::regclass::text FROM pg_constraint "
        "WHERE conrelid = '{t}_orders'::regclass",
    ),
    "a row-level security policy": (
        "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY; CREATE POLICY {t}_mine ON {t} USING (true)",
        "SELECT relrowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = '{t}'::regclass) "
        "FROM pg_class WHERE oid = '{t}'::regclass",
    ),
    "a trigger": (
        "CREATE TABLE {t}_audit (_id text); "
        "CREATE FUNCTION {t}_audit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO {t}_audit VALUES (NEW._id); RETURN NEW; END $$; "
        "CREATE TRIGGER {t}_audited AFTER INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {t}_audit()",
        "SELECT tgname FROM pg_trigger WHERE tgrelid = '{t}'::regclass AND NOT tgisinternal",
    ),
    "a logical-replication publication": (
        "CREATE PUBLICATION {t}_feed FOR TABLE {t}",
        "SELECT pubname FROM pg_publication_tables WHERE tablename = '{t}'",
    ),
    "another owner": (
        "ALTER TABLE {t} OWNER TO {role}",
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = '{t}'::regclass",
    ),
    "column comments and the table's comment": (
        "COMMENT ON COLUMN {t}.email IS 'work address'; COMMENT ON TABLE {t} IS 'our users'",
        # publish keeps a person's lines of the table's comment and adds its own last line
        "SELECT col_description('{t}'::regclass, 3), split_part(obj_description('{t}'::regclass), E'\\n', 1)",
    ),
    "grants": (
        "GRANT SELECT, INSERT ON {t} TO {role}; GRANT SELECT ON {t}_rejects TO {role}",
        "SELECT table_name, grantee, privilege_type FROM information_schema.role_table_grants "
        "WHERE table_name LIKE '{t}%%' AND grantee NOT IN (current_user, 'postgres') ORDER BY 1, 2, 3",
    ),
}


@pytest.fixture
def a_role(pg_conn):
    name = f"role_{uuid.uuid4().hex[:8]}"
    pg_conn.execute(f"CREATE ROLE {name}")
    yield name
    pg_conn.execute(f"DROP OWNED BY {name}; DROP ROLE {name}")


@pytest.fixture
def dependants_dropped(pg_conn, live):
    """Whatever a case made that would keep the live table from being dropped afterwards."""
    yield
    pg_conn.execute(
        f"DROP VIEW IF EXISTS {live}_names CASCADE; DROP MATERIALIZED VIEW IF EXISTS {live}_counted; "
        f"DROP TABLE IF EXISTS {live}_orders, {live}_audit; DROP PUBLICATION IF EXISTS {live}_feed; "
        f"DROP TABLE IF EXISTS {live}, {live}_rejects; DROP FUNCTION IF EXISTS {live}_audit"
    )


@pytest.mark.parametrize("case", DEPENDANTS)
def test_what_depends_on_the_live_table_survives_a_publish_and_sees_the_new_rows(
    pg_conn, live, a_role, dependants_dropped, case
):
    change, check = (text.format(t=live, role=a_role, kept=id_key(3)) for text in DEPENDANTS[case])
    pg_conn.execute(change)
    before = pg_conn.execute(check).fetchall()
    oid = pg_conn.execute("SELECT %s::regclass::oid", [live]).fetchone()[0]

    result = publish(pg_conn, live, SECOND)

    assert pg_conn.execute(check).fetchall() == before, case
    assert pg_conn.execute("SELECT %s::regclass::oid", [live]).fetchone()[0] == oid
    assert usernames(pg_conn, live) == {id_key(2): "bobby", id_key(3): "cy", id_key(4): "di"}
    assert (result["deleted"], result["updated"], result["inserted"]) == (1, 1, 1)


def test_the_rows_that_changed_are_all_that_publish_writes_and_statistics_are_fresh(
    pg_conn, live, dependants_dropped
):
    pg_conn.execute(
        f"CREATE TABLE {live}_audit (_id text, operation text); "
        f"CREATE FUNCTION {live}_audit() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN INSERT INTO {live}_audit VALUES (coalesce(NEW._id, OLD._id), TG_OP); RETURN NULL; END $$; "
        f"CREATE TRIGGER {live}_audited AFTER INSERT OR UPDATE OR DELETE ON {live} "
        f"FOR EACH ROW EXECUTE FUNCTION {live}_audit()"
    )

    publish(pg_conn, live, SECOND)

    written = sorted(pg_conn.execute(f"SELECT _id, operation FROM {live}_audit").fetchall())
    assert written == [(id_key(1), "DELETE"), (id_key(2), "UPDATE"), (id_key(4), "INSERT")]
    statistics = pg_conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [live]).fetchone()
    assert statistics == (3,)


def test_a_retry_after_a_publish_that_committed_succeeds_without_publishing_again(pg_conn, live):
    guards = target.Guards(verified=target.staged_state(pg_conn, users(live)))
    first = target.publish(pg_conn, users(live), SECOND, guards, 0)
    pg_conn.execute(f"UPDATE {live} SET username = 'changed since' WHERE _id = %s", [id_key(4)])

    again = target.publish(pg_conn, users(live), SECOND, guards, 0)

    assert again == {**first, "already_published": True}
    assert usernames(pg_conn, live)[id_key(4)] == "changed since"


def test_publish_refuses_a_copy_verify_did_not_prove_unless_allowed(pg_conn, live):
    guards = target.Guards(verified=None)
    with pytest.raises(
        AirflowFailException, match=r"nothing was published\. Set the Param publish_unverified"
    ):
        target.publish(pg_conn, users(live), SECOND, guards, 0)
    assert usernames(pg_conn, live)[id_key(1)] == "ann"

    guards = target.Guards(verified=None, options=RunOptions(publish_unverified=True))
    target.publish(pg_conn, users(live), SECOND, guards, 0)
    assert id_key(1) not in usernames(pg_conn, live)


def test_publish_refuses_an_empty_copy_over_a_table_that_holds_rows_unless_allowed(pg_conn, live):
    target.reset_table(pg_conn, users(live), SECOND, lambda other: False)  # nothing loaded

    with pytest.raises(AirflowFailException, match=r"empty while public.* holds 3 rows.*Param publish_empty"):
        publish(pg_conn, live, SECOND)
    assert len(usernames(pg_conn, live)) == 3

    publish(pg_conn, live, SECOND, publish_empty=True)
    assert usernames(pg_conn, live) == {}


def test_publish_refuses_a_copy_that_shrank_more_than_allowed_naming_the_param(pg_conn, live):
    load(pg_conn, live, SECOND, {2: "bob"})  # 1 row where the live table holds 3

    with pytest.raises(
        AirflowFailException, match=r"1 rows, 66.7% fewer than the 3 .*max_shrink_percent \(10\)"
    ):
        publish(pg_conn, live, SECOND)
    assert len(usernames(pg_conn, live)) == 3

    publish(pg_conn, live, SECOND, max_shrink_percent=70)
    assert usernames(pg_conn, live) == {id_key(2): "bob"}


def test_what_a_changed_mapping_emptied_is_named_with_its_numbers_and_nothing_else_is_judged():
    def column(nulls, live_nulls=None, rows=200, absent=0, judged=True):
        live = {"live_rows": 200, "live_nulls": live_nulls} if live_nulls is not None else {}
        found = {"table": "orders", "column": "email", "path": ["customer", "email"], "rows": rows}
        found |= {"nulls": nulls, "live_rows": None, "live_nulls": None, "absent": absent, "coerced": 0}
        return found | {"judged": judged} | live

    def emptied(*columns, children=(), max_rise=10, max_shrink=10):
        return target.emptied_columns(
            {"columns": list(columns), "children": list(children)}, max_rise, max_shrink
        )

    assert emptied(column(200, 0, absent=200)) == [
        "orders.email (path [customer, email]) is NULL in 200 of the copy's 200 rows (100.0%), against 0 of "
        "200 (0.0%) in the live table; its path was absent in 200 of the documents or elements read"
    ]
    assert emptied(column(40, 20)) == []  # 20% against 10%: 10 points
    assert emptied(column(41, 20)) == [  # 20.5% against 10%: 10.5 points
        "orders.email (path [customer, email]) is NULL in 41 of the copy's 200 rows (20.5%), against 20 of "
        "200 (10.0%) in the live table"
    ]
    assert (
        emptied(column(200, 0, judged=False)) == []
    )  # a column the mapping did not change: data, not a typo
    assert emptied(column(200, 200)) == []  # as empty as it was
    assert emptied(column(200, absent=200)) == [  # a new column whose path no document has
        "orders.email (path [customer, email]) is NULL in 200 of the copy's 200 rows, a column new to the "
        "live table; its path was absent in 200 of the documents or elements read"
    ]
    assert emptied(column(200, absent=150)) == []  # a new column whose field is there, null: not a typo
    assert emptied(column(190, absent=200)) == []  # values the catch-up wrote after the pages: not a typo
    assert emptied(column(200, 0, absent=200) | {"live_rows": 0}) == [
        "orders.email (path [customer, email]) is NULL in 200 of the copy's 200 rows, and the live table has "
        "no rows; its path was absent in 200 of the documents or elements read"
    ]
    assert emptied(column(200, absent=200), column(200, 0), max_rise=100) == []  # any, for one run
    assert emptied(column(0, rows=0)) == []  # no rows: nothing to judge
    child = {"table": "orders_items", "path": ["itmes"], "rows": 0, "live_rows": 500, "judged": True}
    assert emptied(children=[child]) == [
        "the child table orders_items (array [itmes]) holds 0 rows against the live one's 500, more than "
        "max_shrink_percent (10) fewer"
    ]
    assert emptied(children=[{**child, "judged": False}]) == []
    assert emptied(children=[child], max_shrink=100) == []


def test_readers_see_the_old_rows_until_publish_commits_and_the_new_ones_after(pg_conn, live, monkeypatch):
    armed = Path(f"/tmp/failpoint-{uuid.uuid4().hex}")
    armed.write_text("publish_before_commit 0 0")
    monkeypatch.setenv(FAILPOINT_VARIABLE, str(armed))
    publishing = threading.Thread(target=lambda: publish_in_own_connection(live))
    publishing.start()
    try:
        wait_for(Path(f"{armed}.held").exists)
        with PostgresHook().get_conn() as reader:
            assert usernames(reader, live)[id_key(1)] == "ann"  # mid-publish: the old table, whole
    finally:
        Path(f"{armed}.resume").touch()
        publishing.join(timeout=60)
    assert usernames(pg_conn, live) == {id_key(2): "bobby", id_key(3): "cy", id_key(4): "di"}


def publish_in_own_connection(table: str) -> None:
    with PostgresHook().get_conn() as conn:
        publish(conn, table, SECOND)


def test_a_busy_table_is_waited_for_in_short_attempts_then_named_with_who_holds_it(
    pg_conn, live, monkeypatch
):
    monkeypatch.setattr("mongo_migration.target.publishing.PUBLISH_LOCK_TIMEOUT", "200ms")
    monkeypatch.setattr("mongo_migration.target.publishing.PUBLISH_RETRY_PAUSE_SECONDS", 0.1)
    with PostgresHook().get_conn() as person, PostgresHook().get_conn() as reader:
        reader.execute("SET application_name = 'a reader'")
        reader.execute(f"SELECT count(*) FROM {live}")  # ACCESS SHARE, until its transaction ends
        person.execute("SET application_name = 'a long report'")
        person.execute(f"LOCK TABLE {live} IN SHARE MODE")  # until this transaction ends

        with pytest.raises(AirflowException) as failure:
            publish(pg_conn, live, SECOND, wait_seconds=1)

    message = str(failure.value)
    assert f"table public.{live} is busy: publish gave up after 1 s" in message
    assert "a long report" in message and "ShareLock" in message
    assert "a reader" not in message  # readers never hold publish up
    assert usernames(pg_conn, live)[id_key(1)] == "ann"


@pytest.mark.parametrize(
    "hold",
    [
        pytest.param("LOCK TABLE {live} IN SHARE MODE", id="a table lock"),
        pytest.param("SELECT pg_advisory_xact_lock(hashtextextended('{key}', 0))", id="the load lock"),
    ],
)
def test_publish_waits_for_a_lock_released_while_it_tries(pg_conn, live, monkeypatch, hold):
    monkeypatch.setattr("mongo_migration.target.publishing.PUBLISH_LOCK_TIMEOUT", "200ms")
    monkeypatch.setattr("mongo_migration.target.publishing.PUBLISH_RETRY_PAUSE_SECONDS", 0.1)
    person = PostgresHook().get_conn()
    person.execute(hold.format(live=live, key=users(live).lock_key))  # until the person's transaction ends
    publishing = threading.Thread(target=lambda: publish(pg_conn, live, SECOND, wait_seconds=60))
    publishing.start()
    wait_for(waiting_for_a_lock)  # publish has tried and is waiting again
    person.close()
    publishing.join(timeout=60)

    assert usernames(pg_conn, live) == {id_key(2): "bobby", id_key(3): "cy", id_key(4): "di"}


def waiting_for_a_lock() -> bool:
    with PostgresHook().get_conn() as conn:
        return conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0] > 0


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def test_a_value_whose_type_changed_is_published_even_when_it_compares_equal(pg_conn, target_table):
    target.reset_table(pg_conn, users(target_table), FIRST, lambda other: False)
    copy_page([bson.encode({"_id": 1, "n": 42})], pg_conn, users(target_table), ROWS, FIRST, PAGE)
    publish(pg_conn, target_table, FIRST)
    target.reset_table(pg_conn, users(target_table), SECOND, lambda other: False)
    copy_page([bson.encode({"_id": 1, "n": 42.0})], pg_conn, users(target_table), ROWS, SECOND, PAGE)

    result = publish(pg_conn, target_table, SECOND)

    assert result["updated"] == 1
    [(document,)] = pg_conn.execute(f"SELECT document::text FROM {target_table}").fetchall()
    assert type(json_util.loads(document)["n"]) is float


def test_publish_refuses_a_role_that_does_not_own_the_live_table_since_analyze_would_skip_it(
    pg_conn, live, a_role
):
    pg_conn.execute(f"GRANT USAGE ON SCHEMA {target.STAGING_SCHEMA} TO {a_role}")
    pg_conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {target.STAGING_SCHEMA} TO {a_role}")
    pg_conn.execute(f"SET ROLE {a_role}")
    try:
        with pytest.raises(AirflowFailException, match=f"role {a_role} does not own public.{live}"):
            publish(pg_conn, live, SECOND)
    finally:
        pg_conn.execute("RESET ROLE")
    assert usernames(pg_conn, live)[id_key(1)] == "ann"


def test_publish_that_would_break_a_foreign_key_fails_for_good_with_postgresqls_words(
    pg_conn, live, dependants_dropped
):
    pg_conn.execute(f"CREATE TABLE {live}_orders (user_id text REFERENCES {live} (_id))")
    pg_conn.execute(f"INSERT INTO {live}_orders VALUES (%s)", [id_key(1)])  # user 1 is gone in the copy

    with pytest.raises(AirflowFailException, match=f"breaks a constraint.*{live}_orders"):
        publish(pg_conn, live, SECOND, wait_seconds=60)

    assert usernames(pg_conn, live)[id_key(1)] == "ann"


def test_a_target_table_named_like_the_publish_record_keeps_both(pg_conn, live):
    other = "published"
    try:
        load(pg_conn, other, FIRST, {7: "gus"})
        publish(pg_conn, other, FIRST)

        assert publish(pg_conn, live, SECOND)["updated"] == 1
        assert usernames(pg_conn, other) == {id_key(7): "gus"}
    finally:
        pg_conn.execute("DROP TABLE IF EXISTS public.published, public.published_rejects")


def test_the_tables_comment_ends_with_one_line_naming_the_run_and_the_point_it_is_consistent_with(
    pg_conn, live
):
    pg_conn.execute(f"COMMENT ON TABLE {live} IS E'our users\\nask #data'")
    target.save_position(pg_conn, users(live), POINT)  # as the catch-up leaves it

    publish(pg_conn, live, SECOND)

    (comment,) = pg_conn.execute("SELECT obj_description(%s::regclass)", [live]).fetchone()
    *kept, last = comment.splitlines()
    assert kept == ["our users", "ask #data"]
    assert last == (
        f"mongo_migration: published by {SECOND}; consistent with the source at 2026-11-29T02:00:00+00:00 "
        "(cluster time 1795913200.7, resume token 8269AB)"
    )


POINT = {
    "resume_token": {"_data": "8269AB"},
    "cluster_time": {"t": 1795913200, "i": 7},
    "wall_time": "2026-11-29T02:00:00+00:00",
}


def shaped(columns: list[dict], children: list[dict] = ()) -> Mapping:
    return Mapping.model_validate(
        {
            "dag_id": "changing",
            "source": {"database": "d", "collection": "c"},
            "target": {"table": "t"},
            "columns": columns,
            "children": list(children),
        }
    )


BEFORE = shaped(
    [
        {"name": "username", "path": ["username"], "type": "text"},
        {"name": "age", "path": ["age"], "type": "integer"},
        {"name": "note", "path": ["note"], "type": "text"},
    ],
    [{"name": "tags", "path": ["tags"], "columns": [{"name": "tag", "path": [], "type": "text"}]}],
)
AFTER = shaped(  # note dropped, age retyped, colour added; tags gains a column, scores is new
    [
        {"name": "username", "path": ["username"], "type": "text", "nullable": False},
        {"name": "age", "path": ["age"], "type": "bigint", "accepts": ["int", "long"]},
        {"name": "colour", "path": ["colour"], "type": "text"},
    ],
    [
        {
            "name": "tags",
            "path": ["tags"],
            "columns": [
                {"name": "tag", "path": [], "type": "text"},
                {"name": "length", "path": [], "type": "jsonb", "accepts": ["string"]},
            ],
        },
        {"name": "scores", "path": ["scores"], "columns": [{"name": "score", "path": [], "type": "integer"}]},
    ],
)
PEOPLE = [
    {
        "_id": 1,
        "username": "ann",
        "age": 30,
        "note": "n1",
        "colour": "red",
        "tags": ["a", "b"],
        "scores": [1],
    },
    {"_id": 2, "username": "bob", "age": 40, "note": "n2", "colour": "blue", "tags": [], "scores": [2, 3]},
]


def load_shaped(conn, table: str, mapping: Mapping, owner: Owner, people: list[dict]) -> Tables:
    tables = Tables("public", table, mapping)
    target.reset_table(conn, tables, owner, lambda other: False)
    copy_page([b"".join(map(bson.encode, people))], conn, tables, Conversion(mapping), owner, PAGE)
    return tables


def publish_shaped(conn, tables: Tables, owner: Owner) -> dict:
    guards = target.Guards(verified=target.staged_state(conn, tables))
    return target.publish(conn, tables, owner, guards, 0, {"mapping": tables.mapping.version})


def columns_of(conn, table: str) -> list[tuple]:
    return conn.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        [table],
    ).fetchall()


def test_a_changed_mapping_adds_drops_and_retypes_columns_and_child_tables_in_publishs_transaction(
    pg_conn, target_table
):
    publish_shaped(pg_conn, load_shaped(pg_conn, target_table, BEFORE, FIRST, PEOPLE), FIRST)
    pg_conn.execute(f"CREATE INDEX ON {target_table} (username)")  # a person's own, which stays
    oid = pg_conn.execute("SELECT %s::regclass::oid", [target_table]).fetchone()[0]

    result = publish_shaped(pg_conn, load_shaped(pg_conn, target_table, AFTER, SECOND, PEOPLE), SECOND)

    assert result["method"] == "applied in place"
    assert pg_conn.execute("SELECT %s::regclass::oid", [target_table]).fetchone()[0] == oid
    assert columns_of(pg_conn, target_table) == [
        ("_id", "text", "NO"),
        ("username", "text", "NO"),  # made NOT NULL once the rows were in
        ("age", "bigint", "YES"),
        ("document", "jsonb", "NO"),
        ("page", "integer", "NO"),
        ("colour", "text", "YES"),
    ]
    rows = pg_conn.execute(f"SELECT _id, age, colour FROM {target_table} ORDER BY 1").fetchall()
    assert rows == [(id_key(1), 30, "red"), (id_key(2), 40, "blue")]
    tags = pg_conn.execute(f"SELECT _id, _index, tag, length::text FROM {target_table}_tags ORDER BY 1, 2")
    assert tags.fetchall() == [(id_key(1), 0, "a", '"a"'), (id_key(1), 1, "b", '"b"')]
    scores = pg_conn.execute(f"SELECT _id, _index, score FROM {target_table}_scores ORDER BY 1, 2").fetchall()
    assert scores == [(id_key(1), 0, 1), (id_key(2), 0, 2), (id_key(2), 1, 3)]
    assert pg_conn.execute(
        "SELECT count(*) FROM pg_indexes WHERE tablename = %s", [target_table]
    ).fetchone() == (3,)

    back = publish_shaped(pg_conn, load_shaped(pg_conn, target_table, BEFORE, FIRST, PEOPLE), FIRST)

    assert back["dropped"] == [f"{target_table}_scores"]  # a child table the mapping no longer has
    assert pg_conn.execute("SELECT to_regclass(%s)", [f"{target_table}_scores"]).fetchone() == (None,)
    assert [column for column, *_ in columns_of(pg_conn, target_table)] == [
        "_id",
        "username",
        "age",
        "document",
        "page",
        "note",
    ]


def test_a_changed_mapping_that_drops_a_column_a_view_reads_is_refused_naming_it_and_nothing_changes(
    pg_conn, target_table
):
    publish_shaped(pg_conn, load_shaped(pg_conn, target_table, BEFORE, FIRST, PEOPLE), FIRST)
    pg_conn.execute(f"CREATE VIEW {target_table}_names AS SELECT username, note FROM {target_table}")
    before = columns_of(pg_conn, target_table)
    changed = load_shaped(pg_conn, target_table, AFTER, SECOND, PEOPLE)

    with pytest.raises(AirflowFailException) as refused:
        publish_shaped(pg_conn, changed, SECOND)

    assert f"view {target_table}_names" in str(refused.value)
    assert f"(on {target_table}: note, age)" in str(
        refused.value
    ) or f"(on {target_table}: age, note)" in str(refused.value)
    assert "Nothing was published" in str(refused.value)
    assert columns_of(pg_conn, target_table) == before
    assert pg_conn.execute("SELECT to_regclass(%s)", [f"{target_table}_scores"]).fetchone() == (None,)
    pg_conn.execute(f"DROP VIEW {target_table}_names")


def test_publish_refuses_a_copy_with_more_rejects_than_allowed_naming_both_numbers_and_the_param(
    pg_conn, target_table
):
    target.reset_table(pg_conn, users(target_table), FIRST, lambda other: False)
    named = documents({n: f"user {n}" for n in range(199)}) + bson.encode({"_id": 199, "username": "a\x00b"})
    copy_page([named], pg_conn, users(target_table), ROWS, FIRST, PAGE)

    with pytest.raises(AirflowFailException) as refused:
        publish(pg_conn, target_table, FIRST, max_reject_percent=0.4)

    assert str(refused.value) == (
        "the copy set aside 1 of its 200 documents (0.50%) that the published table had not set aside (1 set "
        f"aside in all, for public.{target_table}_rejects), more than the Param max_reject_percent (0.4) "
        "allows: nothing was published. See why in verify's log and the staging rejects table. To accept "
        "this level for every run, set max_reject_percent in the mapping's params; for one run, raise it in "
        "a new run's form."
    )
    assert pg_conn.execute("SELECT to_regclass(%s)", [target_table]).fetchone() == (None,)
    assert publish(pg_conn, target_table, FIRST)["rejects"] == 1  # 0.5 % is within the default 1 %


def test_the_reject_guard_judges_the_rejects_a_run_adds_so_that_stable_rejects_do_not_fail_every_night(
    pg_conn, target_table
):
    broken = [bson.encode({"_id": n, "username": "a\x00b"}) for n in (200, 201, 202)]
    runs = iter([FIRST, SECOND, Owner(FIRST.dag_id, "third")])

    def load_with(broken_documents: list[bytes]):
        owner = next(runs)
        target.reset_table(pg_conn, users(target_table), owner, lambda other: False)
        named = documents({n: f"user {n}" for n in range(197)}) + b"".join(broken_documents)
        copy_page([named], pg_conn, users(target_table), ROWS, owner, PAGE)
        return owner

    publish(pg_conn, target_table, load_with(broken[:2]), max_reject_percent=100)  # 2 of 199: accepted once

    same = publish(pg_conn, target_table, load_with(broken[:2]), max_reject_percent=0.4)  # the same 2 again

    assert (same["rejects"], same["added_rejects"]) == (2, 0)
    with pytest.raises(AirflowFailException) as refused:
        publish(pg_conn, target_table, load_with(broken), max_reject_percent=0.4)  # and a third, new one
    assert str(refused.value).startswith(
        "the copy set aside 1 of its 200 documents (0.50%) that the published table had not set aside (3 set "
        f"aside in all, for public.{target_table}_rejects)"
    )


def test_publish_leaves_alone_a_table_that_no_publish_made_or_that_another_dag_published(
    pg_conn, target_table
):
    pg_conn.execute(f"CREATE TABLE {target_table} (id serial PRIMARY KEY, status integer)")
    pg_conn.execute(f"INSERT INTO {target_table} (status) VALUES (1), (2), (3)")
    load(pg_conn, target_table, FIRST, {1: "ann", 2: "bob", 3: "cy"})

    with pytest.raises(
        AirflowFailException, match=rf"public.{target_table} exist but no publish of this project"
    ):
        publish(pg_conn, target_table, FIRST)
    assert pg_conn.execute(f"SELECT status FROM {target_table} ORDER BY id").fetchall() == [(1,), (2,), (3,)]

    pg_conn.execute(f"DROP TABLE {target_table}")
    publish(pg_conn, target_table, FIRST)
    orders_run = Owner("mongo_orders_to_postgres", "manual__1")
    load(pg_conn, target_table, orders_run, {9: "not a user"})
    with pytest.raises(AirflowFailException) as refused:
        publish(pg_conn, target_table, orders_run)
    assert "were last published by DAG 'mongo_to_postgres', not by 'mongo_orders_to_postgres'" in str(
        refused.value
    )
    assert len(usernames(pg_conn, target_table)) == 3

    handing_over = str(refused.value).split("on purpose: ")[1]
    pg_conn.execute(handing_over)  # the statement the message gives, as a person would run it
    assert publish(pg_conn, target_table, orders_run, max_shrink_percent=100)["deleted"] == 3


def test_publish_refuses_staging_tables_that_changed_after_verify_even_with_publish_unverified(pg_conn, live):
    proved = target.staged_state(pg_conn, users(live))
    allowed = RunOptions(publish_unverified=True)
    # the same counts, another key: as a catch-up cleared and run again after verify might leave them
    pg_conn.execute(f"UPDATE {staged(live)} SET _id = 'another' WHERE _id = %s", [id_key(4)])

    with pytest.raises(
        AirflowFailException, match=r"proved another copy of public.*whatever publish_unverified"
    ):
        target.publish(pg_conn, users(live), SECOND, target.Guards(verified=proved, options=allowed), 0)
    assert usernames(pg_conn, live)[id_key(1)] == "ann"
    now = target.staged_state(pg_conn, users(live))
    assert (now.rows, now.rejects, now.keys) == (proved.rows, proved.rejects, proved.keys)

    pg_conn.execute(f"UPDATE {staged(live)} SET _id = %s WHERE _id = 'another'", [id_key(4)])  # back again
    again = target.staged_state(pg_conn, users(live))
    assert again.key_hash == proved.key_hash  # the same keys, written again after verify: a page retried
    with pytest.raises(AirflowFailException, match=r"last written by write \d+, at"):
        target.publish(pg_conn, users(live), SECOND, target.Guards(verified=proved, options=allowed), 0)
