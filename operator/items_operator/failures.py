"""Classify why a new revision is not becoming ready, fast enough to roll back early."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from items_operator.observe import DeploymentObservation, PodObservation


class FailureKind(enum.Enum):
    """Each value doubles as the CamelCase condition/event reason."""

    CRASH_LOOP = "CrashLoopBackOff"
    IMAGE_PULL = "ImagePullFailed"
    CONTAINER_CONFIG = "ContainerConfigError"
    UNREADY = "ReadinessTimeout"
    PROGRESS_DEADLINE = "ProgressDeadlineExceeded"


# Waiting reasons that will not fix themselves by waiting longer.
_WAITING_REASONS: dict[str, FailureKind] = {
    "CrashLoopBackOff": FailureKind.CRASH_LOOP,
    "ErrImagePull": FailureKind.IMAGE_PULL,
    "ImagePullBackOff": FailureKind.IMAGE_PULL,
    "InvalidImageName": FailureKind.IMAGE_PULL,
}
# Reasons that are usually permanent (a missing Secret key, a bad command) but also show up
# briefly on a busy node ("failed to sync secret cache: timed out"), which the kubelet retries:
# they count only once the pod is older than CONFIG_ERROR_GRACE. Measured: 200 ItemServices
# applied at once on a 2-core node lost 3 migrations to that message when this was immediate.
_SETTLING_REASONS: dict[str, FailureKind] = {
    "CreateContainerConfigError": FailureKind.CONTAINER_CONFIG,
    "CreateContainerError": FailureKind.CONTAINER_CONFIG,
    "RunContainerError": FailureKind.CONTAINER_CONFIG,
}
CONFIG_ERROR_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    pod: str | None
    detail: str

    def describe(self, image: str) -> str:
        where = f"pod {self.pod}" if self.pod else "Deployment"
        return f"{image}: {self.kind.value} in {where}: {self.detail}"


def classify_waiting(pod: PodObservation, *, now: datetime) -> Failure | None:
    """A container waiting for a reason that waiting longer will not fix (pull, config, crash)."""
    if pod.deleting:
        return None
    settled = pod.created_at is not None and now - pod.created_at >= CONFIG_ERROR_GRACE
    for reason in pod.waiting_reasons:
        kind = _WAITING_REASONS.get(reason) or (_SETTLING_REASONS.get(reason) if settled else None)
        if kind is not None:
            return Failure(kind, pod.name, pod.waiting_message or reason)
    return None


def classify_pod(
    pod: PodObservation, *, now: datetime, readiness_timeout: timedelta
) -> Failure | None:
    """Why this pod counts as failed, or None while it is healthy or may still become ready."""
    if pod.deleting or pod.ready:
        return None
    if (failure := classify_waiting(pod, now=now)) is not None:
        return failure
    if pod.created_at is not None and now - pod.created_at > readiness_timeout:
        seconds = int(readiness_timeout.total_seconds())
        return Failure(FailureKind.UNREADY, pod.name, f"not ready after {seconds}s")
    return None


def detect_rollout_failure(
    *,
    image: str,
    deployment: DeploymentObservation,
    pods: Iterable[PodObservation],
    now: datetime,
    readiness_timeout: timedelta,
) -> Failure | None:
    """First failure among the pods running `image`, or the Deployment's own deadline."""
    for pod in sorted(pods, key=lambda p: p.name):
        if pod.image != image:
            continue
        if (failure := classify_pod(pod, now=now, readiness_timeout=readiness_timeout)) is not None:
            return failure
    if deployment.progress_deadline_exceeded:
        return Failure(FailureKind.PROGRESS_DEADLINE, None, "the Deployment made no progress")
    return None
