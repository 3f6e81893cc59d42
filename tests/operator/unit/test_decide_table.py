"""The decision layer as a table: ItemService + observed cluster -> actions, events, status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from items_operator.decide import IDLE_POLL, MIGRATION_POLL, ROLLOUT_POLL, decide
from items_operator.model import ItemService
from items_operator.observe import JobState, Observed, SecretState

from .factories import (
    NOW,
    V1,
    V2,
    V3,
    conditions,
    converged_hashes,
    deployment,
    item_service,
    job,
    job_name,
    observed,
    pod,
    summarize,
)

GOOD_V1: dict[str, Any] = {"phase": "Available", "lastGoodImage": V1, "currentImage": V1}
ROLLED_BACK_V2: dict[str, Any] = {
    "phase": "RolledBack",
    "lastGoodImage": V1,
    "currentImage": V1,
    "failedImage": V2,
    "conditions": [
        {
            "type": "RolledBack",
            "status": "True",
            "reason": "CrashLoopBackOff",
            "message": f"rolled back from {V2}: CrashLoopBackOff",
            "lastTransitionTime": "2026-11-29T01:50:00Z",
            "observedGeneration": 2,
        }
    ],
}


class _contains(str):  # noqa: N801 - reads as a matcher in the table
    """Status value matcher: the actual string contains this one."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and str.__contains__(other, str(self))

    __hash__ = str.__hash__


@dataclass(frozen=True)
class Case:
    id: str
    cr: ItemService
    seen: Observed
    phase: str
    actions: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    conditions: dict[str, tuple[str, str]] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    requeue: float | None = None


def _case(id: str, cr: ItemService, seen_kwargs: dict[str, Any], **expect: Any) -> Case:
    return Case(id=id, cr=cr, seen=observed(cr, **seen_kwargs), **expect)


def _cases() -> list[Case]:
    fresh = item_service(V1)
    good = item_service(V1, status=GOOD_V1)
    new = item_service(V2, status=GOOD_V1, generation=2)
    new_rolling = item_service(V2, status={**GOOD_V1, "phase": "RollingOut"}, generation=2)
    first_rolling = item_service(V1, status={"phase": "RollingOut"})
    held = item_service(V2, status=ROLLED_BACK_V2, generation=2)
    v3 = item_service(V3, status=ROLLED_BACK_V2, generation=3)
    running_v2 = (job(V2, JobState.ACTIVE),)

    def rollback(kind_reason: str, **seen: Any) -> Case:
        return _case(
            f"rollout of V2 fails: {kind_reason} -> roll back to V1",
            new_rolling,
            {
                "deployment": deployment(new_rolling, V2, complete=False, ready=2),
                "jobs": (job(V2, JobState.SUCCEEDED),),
                **seen,
            },
            phase="RolledBack",
            actions=[f"apply Deployment {V1}"],
            events=["RolledBack"],
            conditions={
                "RolledBack": ("True", kind_reason),
                "Progressing": ("False", "RolledBack"),
            },
            status={"failedImage": V2, "currentImage": V1, "lastGoodImage": V1},
            requeue=IDLE_POLL,
        )

    return [
        # --- creation and the first rollout ---
        _case(
            "new CR: supporting objects and the first migration Job",
            fresh,
            {"owned_hashes": {}},
            phase="Migrating",
            actions=[
                "apply ServiceAccount",
                "apply Service",
                "apply PodDisruptionBudget",
                f"create Job {V1}",
            ],
            events=["MigrationStarted"],
            conditions={
                "MigrationSucceeded": ("Unknown", "MigrationRunning"),
                "Progressing": ("True", "Migrating"),
                "Ready": ("False", "NoDeployment"),
                "RolledBack": ("False", "NotRolledBack"),
            },
            status={"migrationJob": job_name(V1), "targetImage": V1},
            requeue=MIGRATION_POLL,
        ),
        _case(
            "new CR with one replica: no PodDisruptionBudget",
            item_service(V1, replicas=1),
            {"owned_hashes": {}},
            phase="Migrating",
            actions=["apply ServiceAccount", "apply Service", f"create Job {V1}"],
            events=["MigrationStarted"],
        ),
        _case(
            "migration running: wait, write nothing",
            item_service(V1, status={"phase": "Migrating"}),
            {"jobs": (job(V1, JobState.ACTIVE),)},
            phase="Migrating",
            requeue=MIGRATION_POLL,
        ),
        _case(
            "migration succeeded, no Deployment yet: create it with that image",
            item_service(V1, status={"phase": "Migrating"}),
            {"jobs": (job(V1, JobState.SUCCEEDED),)},
            phase="RollingOut",
            actions=[f"apply Deployment {V1}"],
            events=["RolloutStarted"],
            conditions={
                "MigrationSucceeded": ("True", "Migrated"),
                "Progressing": ("True", "RollingOut"),
            },
            requeue=ROLLOUT_POLL,
        ),
        _case(
            "first rollout in progress, pods young and unready: keep watching",
            first_rolling,
            {
                "deployment": deployment(first_rolling, V1, complete=False),
                "jobs": (job(V1, JobState.SUCCEEDED),),
                "pods": (pod(V1, age=20), pod(V1, age=20, name="shop-b")),
            },
            phase="RollingOut",
            conditions={
                "Progressing": ("True", "RollingOut"),
                "Ready": ("False", "ReplicasNotReady"),
            },
            requeue=ROLLOUT_POLL,
        ),
        _case(
            "first rollout complete: Available, image becomes lastGoodImage",
            first_rolling,
            {"deployment": deployment(first_rolling, V1), "jobs": (job(V1, JobState.SUCCEEDED),)},
            phase="Available",
            events=["RolloutComplete"],
            conditions={
                "Ready": ("True", "AllReplicasReady"),
                "Progressing": ("False", "RolloutComplete"),
            },
            status={"lastGoodImage": V1, "currentImage": V1},
            requeue=IDLE_POLL,
        ),
        _case(
            "first rollout fails with nothing to roll back to: Failed, pods left for inspection",
            first_rolling,
            {
                "deployment": deployment(first_rolling, V1, complete=False),
                "pods": (pod(V1, waiting=("CrashLoopBackOff",)),),
            },
            phase="Failed",
            events=["RolloutFailed"],
            conditions={"Progressing": ("False", "RolloutFailed")},
            status={"failedImage": V1},
            requeue=IDLE_POLL,
        ),
        # --- steady state and drift ---
        _case(
            "steady state: nothing to write",
            good,
            {"deployment": deployment(good, V1), "jobs": (job(V1, JobState.SUCCEEDED),)},
            phase="Available",
            requeue=IDLE_POLL,
        ),
        _case(
            "replicas changed on a proven image: apply Deployment, same image, no migration",
            item_service(V1, status=GOOD_V1, replicas=3),
            {"deployment": deployment(item_service(V1), V1, stale_hash=True)},
            phase="Available",
            actions=[f"apply Deployment {V1}"],
        ),
        _case(
            "replicas 2 -> 1: the PodDisruptionBudget is deleted",
            item_service(V1, status=GOOD_V1, replicas=1),
            {
                "deployment": deployment(item_service(V1, replicas=1), V1),
                "owned_hashes": {
                    **converged_hashes(item_service(V1, replicas=1)),
                    "PodDisruptionBudget": "x",
                },
            },
            phase="Available",
            actions=["delete PodDisruptionBudget/shop"],
        ),
        _case(
            "Service drifted: only the Service is re-applied",
            good,
            {
                "deployment": deployment(good, V1),
                "owned_hashes": {**converged_hashes(good), "Service": "stale"},
            },
            phase="Available",
            actions=["apply Service"],
        ),
        _case(
            "proven image loses a pod to CrashLoopBackOff: Degraded, never a rollback",
            good,
            {
                "deployment": deployment(good, V1, complete=False, ready=1),
                "pods": (pod(V1, ready=True), pod(V1, waiting=("CrashLoopBackOff",))),
            },
            phase="Degraded",
            events=["CrashLoopBackOff"],
            conditions={"Progressing": ("False", "CrashLoopBackOff")},
        ),
        _case(
            "proven image scaling up, new pod still starting: RollingOut",
            good,
            {
                "deployment": deployment(good, V1, complete=False, ready=1),
                "pods": (pod(V1, age=5),),
            },
            phase="RollingOut",
        ),
        # --- a new image: migrate first ---
        _case(
            "new image: its migration Job starts, the old version keeps serving",
            new,
            {"deployment": deployment(new, V1)},
            phase="Migrating",
            actions=[f"create Job {V2}"],
            events=["MigrationStarted"],
            conditions={"Ready": ("True", "AllReplicasReady")},
            status={"currentImage": V1, "targetImage": V2},
        ),
        _case(
            "migration failed: Failed, no rollout, the Job is named for its logs",
            new,
            {
                "deployment": deployment(new, V1),
                "jobs": (job(V2, JobState.FAILED, reason="BackoffLimitExceeded"),),
            },
            phase="Failed",
            events=["MigrationFailed"],
            conditions={
                "MigrationSucceeded": ("False", "MigrationFailed"),
                "Ready": ("True", "AllReplicasReady"),
            },
            status={
                "currentImage": V1,
                "migrationJob": job_name(V2),
                "message": _contains(f"kubectl logs job/{job_name(V2)}"),
            },
        ),
        _case(
            "migration succeeded: the Deployment moves to the new image",
            new,
            {"deployment": deployment(new, V1), "jobs": (job(V2, JobState.SUCCEEDED),)},
            phase="RollingOut",
            actions=[f"apply Deployment {V2}"],
            events=["RolloutStarted"],
        ),
        _case(
            "new image rolling out, its pods within the readiness window",
            new_rolling,
            {
                "deployment": deployment(new_rolling, V2, complete=False, ready=2, total=3),
                "pods": (pod(V1, ready=True), pod(V1, ready=True, name="b"), pod(V2, age=60)),
            },
            phase="RollingOut",
            requeue=ROLLOUT_POLL,
        ),
        _case(
            "new image rolled out: Available, lastGoodImage moves",
            new_rolling,
            {"deployment": deployment(new_rolling, V2)},
            phase="Available",
            events=["RolloutComplete"],
            status={"lastGoodImage": V2, "currentImage": V2},
        ),
        # --- every failure kind rolls back ---
        rollback("CrashLoopBackOff", pods=(pod(V2, waiting=("CrashLoopBackOff",)),)),
        rollback("ImagePullFailed", pods=(pod(V2, waiting=("ErrImagePull",)),)),
        rollback("ImagePullFailed", pods=(pod(V2, waiting=("ImagePullBackOff",)),)),
        rollback("ImagePullFailed", pods=(pod(V2, waiting=("InvalidImageName",)),)),
        rollback(
            "ContainerConfigError",
            pods=(pod(V2, age=45, waiting=("CreateContainerConfigError",)),),
        ),
        rollback("ReadinessTimeout", pods=(pod(V2, age=121),)),
        rollback(
            "ProgressDeadlineExceeded",
            deployment=deployment(new_rolling, V2, complete=False, ready=2, deadline_exceeded=True),
        ),
        # --- after a rollback ---
        _case(
            "rolled back: hold, do not retry the image, write nothing",
            held,
            {
                "deployment": deployment(held, V1, rolled_back_image=V2, rolled_back_generation=2),
                "jobs": (job(V2, JobState.SUCCEEDED),),
            },
            phase="RolledBack",
            conditions={"RolledBack": ("True", "CrashLoopBackOff")},
            requeue=IDLE_POLL,
        ),
        _case(
            "rolled back but the status patch was lost: the Deployment annotation still blocks",
            item_service(V2, status=GOOD_V1, generation=2),
            {
                "deployment": deployment(held, V1, rolled_back_image=V2, rolled_back_generation=2),
                "jobs": (job(V2, JobState.SUCCEEDED),),
            },
            phase="RolledBack",
            conditions={"RolledBack": ("True", "RolledBack")},
            status={"failedImage": V2},
        ),
        _case(
            "spec names a different image after a rollback: migrate it",
            v3,
            {
                "deployment": deployment(v3, V1, rolled_back_image=V2, rolled_back_generation=2),
                "jobs": (job(V2, JobState.SUCCEEDED),),
            },
            phase="Migrating",
            actions=[f"create Job {V3}"],
            events=["MigrationStarted"],
            conditions={"RolledBack": ("False", "NotRolledBack")},
            status={"lastGoodImage": V1},
        ),
        _case(
            "migration pod cannot pull the image: end the Job now, not at its deadline",
            new,
            {
                "deployment": deployment(new, V1),
                "jobs": (job(V2, JobState.ACTIVE),),
                "job_pods": (pod(V2, waiting=("ImagePullBackOff",), job=job_name(V2)),),
            },
            phase="Migrating",
            actions=[f"fail Job/{job_name(V2)}"],
            events=["MigrationPodFailed"],
        ),
        _case(
            "migration pod waiting for an unrelated reason: keep waiting",
            new,
            {
                "deployment": deployment(new, V1),
                "jobs": (job(V2, JobState.ACTIVE),),
                "job_pods": (pod(V2, waiting=("ContainerCreating",), job=job_name(V2)),),
            },
            phase="Migrating",
        ),
        _case(
            "migration pod briefly cannot read its Secret on a busy node: keep waiting",
            new,
            {
                "deployment": deployment(new, V1),
                "jobs": (job(V2, JobState.ACTIVE),),
                "job_pods": (
                    pod(V2, age=10, waiting=("CreateContainerConfigError",), job=job_name(V2)),
                ),
            },
            phase="Migrating",
        ),
        _case(
            "migration pod's config error persists past the grace: end the Job",
            new,
            {
                "deployment": deployment(new, V1),
                "jobs": (job(V2, JobState.ACTIVE),),
                "job_pods": (
                    pod(V2, age=40, waiting=("CreateContainerConfigError",), job=job_name(V2)),
                ),
            },
            phase="Migrating",
            actions=[f"fail Job/{job_name(V2)}"],
            events=["MigrationPodFailed"],
        ),
        _case(
            "migration ended early by the operator: Failed, with the pod's reason",
            new,
            {
                "deployment": deployment(new, V1),
                "jobs": (
                    job(
                        V2,
                        JobState.FAILED,
                        reason="DeadlineExceeded",
                        note=f"{V2}: ImagePullFailed",
                    ),
                ),
            },
            phase="Failed",
            events=["MigrationFailed"],
            status={"message": _contains("ImagePullFailed")},
        ),
        # --- superseding ---
        _case(
            "spec changes while an older migration runs: wait for it, never two Jobs",
            item_service(V3, status={**GOOD_V1, "phase": "Migrating"}, generation=3),
            {"deployment": deployment(good, V1), "jobs": running_v2},
            phase="Migrating",
            conditions={"MigrationSucceeded": ("Unknown", "WaitingForPreviousMigration")},
            requeue=MIGRATION_POLL,
        ),
        _case(
            "superseded migration stuck on image pull: end it so the latest can start",
            item_service(V3, status={**GOOD_V1, "phase": "Migrating"}, generation=3),
            {
                "deployment": deployment(good, V1),
                "jobs": running_v2,
                "job_pods": (pod(V2, waiting=("ErrImagePull",), job=job_name(V2)),),
            },
            phase="Migrating",
            actions=[f"fail Job/{job_name(V2)}"],
            events=["MigrationPodFailed"],
        ),
        _case(
            "superseded migration finished: migrate the latest image, never roll out the old",
            item_service(V3, status={**GOOD_V1, "phase": "Migrating"}, generation=3),
            {"deployment": deployment(good, V1), "jobs": (job(V2, JobState.SUCCEEDED),)},
            phase="Migrating",
            actions=[f"create Job {V3}"],
            events=["MigrationStarted"],
        ),
        _case(
            "spec changes mid-rollout, superseded image crashes: roll back, migrate the new",
            item_service(V3, status={**GOOD_V1, "phase": "RollingOut"}, generation=3),
            {
                "deployment": deployment(new_rolling, V2, complete=False, ready=2),
                "pods": (pod(V2, waiting=("CrashLoopBackOff",)),),
            },
            phase="Migrating",
            actions=[f"apply Deployment {V1}", f"create Job {V3}"],
            events=["RolledBack", "MigrationStarted"],
            status={"currentImage": V1, "lastGoodImage": V1},
        ),
        # --- unusable input and conflicts ---
        _case(
            "database Secret missing: Degraded, nothing starts",
            fresh,
            {"secret": SecretState.MISSING},
            phase="Degraded",
            events=["SecretNotFound"],
            conditions={"Progressing": ("False", "SecretNotFound")},
            requeue=15.0,
        ),
        _case(
            "database Secret lacks the key: Degraded",
            new,
            {"secret": SecretState.KEY_MISSING, "deployment": deployment(new, V1)},
            phase="Degraded",
            events=["SecretKeyMissing"],
            conditions={
                "Progressing": ("False", "SecretKeyMissing"),
                "Ready": ("True", "AllReplicasReady"),
            },
        ),
        _case(
            "Secret appears again: recovery starts the migration",
            item_service(V1, status={"phase": "Degraded"}),
            {},
            phase="Migrating",
            actions=[f"create Job {V1}"],
            events=["MigrationStarted"],
        ),
        _case(
            "a Deployment of the same name belongs to someone else: touch nothing",
            fresh,
            {"conflicts": ("Deployment/shop",), "owned_hashes": {}},
            phase="Degraded",
            events=["ObjectConflict"],
            conditions={"Progressing": ("False", "ObjectConflict")},
        ),
        _case(
            "paused: report only, even with a new image",
            item_service(V2, status=GOOD_V1, generation=2, paused=True),
            {"deployment": deployment(good, V1), "owned_hashes": {}},
            phase="Available",
            conditions={"Progressing": ("False", "Paused")},
            requeue=IDLE_POLL,
        ),
    ]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.id)
def test_decision_table(case: Case) -> None:
    plan = decide(case.cr, case.seen, NOW)

    assert plan.status["phase"] == case.phase
    assert summarize(plan) == case.actions
    assert [e.reason for e in plan.events] == case.events
    got = conditions(plan)
    for type_, expected in case.conditions.items():
        assert got[type_] == expected, type_
    for key, value in case.status.items():
        assert value == plan.status.get(key), key
    if case.requeue is not None:
        assert plan.requeue_after == case.requeue
