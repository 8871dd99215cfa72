"""The proof and the publish: verify the copy against the source, then make the live tables equal to it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import AssetAlias
from airflow.sdk.exceptions import AirflowFailException

from mongo_migration import copy_mode, target
from mongo_migration.changes import CatchUp
from mongo_migration.connections import mongo_hook
from mongo_migration.documents import Conversion
from mongo_migration.operators.base import (
    NO_CHANGE_STREAM,
    OPTION_FIELDS,
    SOURCE_FIELDS,
    TARGET_FIELDS,
    SourceToTargetOperator,
    catch_up_or_fail,
    owner_of,
    violations_fail_the_run,
)
from mongo_migration.positions import consistency
from mongo_migration.report import asset_extra, published_line, summarize
from mongo_migration.run_options import RunOptions
from mongo_migration.target import Tables
from mongo_migration.verification import (
    ROUNDS,
    KeyCheck,
    Proof,
    Staged,
    count_staged,
    failure,
    proof_to_make,
    prove,
    verify_against,
)

STILL_CHANGING_IN_VERIFY = (
    "%s documents changed again in each of %s catch-up rounds, faster than verify reads them: each "
    "difference was a change the copy then applied, and their rows are as the stream showed them last "
    "(not proven against a read of the source): %s"
)


COUNT_STILL_CHANGING = (
    "%s changed in each of %s rounds of counting its documents, and its server could not count as of the "
    "copy's point: verify made the full proof instead of the proof of the changes"
)


class VerifyMigrationOperator(SourceToTargetOperator):
    """Fail unless the staging tables hold exactly the ``_id`` values the source holds (``verification``).

    The full proof reads every ``_id`` of the source again; an incremental
    run's proof of the changes reads the changed documents again and compares
    the counts, and the full proof runs when the last is ``full_proof_days``
    old. A difference that a change since the catch-up explains is caught up
    and read again; one that no change explains fails the run, naming the
    ``_id`` values (or the counts), and so does an ``_id`` held twice; in an
    incremental run it also makes the next run copy in full. Returns the proof
    (``verification.Proof``) that publish checks.
    """

    template_fields: Sequence[str] = (
        "page_results",
        "caught_up",
        "start",
        *TARGET_FIELDS,
        *SOURCE_FIELDS,
        *OPTION_FIELDS,
    )

    def __init__(
        self, *, page_results: list[dict], caught_up: dict | None = None, start: dict | None = None, **kw
    ):
        super().__init__(**kw)
        self.page_results = page_results
        self.caught_up = caught_up  # what catch_up applied
        self.start = start  # what open_change_stream chose (copy_mode.Copy)

    def execute(self, context: Any) -> dict:
        # A slice fetches every page's result in one request, not one request per page.
        page_results = list((self.page_results or [])[:])
        self.declare_source_inlet()
        copy, options = copy_mode.Copy.from_xcom(self.start), self.run_options()
        content = options.verify_content  # every document's content, not only its _id
        owner, conversion = owner_of(context), Conversion(self.mapping)
        with mongo_hook(self.mongo_conn_id) as hook, self.target_connection() as conn:
            source = self.source(hook)
            published = target.published_state(conn, self.tables())
            kind, why_proof = proof_to_make(
                copy.mode, published and published.full_proof_at, options.full_proof_days, time.time()
            )
            self.log.info("Verify makes the %s proof: %s", kind, why_proof)

            def catch_up_again(tables: Tables, keys: set[str]) -> CatchUp:
                return catch_up_or_fail(self, source, conn, tables, owner, keys, grace_seconds=0)

            with violations_fail_the_run():
                tables, check = verify_against(
                    source, conn, self.tables(), conversion, content, catch_up_again, kind
                )
            wall_seconds = (datetime.now(UTC) - context["dag_run"].start_date).total_seconds()
            run = summarize(page_results, wall_seconds, copy.caught_up(self.caught_up))
            staged = count_staged(conn, tables, self.mapping, copy.mode == "full", run)
            _log_counts(self.log, self.source_name(), check, staged, tables)
            if differ := failure(check, self.source_name(), tables):
                if tables.incremental:  # the stream cannot explain it: a full copy will not meet it again
                    target.forget_published_point(conn, tables, f"verify found a difference: {differ}")
                    differ += f". The next run copies {tables} in full."
                raise AirflowFailException(differ)
        if check.changing:
            self.log.warning(STILL_CHANGING_IN_VERIFY, len(check.changing), ROUNDS, check.changing[:10])
        if check.count_changing:
            self.log.warning(COUNT_STILL_CHANGING, self.source_name(), ROUNDS)
            why_proof = f"the source's count kept changing in each of {ROUNDS} rounds"
        if staged.position is None:
            self.log.warning(NO_CHANGE_STREAM, self.source_name())
        seconds = _stream_seconds(copy.position)
        proof = prove(copy, check, staged, run, self.source_name(), tables, content, why_proof, seconds)
        held = "every _id of the source" if check.proof == "full" else "the source's changed documents"
        self.log.info(
            "Verified: the target holds %s, %s as rejects; consistent with it %s",
            held,
            staged.rejected,
            consistency(staged.position),
        )
        self.log.info("Run summary: %s", proof.summary)
        self.log.info("Run report:\n%s", proof.report)
        return proof.to_xcom()


def _log_counts(log: Any, source: str, check: KeyCheck, staged: Staged, tables: Tables) -> None:
    """What verify read of the source and counted of the copy, and the reasons of the copy's rejects."""
    counts = f"{staged.rows} rows and {staged.rejected} rejects; {check.rounds} catch-up rounds"
    read = (
        "_id values read again"
        if check.proof == "full"
        else "documents counted (the changed ones read again)"
    )
    log.info("Source %s: %s %s; target %s: %s", source, check.source, read, tables, counts)
    for column, reason, count in staged.reject_reasons:
        where = f"column {column}" if column else "the document as a whole"
        log.warning("%s documents set aside in %s for %s: %s", count, tables.rejects, where, reason)


def _proved_at(proof: Proof | None) -> float | None:
    """When the published copy's full proof was, for the next runs' cadence: now, if verify made it; 0
    (never) for a copy published without proof, so that the next run makes it; None (the last full proof
    stands) for a proof of the changes."""
    if proof is None:
        return 0.0
    return time.time() if proof.proof == "full" else None


def _stream_seconds(start: dict | None) -> float | None:
    """How long the source's oplog has had to keep this run's ``start`` so far: until verify's last
    catch-up read the stream on from it, whatever the collection's own changes (the oplog is every
    collection's); None: no change stream."""
    return round(time.time() - start["cluster_time"]["t"], 1) if start else None


class PublishOperator(SourceToTargetOperator):
    """Make the live table equal to this run's verified staging table in one transaction (target.publish).

    It refuses an unverified, empty or shrunken copy, or one with more rejects
    than allowed, unless a Param allows it for the run. Then an event of the
    asset alias ``asset_alias`` names the table as an Asset
    (``postgres://host:port/database/schema/table``), with the
    source collection, the run summary and what changed in its extra.
    """

    template_fields: Sequence[str] = ("verified", *TARGET_FIELDS, *SOURCE_FIELDS, *OPTION_FIELDS)

    def __init__(self, *, verified: dict | None, asset_alias: str, **kwargs):
        super().__init__(outlets=[AssetAlias(asset_alias)], **kwargs)
        self.verified = verified
        self.asset_alias = asset_alias

    def execute(self, context: Any) -> dict:
        owner, options, proof = owner_of(context), self.run_options(), self.proof()
        source, table = self.declare_source_inlet(), self.target_asset()
        if proof is None:
            self.log.warning("What a changed mapping emptied is not judged: verify returned no proof")
        full_copy = proof.stream_seconds if proof and proof.mode == "full" else None
        with self.target_connection() as conn:
            guards, versions = self.guards(proof, options), copy_mode.versions_of(self.mapping)
            wait = options.publish_wait_seconds
            result = target.publish(
                conn, self.tables(), owner, guards, wait, versions, full_copy, _proved_at(proof)
            )
        if result.get("already_published"):
            self.log.warning("%s was already published by %s (this is a retry)", table.name, owner)
        self.log.info("Published %s, %s", table.name, published_line(result))
        mode, summary = (proof.mode, proof.summary) if proof else (None, "")
        extra = asset_extra(owner.run_id, source.uri, mode, summary, result)
        context["outlet_events"][AssetAlias(self.asset_alias)].add(table, extra=extra)
        return result

    @staticmethod
    def guards(proof: Proof | None, options: RunOptions) -> target.Guards:
        """What publish refuses: a copy that is not the one verify proved, and what ``options`` limit."""
        return target.Guards(
            verified=proof.staged() if proof else None,
            options=options,
            columns=proof.columns if proof else None,
        )

    def proof(self) -> Proof | None:
        """What verify proved; None: it returned nothing (marked successful by hand)."""
        if not self.verified:
            return None
        try:
            return Proof.from_xcom(self.verified)
        except TypeError as error:
            raise AirflowFailException(
                f"verify's result cannot be read ({error}): it was written by another version of this "
                "project. Nothing was published; run the DAG again"
            ) from None
