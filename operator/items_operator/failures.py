"""Name what a pod shows: a failure of the release that waiting will not fix, or a fault of the
environment that the release must not be blamed for.

Each class is a FailureKind, with its row in CLASSES (when it counts; docs/operator.md renders
the table, a test keeps them equal). The verdict (verdict.py) decides whose fault it is: a
failure the serving release's own pods show too is the environment's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from items_operator.containers import Termination
from items_operator.failure_messages import (
    CONFIG_REASONS,
    PULL_REASONS,
    START_FAILURE_REASONS,
    Healing,
    config_healing,
    pull_healing,
    start_failure_is_permanent,
)
from items_operator.observe import PodObservation


class FailureKind(enum.Enum):
    """Each value doubles as the CamelCase reason in history, events and metrics."""

    CRASH_LOOP = "CrashLoopBackOff"
    REPEATED_EXIT = "RepeatedExitCode"
    START_REFUSED = "StartRefused"
    OOM_AT_START = "OOMKilledAtStart"
    IMAGE_PULL = "ImagePullFailed"
    IMAGE_PULL_STUCK = "ImagePullStuck"
    CONTAINER_CONFIG = "ContainerConfigError"
    CONTAINER_ERROR = "ContainerError"
    SCHEMA_BEHIND = "SchemaBehind"
    UNREADY = "ReadinessTimeout"
    PROGRESS_DEADLINE = "ProgressDeadlineExceeded"
    METRICS_REGRESSION = "MetricsRegression"
    # The environment's, never the release's: the rollout holds (verdict.py).
    IMAGE_PULL_TRANSIENT = "ImagePullTransient"
    CONFIG_NOT_FOUND = "ConfigNotFound"

    @property
    def blames_release(self) -> bool:
        return CLASSES[self].timing is not Timing.NEVER


class Timing(enum.StrEnum):
    AT_ONCE = "at once"
    SETTLED = "once the pod is 30 s old"
    WINDOW = "after the readiness window"
    DEADLINE = "when the Deployment's deadline passes"
    ANALYSIS = "during the canary analysis (spec.rollout.analysis)"
    NEVER = "never: the rollout holds"


@dataclass(frozen=True)
class FailureClass:
    timing: Timing
    seen_as: str  # what the kubelet or the service reports, for people (docs/operator.md)


# fmt: off
K, T = FailureKind, Timing
CLASSES: dict[FailureKind, FailureClass] = {
    K.CRASH_LOOP: FailureClass(T.AT_ONCE, "`CrashLoopBackOff`: the container exits and the kubelet backs off"),  # noqa: E501
    K.REPEATED_EXIT: FailureClass(T.AT_ONCE, "the run that ended and the one before it exited with the same non-zero code"),  # noqa: E501
    K.START_REFUSED: FailureClass(T.AT_ONCE, "a run that exited before it was ever ready with the service's own report in its termination message: an invalid argument or setting, which no restart heals"),  # noqa: E501
    K.OOM_AT_START: FailureClass(T.AT_ONCE, "`OOMKilled` in a run that never became ready"),
    K.IMAGE_PULL: FailureClass(T.AT_ONCE, "`InvalidImageName`, `ErrImageNeverPull`, or a pull error that cannot heal: manifest unknown, not found, unauthorized, denied, invalid reference, no matching platform"),  # noqa: E501
    K.IMAGE_PULL_STUCK: FailureClass(T.WINDOW, "a pull error whose message says neither (an older kubelet's bare `Back-off pulling image`); the window counts from the pod's creation"),  # noqa: E501
    K.CONTAINER_CONFIG: FailureClass(T.AT_ONCE, "`CreateContainerConfigError` naming a key the Secret or ConfigMap lacks, or an image that runs as root under `runAsNonRoot`; `RunContainerError`, `CreateContainerError` or `StartError` for a command the image lacks (not found, permission denied, exec format error)"),  # noqa: E501
    K.CONTAINER_ERROR: FailureClass(T.SETTLED, "`CreateContainerConfigError`, `CreateContainerError`, `RunContainerError` with any other message (a busy kubelet reports some briefly, then retries)"),  # noqa: E501
    K.SCHEMA_BEHIND: FailureClass(T.AT_ONCE, "the new pod's `/readyz` says `schema: behind` or `unmigrated` although the release's migration succeeded: the image expects a schema its migration does not make"),  # noqa: E501
    K.UNREADY: FailureClass(T.WINDOW, "a started pod not ready within its window"),
    K.PROGRESS_DEADLINE: FailureClass(T.DEADLINE, "`ProgressDeadlineExceeded` at the current generation"),  # noqa: E501
    K.METRICS_REGRESSION: FailureClass(T.ANALYSIS, "the first new pod's 5xx ratio or p99 latency on `/items`, read from its `/metrics`, significantly worse than the old pods' over the same interval"),  # noqa: E501
    K.IMAGE_PULL_TRANSIENT: FailureClass(T.NEVER, "a pull error that heals: 429 or a rate limit, 5xx, i/o or TLS handshake timeout, connection refused or reset"),  # noqa: E501
    K.CONFIG_NOT_FOUND: FailureClass(T.NEVER, "`CreateContainerConfigError`: a Secret or ConfigMap the pods reference does not exist (create it)"),  # noqa: E501
}
# fmt: on

# CreateContainerError and friends also show up briefly on a busy node ("failed to sync secret
# cache: timed out"), which the kubelet retries: unknown messages count only once the pod is
# older than this. Measured: 200 ItemServices applied at once on a 2-core node lost 3
# migrations to that message when this was immediate.
CONFIG_ERROR_GRACE = timedelta(seconds=30)
# A pull failing this long without saying why counts, when no window is given (migration pods).
DEFAULT_PULL_WINDOW = timedelta(seconds=120)


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    pod: str | None
    detail: str
    exit_code: int | None = None

    def describe(self, image: str) -> str:
        where = f"pod {self.pod}" if self.pod else "Deployment"
        return f"{image}: {self.kind.value} in {where}: {self.detail}"

    def same_as(self, other: Failure) -> bool:
        """The same failure, whichever pod shows it (exit codes must match too)."""
        return self.kind is other.kind and self.exit_code == other.exit_code


def _ran_without_ready(pod: PodObservation, run: Termination) -> bool:
    """The pod's Ready condition has not changed since this run started: never ready in it."""
    changed, started = pod.ready_changed_at, run.started_at
    return changed is None or started is None or changed <= started


def _from_terminations(pod: PodObservation) -> Failure | None:
    runs = pod.container.terminations
    for run in runs:
        if run.start_failure is not None and _ran_without_ready(pod, run):
            detail = f"exited with code {run.exit_code} at start: {run.start_failure}"
            return Failure(FailureKind.START_REFUSED, pod.name, detail, exit_code=run.exit_code)
        if run.reason == "OOMKilled" and not pod.ready and _ran_without_ready(pod, run):
            detail = f"OOMKilled before it was ever ready (exit code {run.exit_code})"
            return Failure(FailureKind.OOM_AT_START, pod.name, detail)
        if run.reason in START_FAILURE_REASONS and start_failure_is_permanent(run.message):
            return Failure(FailureKind.CONTAINER_CONFIG, pod.name, run.message or run.reason)
    if len(runs) == 2 and runs[0].exit_code == runs[1].exit_code != 0:
        code = runs[0].exit_code
        detail = f"exited with code {code} twice in a row ({runs[0].reason or 'Error'})"
        return Failure(FailureKind.REPEATED_EXIT, pod.name, detail, exit_code=code)
    return None


def _from_waiting(
    pod: PodObservation, *, now: datetime, window: timedelta, floor: datetime | None, held: bool
) -> Failure | None:
    created = pod.created_at
    message = pod.waiting_message
    for reason in pod.waiting_reasons:
        detail = message or reason
        if reason == "CrashLoopBackOff":
            last = pod.container.terminations[:1]
            code = last[0].exit_code if last else None
            if code is not None:
                detail = f"{detail} (last exit code {code})"
            return Failure(FailureKind.CRASH_LOOP, pod.name, detail, exit_code=code)
        if reason in PULL_REASONS:
            healing = pull_healing(reason, message, pod.image)
            if healing is Healing.PERMANENT:
                return Failure(FailureKind.IMAGE_PULL, pod.name, detail)
            if healing is Healing.TRANSIENT or held:
                # While a hold runs, a bare back-off (an older kubelet's) is the same retry.
                return Failure(FailureKind.IMAGE_PULL_TRANSIENT, pod.name, detail)
            since = [t for t in (created, floor) if t is not None]
            if since and now - max(since) >= window:
                seconds = int(window.total_seconds())
                return Failure(
                    FailureKind.IMAGE_PULL_STUCK,
                    pod.name,
                    f"{detail} (no image {seconds}s after the pod's creation)",
                )
            continue
        if reason in CONFIG_REASONS:
            healing = config_healing(message)
            settled = created is not None and now - created >= CONFIG_ERROR_GRACE
            if healing is Healing.MISSING_OBJECT:
                return Failure(FailureKind.CONFIG_NOT_FOUND, pod.name, detail)
            if healing is Healing.PERMANENT:
                return Failure(FailureKind.CONTAINER_CONFIG, pod.name, detail)
            if healing is Healing.UNKNOWN and settled:
                return Failure(FailureKind.CONTAINER_ERROR, pod.name, detail)
    return None


def waiting_deadline(
    pod: PodObservation, *, window: timedelta, floor: datetime | None
) -> datetime | None:
    """When a pod waiting as it does now becomes a failure by time alone (_from_waiting: a
    pull stuck past the window, an unknown config error past its grace), if it can: the pass
    must be awake then, since a kubelet that keeps retrying reports no change."""
    created = pod.created_at
    if created is None:
        return None
    times, message = [], pod.waiting_message
    for reason in pod.waiting_reasons:
        # Only what is still unknown turns into a failure by time; the rest is decided already.
        if reason in PULL_REASONS and pull_healing(reason, message, pod.image) is Healing.UNKNOWN:
            times.append(max(t for t in (created, floor) if t is not None) + window)
        elif reason in CONFIG_REASONS and config_healing(message) is Healing.UNKNOWN:
            times.append(created + CONFIG_ERROR_GRACE)
    return min(times) if times else None


def classify_pod(
    pod: PodObservation,
    *,
    now: datetime,
    window: timedelta = DEFAULT_PULL_WINDOW,
    floor: datetime | None = None,
    migrated: bool = False,
    held: bool = False,
) -> Failure | None:
    """What `pod` shows, if anything names a failure: of the release (kind.blames_release) or
    of the environment. `migrated`: the pod's release had its migration succeed, so a schema
    behind the image is the image's fault. `held`: a hold runs (the clock is stopped)."""
    if pod.deleting:
        return None
    failure = _from_terminations(pod) or _from_waiting(
        pod, now=now, window=window, floor=floor, held=held
    )
    if failure is not None:
        return failure
    schema = pod.readiness_checks.get("schema", "")
    if migrated and not pod.ready and schema.startswith(("behind", "unmigrated")):
        return Failure(FailureKind.SCHEMA_BEHIND, pod.name, f"/readyz says schema {schema}")
    return None


def classify_waiting(pod: PodObservation, *, now: datetime) -> Failure | None:
    """A failure of the pod's own release that waiting longer will not fix (migration pods)."""
    failure = classify_pod(pod, now=now)
    return failure if failure is not None and failure.kind.blames_release else None
