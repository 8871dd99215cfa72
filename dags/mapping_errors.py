"""The mappings that cannot be used, as Airflow import errors of this file.

Airflow marks every DAG of a file that raises as broken, so the DAG file that
builds one DAG per mapping (``mongo_to_postgres.py``) skips a malformed mapping
and this file, which holds no DAG, raises for it instead: the UI's import
errors then name the mapping's file, each field and what is wrong, and the
DAGs of the other mappings keep running. (The words "airflow" and "dag" tell
Airflow's DAG processor to read this file.)
"""

from mongo_migration.mapping import MappingError, load_mappings

errors = load_mappings()[1]
if errors:
    raise MappingError("\n".join(str(error) for error in errors))
