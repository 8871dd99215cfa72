"""The operators of the DAGs that copy a collection, one DAG per mapping (``dags/mongo_to_postgres.py``).

Each one creates its hooks in ``execute`` (and reads the run's options once, where it needs them), calls
the step it is named for and returns a typed result: ``preparing`` (reset,
preflight, seeding, the copy's mode), ``copying`` (the plan, a page, the
catch-up) and ``proving`` (verify, publish), on what ``base`` shares. The work
is in the modules beside them (``docs/architecture.md``).
"""

from mongo_migration.operators.base import asset_alias
from mongo_migration.operators.copying import CatchUpOperator, MigratePageOperator, PlanPagesOperator
from mongo_migration.operators.preparing import (
    OpenChangeStreamOperator,
    PreflightOperator,
    ResetTableOperator,
    SeedUsersOperator,
)
from mongo_migration.operators.proving import PublishOperator, VerifyMigrationOperator

__all__ = [
    "CatchUpOperator",
    "MigratePageOperator",
    "OpenChangeStreamOperator",
    "PlanPagesOperator",
    "PreflightOperator",
    "PublishOperator",
    "ResetTableOperator",
    "SeedUsersOperator",
    "VerifyMigrationOperator",
    "asset_alias",
]
