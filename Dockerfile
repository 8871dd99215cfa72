# The Airflow image of docker-compose.yaml: the official image with the project's pinned
# requirements. dags/, plugins/ and include/ are mounted by docker-compose.yaml.
FROM apache/airflow:3.3.2
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir -r /requirements.txt
