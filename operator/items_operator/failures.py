"""Name what a pod's containers report that waiting longer will not fix (pull, config, crash)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from items_operator.observe import PodObservation


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
