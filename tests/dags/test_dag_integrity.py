"""The DAG file: imports cleanly, is configured as promised, and touches no service at import."""

import datetime as dt
import inspect
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.sdk import DeadlineReference

from include import config
from mongo_migration.run_options import RunOptions

ROOT = Path(__file__).resolve().parents[2]

# Parse the DAG folder in a fresh interpreter with Python's sockets refused and
# every connection (and Airflow's own database) pointing at a closed port, so any
# database or network call made at import time would surface as an import error.
PARSE_WITHOUT_NETWORK = """
import json, socket, sys, warnings
from airflow.dag_processing.dagbag import DagBag

def refuse(*args, **kwargs):
    raise RuntimeError("network call at DAG import time")

socket.socket.connect = refuse
socket.create_connection = refuse
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "import_errors": {str(k): v for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
    "seed_users": bag.dags["mongo_to_postgres"].params["seed_users"],
    "seed_users_description": bag.dags["mongo_to_postgres"].params.get_param("seed_users").description,
    "warnings": [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if sys.argv[2] in w.filename],
}))
"""


# A deployment that has not allowed seeding (production): MONGO_MIGRATION_ALLOW_SEEDING unset.
CLOSED_PORT = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg://nobody:nothing@127.0.0.1:9/airflow",
    "AIRFLOW_CONN_POSTGRES_DEFAULT": "postgresql://nobody:nothing@127.0.0.1:9/target",
    "AIRFLOW_CONN_MONGO_DEFAULT": "mongo://127.0.0.1:9/?directConnection=true",
}


@pytest.fixture(scope="module")
def parsed():
    result = subprocess.run(
        [sys.executable, "-c", PARSE_WITHOUT_NETWORK, str(ROOT / "dags"), str(ROOT)],
        env={**{k: v for k, v in os.environ.items() if k != config.ALLOW_SEEDING_VARIABLE}, **CLOSED_PORT},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=ROOT / "dags").dags["mongo_to_postgres"]


def test_dag_folder_imports_without_errors_or_network_calls(parsed):
    assert parsed["import_errors"] == {}
    assert parsed["dag_ids"] == ["mongo_orders_to_postgres", "mongo_to_postgres"]  # a DAG per mapping


def test_a_malformed_mapping_is_an_import_error_naming_its_file_and_field_and_the_other_dags_stay(tmp_path):
    for mapping in (ROOT / "include" / "mappings").glob("*.yaml"):
        (tmp_path / mapping.name).write_text(mapping.read_text())
    broken = (
        (ROOT / "include" / "mappings" / "orders.yaml").read_text().replace("type: integer", "type: int2")
    )
    (tmp_path / "returns.yaml").write_text(broken.replace("mongo_orders_to_postgres", "mongo_returns"))

    result = subprocess.run(
        [sys.executable, "-c", PARSE_WITHOUT_NETWORK, str(ROOT / "dags"), str(ROOT)],
        env={**os.environ, **CLOSED_PORT, "MONGO_MIGRATION_MAPPINGS_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    parsed = json.loads(result.stdout.strip().splitlines()[-1])

    assert parsed["dag_ids"] == ["mongo_orders_to_postgres", "mongo_to_postgres"]  # the good ones stay
    [(file, error)] = parsed["import_errors"].items()
    assert file.endswith("dags/mapping_errors.py")  # a file without DAGs: none of them is marked broken
    assert (
        f"{tmp_path}/returns.yaml: children[0] (items).columns[1] (quantity).type: 'int2' is not a type"
        in error
    )


def test_a_deployment_that_does_not_allow_seeding_offers_no_seeding_by_default_and_says_so(parsed):
    assert parsed["seed_users"] == 0
    assert parsed["seed_users_description"].endswith("This deployment refuses it.")


def test_project_code_raises_no_deprecation_or_other_warnings_at_import(parsed):
    assert parsed["warnings"] == []


def documented_task_order() -> list[str]:
    """The tasks in the order of the table in docs/operators.md."""
    section = (ROOT / "docs" / "operators.md").read_text().split("## How it works", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, re.M)


def test_tasks_run_in_the_order_the_docs_document(dag):
    order = documented_task_order()
    assert sorted(dag.task_ids) == sorted(order)
    assert order[0] == "preflight" and dag.get_task("preflight").upstream_task_ids == set()
    for position, task_id in enumerate(order[1:], 1):
        upstream = dag.get_task(task_id).upstream_task_ids
        assert order[position - 1] in upstream
        assert upstream <= set(order[:position])


def test_dag_has_tags_retries_a_nightly_schedule_and_docs(dag):
    assert dag.tags
    assert all(task.retries >= 1 for task in dag.tasks)
    assert dag.timetable.expression == "0 2 * * *"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert "migrate_page" in dag.doc_md


def test_a_hung_run_cannot_block_the_next_night(dag):
    assert dag.dagrun_timeout == config.RUN_TIMEOUT <= dt.timedelta(hours=12)
    for task in dag.tasks:
        assert task.execution_timeout == config.TASK_TIMEOUTS[task.task_id], task.task_id
        assert task.execution_timeout < dag.dagrun_timeout
    publish_wait = dt.timedelta(seconds=dag.params.get_param("publish_wait_seconds").schema["maximum"])
    assert publish_wait <= dag.get_task("publish").execution_timeout / 2  # time left to publish


def test_page_parallelism_is_the_cluster_size(dag):
    assert dag.max_active_tasks == config.CLUSTER_SIZE
    assert dag.get_task("migrate_page").max_active_tis_per_dag == config.CLUSTER_SIZE
    assert dag.get_task("migrate_page").pool == config.PAGE_POOL


def test_params_default_to_the_mapping_and_the_configuration_module(dag):
    defaults = {name: param.value for name, param in dag.params.items()}
    assert defaults == {
        "seed_users": 0,  # seeding only when a run asks for it, even where it is allowed
        "mode": config.COPY_MODE,
        "items_per_page": config.ITEMS_PER_PAGE,
        "mongo_database": "app",  # include/mappings/users.yaml
        "mongo_collection": "users",
        "target_schema": "public",
        "target_table": "users",
        "max_shrink_percent": config.MAX_SHRINK_PERCENT,
        "max_reject_percent": config.MAX_REJECT_PERCENT,
        "max_null_rise_percent": config.MAX_NULL_RISE_PERCENT,
        "publish_empty": False,
        "verify_content": False,
        "full_proof_days": config.FULL_PROOF_DAYS,
        "publish_unverified": False,
        "publish_wait_seconds": config.PUBLISH_WAIT_SECONDS,
        "dry_run": False,
    }


def test_the_trigger_form_groups_every_param_with_a_title_a_description_and_bounds(dag):
    schemas = {name: param.schema for name, param in dag.params.items()}
    for name, schema in schemas.items():
        assert schema["title"] and dag.params.get_param(name).description, name
        bounds = {"pattern"} <= schema.keys() or {"minimum", "maximum"} <= schema.keys() or "enum" in schema
        assert schema["type"] == "boolean" or bounds, name
    sections = [schema["section"] for schema in schemas.values()]
    order = ["Source", "Pages", "Target", "Publish", "For one run only"]
    assert sections == sorted(sections, key=order.index)  # in this order
    assert [name for name, section in zip(schemas, sections, strict=True) if section == order[-1]] == [
        "publish_empty",  # the safety overrides, and the dry run
        "publish_unverified",
        "dry_run",
    ]


def test_mapped_pages_are_labelled_by_page_number_and_id_range(dag):
    assert dag.get_task("migrate_page").map_index_template == "{{ page_label }}"


def test_publish_announces_the_target_table_as_an_asset(dag):
    from airflow.sdk import AssetAlias

    assert dag.get_task("publish").outlets == [AssetAlias("mongo_to_postgres_target")]


def test_the_nightly_schedule_runs_at_two_in_the_morning_utc(dag):
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import TimeRestriction

    timetable = DagSerialization.from_dict(
        DagSerialization.to_dict(dag)
    ).timetable  # as the scheduler sees it
    restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=False)
    runs = [timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)]
    for _ in range(2):
        runs.append(
            timetable.next_dagrun_info(
                last_automated_data_interval=runs[-1].data_interval, restriction=restriction
            )
        )

    times = [run.run_after for run in runs]
    assert all((time.hour, time.minute, time.utcoffset()) == (2, 0, dt.timedelta(0)) for time in times)
    assert [later - earlier for earlier, later in itertools.pairwise(times)] == [dt.timedelta(days=1)] * 2
    assert times[0] > dt.datetime.now(dt.UTC) - dt.timedelta(days=1)  # no catch-up of missed nights


def test_a_run_not_published_by_its_deadline_alerts_through_the_runs_notifier(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setattr(config, "PUBLISH_DEADLINE", dt.timedelta(hours=4))  # as docker-compose.yaml sets it
    dag = DagBag(dag_folder=ROOT / "dags").dags["mongo_to_postgres"]
    [deadline] = dag.deadline
    assert (deadline.reference, deadline.interval) == (
        DeadlineReference.DAGRUN_QUEUED_AT,
        dt.timedelta(hours=4),
    )
    assert deadline.callback.path == "mongo_migration.alerts.RunAlert"  # the failure alerts' notifier
    assert deadline.callback.kwargs["outcome"] == "missed its deadline"
    failure_alerts = dag.on_failure_callback  # the DAG's: one alert per failed run
    assert [(type(alert).__name__, alert.outcome) for alert in failure_alerts] == [("RunAlert", "failed")]
    assert "on_failure_callback" not in dag.default_args  # not one per failed task (90 pages: 90 alerts)


def test_the_local_stack_has_no_deadline_which_airflow_dags_test_cannot_run(dag):
    assert config.PUBLISH_DEADLINE is None and not dag.deadline  # apache/airflow#73428


def params_table(dag) -> str:
    """docs/params.md's table, from the users DAG's Params: the form is the one declaration."""

    def shown(value) -> str:
        if isinstance(value, bool):
            return f"`{str(value).lower()}`"
        return f"`{value}`" if isinstance(value, str) else f"{value:,}"

    def allowed(schema: dict) -> str:
        if "enum" in schema:
            return ", ".join(shown(value) for value in schema["enum"])
        if "minimum" in schema:
            return f"{shown(schema['minimum'])} to {shown(schema['maximum'])}"
        return "a name" if "pattern" in schema else "`true`, `false`"

    rows = [
        "| Section | Param | Default | Allowed | Meaning |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {param.schema['section']} | `{name}` | {shown(param.value)} | {allowed(param.schema)} | "
            f"{param.schema['title']}: {param.description.split(' This deployment ')[0]} |"
            for name, param in dag.params.items()
        ),
    ]
    return "\n".join(rows) + "\n"


def test_the_params_page_shows_the_trigger_form_as_declared(dag):
    table = params_table(dag)
    assert table in (ROOT / "docs" / "params.md").read_text(), (
        "docs/params.md's table is not the DAG's form (plugins/mongo_migration/run_options.py); "
        f"write this one in its place:\n{table}"
    )


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=ROOT / "dags")


@pytest.mark.parametrize("dag_id", ["mongo_to_postgres", "mongo_orders_to_postgres"])
def test_every_task_that_reads_the_runs_options_renders_every_option_of_its_form(bag, dag_id):
    dag = bag.dags[dag_id]
    form = [name for name in dag.params if name in RunOptions.model_fields]
    for task in dag.tasks:
        operator = getattr(task, "operator_class", type(task))
        reads = "self.run_options()" in inspect.getsource(operator)
        assert ("options" in task.template_fields) is reads, task.task_id
        if reads:
            assert task.options == {name: f"{{{{ params.{name} }}}}" for name in form}, task.task_id
