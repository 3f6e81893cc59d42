"""The verdict on a release the Deployment serves: proven, still in its window, or failed, and
whose fault a failure is.

Rules (docs/operator.md, "The verdict"):
- Only pods of the release count, and only live ones: terminating, Succeeded and Failed pods
  (evicted, preempted) are ignored.
- A pod's readiness window starts when its service container started, or when its Ready
  condition last changed, or at the window floor (unpause, a dependency back), whichever is
  latest; every time is the API server's (object timestamps), never the operator's clock.
- A learned window judges a server that is up: a pod that had not answered /readyz by its end
  gets the window again from its first answer, at most the ceiling from its start
  (window.unready_due).
- A pod with a startup probe gets the probe's budget before its window starts: the kubelet
  does not say when the probe passed, and it restarts the container itself at the budget's end.
- Certain failures (failures.py: a pull that cannot heal, a crash loop, the same exit code
  twice, an OOM kill before ready, a schema behind the image after its migration) count at
  once; a pull error that heals or a Secret/ConfigMap to create holds the rollout instead.
- A failure the serving release's own pods show too is the environment's, never the release's.
- A pod the scheduler cannot place is waiting for capacity, not failing.
- The environment is to blame, not the release, when the other release's pods lost readiness
  too, or, with none of them running, when the new pods' /readyz says the database is
  unreachable. Ready pods of the other release prove the environment works: then the release
  is at fault, whatever its pods report.
- A Deployment's own deadline counts only once its controller has seen the current template.
- At zero replicas nothing can prove or fail the release: the verdict waits for scale-up.
- With spec.rollout.analysis, the first new pod serves beside the old ones for the analysis'
  duration after it turned ready, longer while the evidence is short (canary.py); a
  significant regression of its metrics against theirs fails the release; at the end the
  analysis passes (or is inconclusive, or skipped without old pods to compare with) and the
  rest rolls out.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from items_operator.canary import COMPLETED_UNMEASURED, analyse
from items_operator.failures import Failure, FailureKind, classify_pod, waiting_deadline
from items_operator.model import AnalysisSpec
from items_operator.observe import DeploymentObservation, PodObservation
from items_operator.window import unready_due


class VerdictKind(enum.Enum):
    PROVEN = "Proven"
    WAITING = "Waiting"
    FAILED = "Failed"
    SCALED_TO_ZERO = "ScaledToZero"
    UNSCHEDULABLE = "Unschedulable"
    DEPENDENCY_UNAVAILABLE = "DependencyUnavailable"
    IMAGE_PULL_TRANSIENT = "ImagePullTransient"
    CONFIG_NOT_FOUND = "ConfigNotFound"


# The environment holds the rollout: nothing is blamed, the verdict's clock stops.
HOLD_KINDS = frozenset(
    {
        VerdictKind.DEPENDENCY_UNAVAILABLE,
        VerdictKind.UNSCHEDULABLE,
        VerdictKind.IMAGE_PULL_TRANSIENT,
        VerdictKind.CONFIG_NOT_FOUND,
    }
)
_HOLD_FOR = {
    FailureKind.IMAGE_PULL_TRANSIENT: VerdictKind.IMAGE_PULL_TRANSIENT,
    FailureKind.CONFIG_NOT_FOUND: VerdictKind.CONFIG_NOT_FOUND,
}


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    failure: Failure | None = None
    detail: str = ""
    # While WAITING: when the first pod's window ends (the next pass is due then at the latest).
    deadline: datetime | None = None
    # While PROVEN: the slowest new pod's seconds from container start to Ready (history).
    time_to_ready: int | None = None
    # The canary analysis ended in this pass: "passed: ...", "inconclusive: ...", "skipped: ...".
    analysis_outcome: str | None = None
    # While the canary analysis runs: when it ends (at the latest, past its duration).
    analysing_until: datetime | None = None
    # While it runs past its duration: the evidence it still waits for (canary.py).
    analysis_awaiting: str | None = None


def dependency_down(pod: PodObservation) -> str | None:
    """The service's own readiness report names its database as the problem."""
    database = pod.readiness_checks.get("database", "")
    return database if database.startswith("unreachable") else None


def _environment_at_fault(
    old: list[PodObservation], unready_new: list[PodObservation]
) -> str | None:
    """Why the environment, not the release, keeps the new pods unready; None if it is not.

    The other release's pods are the control group: ready ones prove the environment works for
    them, so the release is at fault whatever its pods report. Only when none of them is ready,
    or none exists (scale-up from zero, a first release), do the new pods' own /readyz reports
    count.
    """
    # Old pods that ran (now, or before a restart): a crash-looping old pod counts as lost too.
    old_ran = [p for p in old if p.started or p.restart_count > 0]
    if any(p.ready for p in old_ran):
        return None
    if old_ran:
        names = ", ".join(p.name for p in old_ran)
        return f"the serving release's pods ({names}) lost readiness too"
    for pod in unready_new:
        if (reason := dependency_down(pod)) is not None:
            return f"pod {pod.name} reports {reason}"
    return None


def _during_hold(deployment: DeploymentObservation, floor: datetime | None) -> bool:
    """The controller's deadline ran out while the verdict was held (an outage, capacity, a
    pause): it says nothing about the release, and the controller will not say it again."""
    at = deployment.progress_deadline_at
    return floor is not None and (at is None or at <= floor)


def window_start(pod: PodObservation, floor: datetime | None, window: timedelta) -> datetime | None:
    if pod.started_at is None:
        return None  # not started (being scheduled, pulled, created): no window yet
    start = pod.started_at
    budget = pod.container.startup_budget
    ready_since_start = pod.ready_changed_at is not None and pod.ready_changed_at > start
    if budget is not None and not ready_since_start:
        # Under a startup probe the readiness probe does not run until it passes, and when it
        # passed is not reported: the window starts once the probe's budget is spent.
        start += budget
    # Ready since it started, by the kubelet's probe or its own answer to the operator's read
    # (a blip can fall between two probes): an unready pod then gets a fresh window from it.
    # Only an answer within the window it had counts, so a pod gets at most two windows: a
    # server that answers the operator ready while the kubelet's probe always fails (a probe
    # timeout shorter than its answers), or a ready answer first read after an operator
    # restart, never moves the window on.
    ready = pod.ready_answered_at
    answered_ready = ready if ready is not None and ready < start + window else None
    times = [t for t in (start, pod.ready_changed_at, answered_ready, floor) if t]
    return max(times)


def time_to_ready(pods: Iterable[PodObservation]) -> int | None:
    """Seconds from container start to Ready of the slowest ready pod, if any says."""
    seconds = [
        int((p.ready_changed_at - p.started_at).total_seconds())
        for p in pods
        if p.ready and p.ready_changed_at is not None and p.started_at is not None
    ]
    return max(0, max(seconds)) if seconds else None


def _failures(
    new: list[PodObservation],
    old: list[PodObservation],
    *,
    now: datetime,
    window: timedelta,
    floor: datetime | None,
    migrated: bool,
    held: bool,
) -> Verdict | None:
    """What the new pods show: a failure of the release, the same failure in the serving
    release's pods (the environment), or a fault of the environment that holds the rollout."""
    seen_in_old = [
        (pod, f) for pod in old if (f := classify_pod(pod, now=now, window=window, floor=floor))
    ]
    shared: str | None = None
    hold: Verdict | None = None
    for pod in new:
        failure = classify_pod(
            pod, now=now, window=window, floor=floor, migrated=migrated, held=held
        )
        if failure is None:
            continue
        if not failure.kind.blames_release:
            hold = hold or Verdict(
                _HOLD_FOR[failure.kind], failure=failure, detail=f"pod {pod.name}: {failure.detail}"
            )
            continue
        twin = next((o for o, f in seen_in_old if f.same_as(failure)), None)
        if twin is None:
            return Verdict(VerdictKind.FAILED, failure=failure)
        shared = shared or (
            f"pod {pod.name} shows {failure.kind.value} and so does the serving release's "
            f"pod {twin.name}: {failure.detail}"
        )
    if shared is not None:
        return Verdict(VerdictKind.DEPENDENCY_UNAVAILABLE, detail=shared)
    return hold


def judge(
    *,
    release: str,
    deployment: DeploymentObservation,
    pods: Iterable[PodObservation],
    now: datetime,
    window: timedelta,
    floor: datetime | None,
    migrated: bool = False,
    held: bool = False,
    analysis: AnalysisSpec | None = None,
    lead: timedelta = timedelta(0),
    silent_window: timedelta | None = None,
    comparable: bool = True,
) -> Verdict:
    """The verdict on `release`, which `deployment` serves (its template carries the label).

    `migrated`: the release's migration succeeded (or it shares the schema of a proven
    release), so a new pod reporting the schema behind its image is the release's fault.
    `held`: a hold runs since an earlier pass (its clock is stopped).
    `analysis`: the canary analysis to run, unless it already ended for this release;
    `comparable`: old pods can serve beside its canary (canary.analyse).
    `lead`: how long before a readiness window's end the verdict is taken (window.verdict_lead:
    a learned window is the time by which the rollback has started).
    `silent_window`: with a learned window, how long a pod whose server has not answered yet
    may take from its start (window.unready_due); None: the window is the spec's, for every pod.
    """
    if deployment.replicas == 0:
        return Verdict(VerdictKind.SCALED_TO_ZERO, detail="scaled to zero: no pod to judge")
    live = sorted((p for p in pods if p.counts), key=lambda p: p.name)
    new = [p for p in live if p.release == release]
    old = [p for p in live if p.release != release]
    if deployment.rollout_complete:
        return Verdict(
            VerdictKind.PROVEN,
            detail=f"{deployment.ready_replicas} ready",
            time_to_ready=time_to_ready(new),
            # No old pod is left to compare with: said so, with a Warning (decide.py).
            analysis_outcome=COMPLETED_UNMEASURED if analysis is not None else None,
        )

    # The environment first: an outage can crash-loop new pods as well as unready them (a
    # liveness probe that times out while the database hangs), and then it is not the release.
    unready_new = [p for p in new if not p.ready]
    if unready_new and (reason := _environment_at_fault(old, unready_new)) is not None:
        return Verdict(VerdictKind.DEPENDENCY_UNAVAILABLE, detail=reason)

    found = _failures(new, old, now=now, window=window, floor=floor, migrated=migrated, held=held)
    if found is not None:
        return found

    deadline: datetime | None = None
    for pod in unready_new:
        waiting = waiting_deadline(pod, window=window, floor=floor)
        if waiting is not None and waiting > now:
            deadline = min(deadline or waiting, waiting)
        start = window_start(pod, floor, window)
        if start is None:
            continue
        due, detail = unready_due(pod, start, window, silent_window, lead)
        if now >= due:
            failure = Failure(FailureKind.UNREADY, pod.name, detail)
            return Verdict(VerdictKind.FAILED, failure=failure)
        deadline = min(deadline or due, due)

    if unplaced := [p for p in new if p.unschedulable is not None]:
        return Verdict(
            VerdictKind.UNSCHEDULABLE,
            detail=f"pod {unplaced[0].name} cannot be scheduled: {unplaced[0].unschedulable}",
        )
    if deployment.progress_deadline_exceeded and not _during_hold(deployment, floor):
        failure = Failure(FailureKind.PROGRESS_DEADLINE, None, "the Deployment made no progress")
        return Verdict(VerdictKind.FAILED, failure=failure)
    ready = sum(1 for p in new if p.ready)
    detail = f"{ready}/{deployment.replicas} new pods ready"
    canary = analyse(analysis, new, old, now, comparable=comparable) if analysis else None
    if canary is not None:
        if canary.failure is not None:
            return Verdict(VerdictKind.FAILED, failure=canary.failure)
        deadlines = [d for d in (deadline, canary.until) if d is not None]
        return Verdict(
            VerdictKind.WAITING,
            detail=canary.detail,
            deadline=min(deadlines) if deadlines else None,
            analysis_outcome=canary.outcome,
            analysing_until=canary.until,
            analysis_awaiting=canary.awaiting,
        )
    return Verdict(VerdictKind.WAITING, detail=detail, deadline=deadline)
