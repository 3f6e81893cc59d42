#!/bin/sh
# `migrate` sleeps first (a slow migration, for tests); everything else is items-service as is.
# The sleep ends on SIGTERM with 143, as `items-service migrate` itself does: a shell as pid 1
# would otherwise ignore the signal and be killed at the end of its grace period.
set -eu
if [ "${1:-}" = migrate ]; then
    echo "e2e: slow migration: sleeping ${E2E_MIGRATION_SLEEP_SECONDS:-20}s before migrating" >&2
    trap 'echo "e2e: stopped while sleeping" >&2; exit 143' TERM
    sleep "${E2E_MIGRATION_SLEEP_SECONDS:-20}" &
    wait $!
    trap - TERM
fi
exec items-service "$@"
