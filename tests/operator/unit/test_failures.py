"""Pod failure classification: every kind, and the cases that must not count as failures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from items_operator.failures import FailureKind, classify_pod, detect_rollout_failure
from items_operator.observe import PodObservation

from .factories import NOW, V1, V2, deployment, item_service, pod

WINDOW = timedelta(seconds=120)


@pytest.mark.parametrize(
    ("observed_pod", "expected"),
    [
        (pod(V2, waiting=("CrashLoopBackOff",)), FailureKind.CRASH_LOOP),
        (pod(V2, waiting=("ErrImagePull",)), FailureKind.IMAGE_PULL),
        (pod(V2, waiting=("ImagePullBackOff",)), FailureKind.IMAGE_PULL),
        (pod(V2, waiting=("InvalidImageName",)), FailureKind.IMAGE_PULL),
        (pod(V2, age=30, waiting=("CreateContainerConfigError",)), FailureKind.CONTAINER_CONFIG),
        (pod(V2, age=30, waiting=("RunContainerError",)), FailureKind.CONTAINER_CONFIG),
        (pod(V2, age=30, waiting=("CreateContainerError",)), FailureKind.CONTAINER_CONFIG),
        # On a busy node the kubelet reports these briefly and retries: not yet a failure.
        (pod(V2, age=29, waiting=("CreateContainerConfigError",)), None),
        (pod(V2, age=5, waiting=("RunContainerError",)), None),
        (pod(V2, age=121), FailureKind.UNREADY),
        (pod(V2, age=119), None),
        (pod(V2, waiting=("ContainerCreating",)), None),
        (pod(V2, age=500, ready=True), None),
        (pod(V2, age=500, waiting=("CrashLoopBackOff",), ready=True), None),
    ],
    ids=lambda v: v.name if isinstance(v, PodObservation) else str(v),
)
def test_classify_pod(observed_pod: PodObservation, expected: FailureKind | None) -> None:
    failure = classify_pod(observed_pod, now=NOW, readiness_timeout=WINDOW)
    assert (failure.kind if failure else None) == expected


def test_terminating_pods_are_ignored() -> None:
    terminating = PodObservation(
        name="old",
        image=V2,
        created_at=NOW - timedelta(hours=1),
        ready=False,
        deleting=True,
        waiting_reasons=("CrashLoopBackOff",),
    )
    assert classify_pod(terminating, now=NOW, readiness_timeout=WINDOW) is None


def test_only_pods_of_the_watched_image_count() -> None:
    cr = item_service(V2)
    failure = detect_rollout_failure(
        image=V2,
        deployment=deployment(cr, V2, complete=False),
        pods=[pod(V1, waiting=("CrashLoopBackOff",)), pod(V2, age=10)],
        now=NOW,
        readiness_timeout=WINDOW,
    )
    assert failure is None


def test_progress_deadline_is_a_failure_and_message_names_image_and_kind() -> None:
    cr = item_service(V2)
    failure = detect_rollout_failure(
        image=V2,
        deployment=deployment(cr, V2, complete=False, deadline_exceeded=True),
        pods=[],
        now=NOW,
        readiness_timeout=WINDOW,
    )
    assert failure is not None
    assert failure.kind is FailureKind.PROGRESS_DEADLINE
    assert V2 in failure.describe(V2)
    assert "ProgressDeadlineExceeded" in failure.describe(V2)


def test_pod_failure_wins_over_the_deadline_and_names_the_pod() -> None:
    cr = item_service(V2)
    failure = detect_rollout_failure(
        image=V2,
        deployment=deployment(cr, V2, complete=False, deadline_exceeded=True),
        pods=[pod(V2, waiting=("ImagePullBackOff",), name="shop-abc")],
        now=NOW,
        readiness_timeout=WINDOW,
    )
    assert failure is not None
    assert failure.kind is FailureKind.IMAGE_PULL
    assert "pod shop-abc" in failure.describe(V2)
