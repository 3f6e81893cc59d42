"""Parsers from raw API objects to observations (shapes as the API server returns them)."""

from __future__ import annotations

from typing import Any

from items_operator.constants import ANNOTATION_IMAGE
from items_operator.observe import (
    JobState,
    SecretState,
    controlled_by,
    observe_deployment,
    observe_job,
    observe_pod,
    secret_state,
)

from .world import NOW, V1, V2


def test_secret_state() -> None:
    assert secret_state(None, "url") is SecretState.MISSING
    assert secret_state({"data": {"other": "eA=="}}, "url") is SecretState.KEY_MISSING
    assert secret_state({"data": {"url": ""}}, "url") is SecretState.KEY_MISSING
    assert secret_state({"data": {"url": "bXlzcWw6Ly8="}}, "url") is SecretState.PRESENT


def _job(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "shop-migration-abc", "annotations": {ANNOTATION_IMAGE: V2}},
        "status": {
            "startTime": "2026-11-29T01:58:00Z",
            "completionTime": "2026-11-29T01:59:00Z" if conditions else None,
            "conditions": conditions,
        },
    }


def test_observe_job_states() -> None:
    active = observe_job(_job([]))
    assert active.state is JobState.ACTIVE
    assert active.image == V2
    assert not active.finished

    done = observe_job(_job([{"type": "Complete", "status": "True"}]))
    assert done.state is JobState.SUCCEEDED
    assert done.finished_at is not None
    assert done.started_at is not None
    assert (done.finished_at - done.started_at).total_seconds() == 60

    failed = observe_job(
        _job(
            [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "m"}]
        )
    )
    assert failed.state is JobState.FAILED
    assert failed.reason == "BackoffLimitExceeded"


def test_observe_deployment_rollout_complete_and_deadline() -> None:
    body: dict[str, Any] = {
        "metadata": {
            "name": "shop",
            "generation": 3,
            "annotations": {"items.platform.dev/rolled-back-release": "b16e91fbe0"},
        },
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"items.platform.dev/release": "df8cc29fbf"}},
                "spec": {"containers": [{"name": "items-service", "image": V1}]},
            },
        },
        "status": {
            "observedGeneration": 3,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "conditions": [
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ],
        },
    }
    dep = observe_deployment(body)
    assert dep.image == V1
    assert dep.rollout_complete
    assert not dep.progress_deadline_exceeded
    assert dep.rolled_back_release == "b16e91fbe0"
    assert dep.release == "df8cc29fbf"

    body["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    ]
    assert observe_deployment(body).progress_deadline_exceeded
    body["status"]["observedGeneration"] = 2  # the controller has not seen the new template yet
    assert not observe_deployment(body).rollout_complete
    # ... so a deadline it reports belongs to the previous template.
    assert not observe_deployment(body).progress_deadline_exceeded


def test_rollout_with_old_pods_left_is_not_complete() -> None:
    body: dict[str, Any] = {
        "metadata": {"name": "shop", "generation": 1},
        "spec": {"replicas": 2, "template": {"spec": {"containers": []}}},
        "status": {
            "observedGeneration": 1,
            "replicas": 3,
            "updatedReplicas": 2,
            "readyReplicas": 3,
            "availableReplicas": 3,
        },
    }
    assert not observe_deployment(body).rollout_complete


def test_observe_pod() -> None:
    body = {
        "metadata": {"name": "shop-1", "creationTimestamp": "2026-11-29T01:59:00Z"},
        "spec": {"containers": [{"name": "items-service", "image": V2}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {
                    "name": "items-service",
                    "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                }
            ],
        },
    }
    observed = observe_pod(body)
    assert observed.image == V2
    assert not observed.ready
    assert observed.waiting_reasons == ("CrashLoopBackOff",)
    assert observed.waiting_message == "back-off 40s"
    assert observed.restart_count == 4
    assert observed.created_at is not None
    assert (NOW - observed.created_at).total_seconds() == 60
    assert observed.started_at is None  # waiting, not running: no readiness window yet
    assert observed.counts


def test_observe_pod_times_phase_and_scheduling() -> None:
    body: dict[str, Any] = {
        "metadata": {
            "name": "shop-2",
            "creationTimestamp": "2026-11-29T01:50:00Z",
            "labels": {"items.platform.dev/release": "abc"},
        },
        "spec": {"containers": [{"name": "items-service", "image": V2}]},
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-29T01:58:00Z"},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": [
                {
                    "name": "items-service",
                    "state": {"running": {"startedAt": "2026-11-29T01:55:00Z"}},
                }
            ],
        },
    }
    pod = observe_pod(body)
    assert pod.release == "abc"
    assert pod.started_at is not None
    assert (NOW - pod.started_at).total_seconds() == 300
    assert pod.ready_changed_at is not None
    assert (NOW - pod.ready_changed_at).total_seconds() == 120
    assert pod.unschedulable is None
    evicted = {**body, "status": {**body["status"], "phase": "Failed", "reason": "Evicted"}}
    assert not observe_pod(evicted).counts
    pending = {
        **body,
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient cpu.",
                }
            ],
        },
    }
    assert observe_pod(pending).unschedulable == "0/1 nodes are available: 1 Insufficient cpu."


def test_controlled_by() -> None:
    owned = {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]}}
    assert controlled_by(owned, "u1")
    assert not controlled_by(owned, "u2")
    assert not controlled_by({"metadata": {"ownerReferences": [{"uid": "u1"}]}}, "u1")
    assert not controlled_by({"metadata": {}}, "u1")


def test_migration_pod_and_job_failure_note() -> None:
    body = {
        "metadata": {
            "name": "shop-migration-x-abcde",
            "labels": {"batch.kubernetes.io/job-name": "shop-migration-x"},
        },
        "spec": {"containers": [{"name": "items-service", "image": V2}]},
        "status": {},
    }
    assert observe_pod(body).job_name == "shop-migration-x"
    job_body = _job([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}])
    job_body["metadata"]["annotations"]["items.platform.dev/failure"] = "ImagePullFailed"
    assert observe_job(job_body).failure_note == "ImagePullFailed"
