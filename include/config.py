"""Defaults for the migration: the counterpart of the seed project's ``params.py``.

The DAG turns each of these into a Param, so the trigger form shows them and a
run can override them.
"""

SEED_USERS = 1_000_000  # users to ensure in the source collection; 0 skips seeding
ITEMS_PER_PAGE = 8000  # documents per migrate_page task
CLUSTER_SIZE = 90  # page tasks allowed to run at once
PAGE_POOL = "migration_pages"  # the page tasks' pool, of CLUSTER_SIZE slots (see docker-compose.yaml)

MONGO_CONN_ID = "mongo_default"
POSTGRES_CONN_ID = "postgres_default"
MONGO_DATABASE = "app"
MONGO_COLLECTION = "users"
TARGET_SCHEMA = "public"
TARGET_TABLE = "users"

SCHEDULE = "0 2 * * *"  # nightly at 02:00 UTC
FAKER_SEED = 1234  # the same seed always produces the same users
