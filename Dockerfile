# The release: Airflow with the project's pinned requirements and its code, one image for every
# component (docker-compose.yaml, deploy/helm/values.yaml). Build it with scripts/build-image.sh,
# which tags it with VERSION and the git revision; docker-compose.dev.yaml mounts the working tree
# over the copied code for development.
FROM apache/airflow:3.3.2
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir -r /requirements.txt
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 scripts/maintenance.sh /opt/airflow/scripts/maintenance.sh
# Compiled once here: a container running as another AIRFLOW_UID could not write the caches.
RUN python -m compileall -q /opt/airflow/dags /opt/airflow/plugins /opt/airflow/include
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mongo-to-postgres-airflow" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION"
ENV MONGO_MIGRATION_VERSION=$VERSION
