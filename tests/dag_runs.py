"""What a test reads of a finished ``dag.test()`` run: a task's state, its result, its label."""


def task_instance(dag_run, task_id: str):
    [instance] = [ti for ti in dag_run.get_task_instances() if ti.task_id == task_id]
    return instance


def state(dag_run, task_id: str) -> str:
    return task_instance(dag_run, task_id).state


def result(dag_run, task_id: str):
    return task_instance(dag_run, task_id).xcom_pull(task_ids=task_id)


def label(dag_run, task_id: str) -> str:
    """What the run's task list shows beside the task (its rendered map_index_template)."""
    return task_instance(dag_run, task_id).rendered_map_index
