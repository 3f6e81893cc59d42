#!/bin/sh
# `migrate` sleeps first (a slow migration, for tests); everything else is items-service as is.
set -eu
if [ "${1:-}" = migrate ]; then
    echo "e2e: slow migration: sleeping ${E2E_MIGRATION_SLEEP_SECONDS:-20}s before migrating" >&2
    sleep "${E2E_MIGRATION_SLEEP_SECONDS:-20}"
fi
exec items-service "$@"
