#!/usr/bin/env bash
# Build the release image: mongo-to-postgres-airflow:<VERSION> and :<VERSION>-<git revision>, labelled
# with both. docker-compose.yaml runs MONGO_MIGRATION_IMAGE (.env); to roll back, set it to the tag
# of the release before and run `docker compose up -d` again.
#   scripts/build-image.sh [docker build arguments, e.g. --push with a registry prefix in IMAGE]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
IMAGE=${IMAGE:-mongo-to-postgres-airflow}
version=$(cat VERSION)
revision=$(git rev-parse HEAD)
[ -z "$(git status --porcelain)" ] || echo "build-image: the work tree has uncommitted changes; the label names $revision" >&2
# A release's tag names one build: bump VERSION rather than give an existing tag other code.
built=$(docker image inspect --format '{{ index .Config.Labels "org.opencontainers.image.revision" }}' "$IMAGE:$version" 2>/dev/null || true)
if [ -n "$built" ] && [ "$built" != "$revision" ]; then
  echo "build-image: $IMAGE:$version is revision $built already; raise VERSION for $revision" >&2
  exit 1
fi
docker build --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  -t "$IMAGE:$version" -t "$IMAGE:$version-${revision:0:12}" "$@" .
echo "built $IMAGE:$version and $IMAGE:$version-${revision:0:12}"
