"""What one task hands the next through XCom reads back as written, and a field named otherwise on one
side only fails by its name, not with a KeyError at 3 a.m."""

from dataclasses import replace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from mongo_migration import target
from mongo_migration.copy_mode import Copy
from mongo_migration.operators import PublishOperator
from mongo_migration.report import summarize
from mongo_migration.run_options import RunOptions
from mongo_migration.verification import Proof
from tests.staging import USERS

PROOF = Proof(
    mode="full",
    reason="the Param mode asks for one",
    source=250,
    target=248,
    rejected=2,
    rejects_by_column={"age": 2},
    columns={"columns": [], "children": []},
    position={"cluster_time": {"t": 1, "i": 2}},
    stream_seconds=12.5,
    catch_up_rounds=1,
    still_changing=[],
    run={"documents": 250, "pages": 3},
    summary="250 documents (2 rejected) in 3 pages",
    report="### Migration report",
)


def renamed(value: dict, old: str, new: str) -> dict:
    return {(new if key == old else key): field for key, field in value.items()}


def test_the_copy_chosen_reads_back_as_written_and_a_field_named_otherwise_is_refused_by_name():
    chosen = Copy("full", "the Param mode asks for one", {"cluster_time": {"t": 1, "i": 2}})

    assert Copy.from_xcom(chosen.to_xcom()) == chosen
    assert Copy.from_xcom(None) == Copy("full", None, None)  # a task run alone
    with pytest.raises(TypeError, match="start"):
        Copy.from_xcom(renamed(chosen.to_xcom(), "position", "start"))


def test_verify_proof_reads_back_as_written_and_publish_refuses_one_it_cannot_read_naming_the_field():
    def publish(verified: dict) -> PublishOperator:
        fields = {"mongo_database": "app", "mongo_collection": "users", "target_table": "users"}
        return PublishOperator(task_id="publish", verified=verified, asset_alias="a", mapping=USERS, **fields)

    assert Proof.from_xcom(PROOF.to_xcom()) == PROOF
    assert publish(PROOF.to_xcom()).proof() == PROOF
    with pytest.raises(AirflowFailException, match=r"rows.*Nothing was published"):
        publish(renamed(PROOF.to_xcom(), "target", "rows")).proof()
    assert publish(None).proof() is None  # marked successful by hand: publish_unverified decides
    options = RunOptions(max_shrink_percent=50)
    guards = PublishOperator.guards(PROOF, options)
    proved = target.StagedState(248, 2, None, None, None, PROOF.position)  # a proof that recorded no keys
    assert (guards.verified, guards.columns, guards.options) == (proved, PROOF.columns, options)


def test_a_proof_verify_wrote_before_the_proof_was_typed_still_reads_with_its_summary_under_run():
    summary = {**summarize([], 10.0), "documents": 250, "rejected": 5}  # the pages' rejects
    before = {
        **summary,
        **{key: value for key, value in PROOF.to_xcom().items() if key != "run"},
    }  # as it was

    read = Proof.from_xcom(before)

    assert read.rejected == PROOF.rejected == 2  # the copy's, which the old publish read too
    assert read == replace(PROOF, run={key: value for key, value in summary.items() if key != "rejected"})
    with pytest.raises(TypeError, match="pages_run"):
        Proof.from_xcom(renamed(PROOF.to_xcom(), "run", "pages_run"))  # a rename, not the old shape
