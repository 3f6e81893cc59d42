"""The policy in one table: each situation a pass can end in -> phase, conditions, wake-up, event.

decide.py names the situation (a Reason); everything a person or a machine reads about it comes
from its row here, so the whole behaviour can be scanned in one place (docs/operator.md renders
the same table). Conditions follow the Kubernetes API conventions and kstatus:
- Available (and Ready, its alias): the current generation's release serves on every replica.
- Progressing / Reconciling: the operator is moving towards the spec and expects to get there.
- Degraded: something is wrong that the on-call person should know about.
- Stalled: no progress without a change by a person (spec, Secret, a conflicting object).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal


class Phase(enum.StrEnum):
    PENDING = "Pending"
    PAUSED = "Paused"
    MIGRATING = "Migrating"
    ROLLING_OUT = "RollingOut"
    AVAILABLE = "Available"
    SCALED_TO_ZERO = "ScaledToZero"
    SCALING = "Scaling"
    DEGRADED = "Degraded"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


class Reason(enum.StrEnum):
    PAUSED = "Paused"
    ROLLOUT_COMPLETE = "RolloutComplete"
    SCALING = "Scaling"
    SCALED_TO_ZERO = "ScaledToZero"
    MIGRATING = "Migrating"
    WAITING_FOR_PREVIOUS_MIGRATION = "WaitingForPreviousMigration"
    ROLLING_OUT = "RollingOut"
    UPGRADE_QUEUED = "UpgradeQueued"
    UPGRADE_HALTED = "UpgradeHalted"
    ANALYSING = "Analysing"
    DEPENDENCY_UNAVAILABLE = "DependencyUnavailable"
    UNSCHEDULABLE = "Unschedulable"
    IMAGE_PULL_TRANSIENT = "ImagePullTransient"
    CONFIG_NOT_FOUND = "ConfigNotFound"
    REPLICAS_UNAVAILABLE = "ReplicasUnavailable"
    MIGRATION_FAILED = "MigrationFailed"
    MIGRATION_BLOCKED = "MigrationBlocked"
    ROLLED_BACK = "RolledBack"
    ROLLOUT_FAILED = "RolloutFailed"
    ROLLBACK_REQUESTED = "RollbackRequested"
    REQUESTED_REVISION_FAILING = "RequestedRevisionFailing"
    REVISION_NOT_FOUND = "RevisionNotFound"
    REVISION_NOT_SERVABLE = "RevisionNotServable"
    REVISION_BELOW_FLOOR = "RevisionBelowFloor"
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 - a reason, not a secret
    SECRET_KEY_MISSING = "SecretKeyMissing"  # noqa: S105 - a reason, not a secret
    OBJECT_CONFLICT = "ObjectConflict"


# Seconds until the next pass when no watch event wakes the loop earlier.
ROLLOUT_POLL = 2.0
MIGRATION_POLL = 5.0
RETRY_POLL = 15.0
IDLE_POLL = 60.0

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Row:
    phase: Phase
    progressing: bool
    degraded: bool
    stalled: bool
    requeue: float
    # Every input of the situation arrives as a watch event (the ItemService, its Jobs, pods,
    # Deployment, revisions, Secret): with the watch-fed caches a pass in motion then waits for
    # an event or a deadline the decision names, not for the poll (pacing.next_sleep).
    # False where the decision rests on what no watch reports: /metrics, another
    # ItemService's progress (the upgrade wave), an object that is not ours. Whatever the
    # row, a pass that read such an input polls (decide._read_unwatched).
    watched: bool
    event: EventType


# fmt: off
N: Final = "Normal"
W: Final = "Warning"
T, F = True, False
P = Phase
TABLE: dict[Reason, Row] = {
    # situation                          phase            prog deg stall requeue      watch event
    Reason.ROLLOUT_COMPLETE:               Row(P.AVAILABLE,      F, F, F, IDLE_POLL,      T, N),
    Reason.SCALING:                        Row(P.SCALING,        T, F, F, ROLLOUT_POLL,   T, N),
    Reason.SCALED_TO_ZERO:                 Row(P.SCALED_TO_ZERO, F, F, F, IDLE_POLL,      T, N),
    Reason.PAUSED:                         Row(P.PAUSED,         F, F, F, IDLE_POLL,      T, N),
    Reason.MIGRATING:                      Row(P.MIGRATING,      T, F, F, MIGRATION_POLL, T, N),
    Reason.WAITING_FOR_PREVIOUS_MIGRATION: Row(P.MIGRATING,      T, F, F, MIGRATION_POLL, T, N),
    Reason.ROLLING_OUT:                    Row(P.ROLLING_OUT,    T, F, F, ROLLOUT_POLL,   T, N),
    Reason.UPGRADE_QUEUED:                 Row(P.AVAILABLE,      T, F, F, RETRY_POLL,     F, N),
    Reason.UPGRADE_HALTED:                 Row(P.AVAILABLE,      F, T, T, IDLE_POLL,      T, W),
    Reason.ANALYSING:                      Row(P.ROLLING_OUT,    T, F, F, MIGRATION_POLL, F, N),
    Reason.DEPENDENCY_UNAVAILABLE:         Row(P.ROLLING_OUT,    T, T, F, ROLLOUT_POLL,   F, W),
    Reason.UNSCHEDULABLE:                  Row(P.ROLLING_OUT,    T, T, F, MIGRATION_POLL, T, W),
    Reason.IMAGE_PULL_TRANSIENT:           Row(P.ROLLING_OUT,    T, T, F, MIGRATION_POLL, T, W),
    Reason.CONFIG_NOT_FOUND:               Row(P.ROLLING_OUT,    F, T, T, RETRY_POLL,     T, W),
    Reason.REPLICAS_UNAVAILABLE:           Row(P.DEGRADED,       F, T, F, MIGRATION_POLL, T, W),
    Reason.ROLLBACK_REQUESTED:             Row(P.ROLLED_BACK,    F, F, F, IDLE_POLL,      T, N),
    Reason.REQUESTED_REVISION_FAILING:     Row(P.ROLLED_BACK,    F, T, T, MIGRATION_POLL, T, W),
    Reason.ROLLED_BACK:                    Row(P.ROLLED_BACK,    F, T, T, IDLE_POLL,      T, W),
    Reason.ROLLOUT_FAILED:                 Row(P.FAILED,         F, T, T, IDLE_POLL,      T, W),
    Reason.MIGRATION_FAILED:               Row(P.FAILED,         F, T, T, IDLE_POLL,      T, W),
    Reason.MIGRATION_BLOCKED:              Row(P.FAILED,         F, T, T, IDLE_POLL,      T, W),
    Reason.REVISION_NOT_FOUND:             Row(P.DEGRADED,       F, T, T, RETRY_POLL,     T, W),
    Reason.REVISION_NOT_SERVABLE:          Row(P.DEGRADED,       F, T, T, RETRY_POLL,     T, W),
    Reason.REVISION_BELOW_FLOOR:           Row(P.DEGRADED,       F, T, T, RETRY_POLL,     T, W),
    Reason.SECRET_NOT_FOUND:               Row(P.DEGRADED,       F, T, T, RETRY_POLL,     T, W),
    Reason.SECRET_KEY_MISSING:             Row(P.DEGRADED,       F, T, T, RETRY_POLL,     T, W),
    Reason.OBJECT_CONFLICT:                Row(P.DEGRADED,       F, T, T, RETRY_POLL,     F, W),
}
# fmt: on

AVAILABLE_PHASES = frozenset({Phase.AVAILABLE, Phase.SCALED_TO_ZERO})
