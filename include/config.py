"""Defaults for the migration: the counterpart of the seed project's ``params.py``.

The DAGs turn these into Params, so the trigger form shows them and a run can
override them; a mapping (``include/mappings``) can set its own defaults.
"""

import datetime as dt
import os
from pathlib import Path

SEED_USERS = (
    1_000_000  # the seed project's fake users: what to ask for in seed_users, where seeding is allowed
)
# Seeding writes fake users into the source, so a deployment allows it only by
# setting this variable to "true" (the local stack and the tests do); elsewhere a run
# asking for users fails before writing anything. The form's default is 0 everywhere,
# and scheduled runs never seed.
ALLOW_SEEDING_VARIABLE = "MONGO_MIGRATION_ALLOW_SEEDING"


def seeding_allowed() -> bool:
    return os.environ.get(ALLOW_SEEDING_VARIABLE, "").strip().lower() == "true"


# "incremental": apply only the changes since the point the live table was published
# as of, falling back to a full copy (saying why) when that cannot be done; "full".
COPY_MODE = "incremental"
ITEMS_PER_PAGE = 8000  # documents per migrate_page task
# Page tasks allowed to run at once: the DAG's max_active_tasks and the pool's slots. A deployment sets
# it in one variable, which docker-compose.yaml also turns into the parallelism and the workers' slots.
CLUSTER_SIZE_VARIABLE = "MONGO_MIGRATION_CLUSTER_SIZE"
_CLUSTER_SIZE = os.environ.get(CLUSTER_SIZE_VARIABLE, "").strip() or "90"
if not _CLUSTER_SIZE.isdigit() or int(_CLUSTER_SIZE) < 1:
    raise ValueError(
        f"{CLUSTER_SIZE_VARIABLE} is {_CLUSTER_SIZE!r}: it must be a whole number of page tasks, 1 or more"
    )
CLUSTER_SIZE = int(_CLUSTER_SIZE)
PAGE_POOL = "migration_pages"  # the page tasks' pool, of CLUSTER_SIZE slots (see docker-compose.yaml)

MONGO_CONN_ID = "mongo_default"
POSTGRES_CONN_ID = "postgres_default"
TARGET_SCHEMA = "public"  # of a mapping that names none
MAX_SHRINK_PERCENT = 10  # publish refuses a copy this much smaller than the live table
# publish refuses a copy whose new rejects (not set aside by the last publish) are more than this
# percent of the documents
MAX_REJECT_PERCENT = 1.0
# After a mapping change, publish refuses a changed column whose share of NULL rows rose by more than
# this many percentage points against the live table (a path typed wrong), or a new column whose path no
# document has
MAX_NULL_RISE_PERCENT = 10
# An incremental run proves the changes; the full proof (every _id read again) runs when the last is this
# many days old
FULL_PROOF_DAYS = 7
PUBLISH_WAIT_SECONDS = 300  # how long publish keeps trying while other sessions lock the live table

# The mappings, one DAG each (the users DAG's schedule, nightly at 02:00 UTC, is in users.yaml);
# a deployment that keeps them elsewhere sets this variable.
MAPPINGS_DIR = Path(os.environ.get("MONGO_MIGRATION_MAPPINGS_DIR", Path(__file__).parent / "mappings"))
# A hung run must not block the next night (max_active_runs is 1): the whole run
# ends by 14:00 UTC, and each task has a bound fitted to its work.
RUN_TIMEOUT = dt.timedelta(hours=12)
# A run not published this many minutes after it was queued sends a "missed its deadline" alert
# (alerts.py) and goes on: docker-compose.yaml sets 240 (06:00 UTC for the nightly 02:00 run); a
# mapping's timeout_minutes: {deadline: N} sets its own. Unset, no deadline: Airflow 3.3.2's
# `airflow dags test` fails a successful run of a DAG that has one (apache/airflow#73428), so the
# local stack has none.
_DEADLINE_MINUTES = os.environ.get("MONGO_MIGRATION_DEADLINE_MINUTES", "").strip()
PUBLISH_DEADLINE = dt.timedelta(minutes=int(_DEADLINE_MINUTES)) if _DEADLINE_MINUTES else None
TASK_TIMEOUTS = {
    # Seconds of checks; a dry run also reads the live table and counts the source.
    "preflight": dt.timedelta(hours=2),
    "reset_table": dt.timedelta(minutes=15),  # waits for the table's load lock a minute per try
    "seed_users": dt.timedelta(hours=2),  # only where seeding is allowed; a million users take minutes
    # Opens the stream; an incremental run also reads and applies the changes since its point, once.
    "open_change_stream": dt.timedelta(hours=2),
    "plan_pages": dt.timedelta(hours=1),  # one ordered _id scan and three counts
    "migrate_page": dt.timedelta(minutes=30),  # one page of at most 100,000 documents
    "catch_up": dt.timedelta(hours=2),  # the changes made while the pages ran, a batch per transaction
    "verify": dt.timedelta(hours=1),  # every _id of the source read again, and a catch-up per round
    "publish": dt.timedelta(hours=1),  # applies the difference to the live table, waits for its readers
}
FAKER_SEED = 1234  # the same seed always produces the same users
