"""The canary analysis' verdict: the first new pod against the old ones, over the same interval.
Pure; verdict.judge asks it once a new pod is ready (docs/operator.md, "Metrics analysis").

- The analysis runs `durationSeconds` from the canary's Ready and from the newest baseline (an
  operator that restarted measures a whole duration again, never a shortened one).
- A significant regression (analysis.compare) fails the release at any pass.
- At the duration's end it passes if both groups were read, served `minRequests` and are
  within the tolerances by their figures. Short of that evidence (too few requests, /metrics
  not read, no old pod ready, or an excess not yet significant) it goes on, up to
  EVIDENCE_WAIT_DURATIONS durations from the canary's Ready: a busy API server or a quiet
  minute must not wave a release through unmeasured. Still short then, it ends inconclusive
  (recorded, a Warning event) and the rest rolls out: a service without traffic is not blocked.
  An excess still there at that end gets one last test at 95% (a single look): significant,
  the release fails; else it is inconclusive too. 16.7% of 5xx against 0% over 60 requests
  (2026-12-07's bench) is no longer a pass.
- The Deployment controller's hold (minReadySeconds) covers that longest wait, so the rollout
  never goes past the canary before the operator has decided (hold_seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from items_operator.analysis import FINAL_SIGNIFICANCE_Z, Comparison, compare, total
from items_operator.failures import Failure, FailureKind
from items_operator.model import AnalysisSpec
from items_operator.observe import PodObservation

# How long an analysis short of evidence may go on, in durations from the canary's Ready.
EVIDENCE_WAIT_DURATIONS = 3
# How an analysis ends (the first word of status.history[].analysis), and its events' reasons.
PASSED, INCONCLUSIVE, SKIPPED = "passed", "inconclusive", "skipped"
EVENT_ENDED, EVENT_INCONCLUSIVE = "AnalysisEnded", "AnalysisInconclusive"
# The outcome when the release rolled out before its analysis ended (the controller's hold
# lapsed: the ItemService paused past it, the operator down or late): nothing was compared.
COMPLETED_UNMEASURED = f"{INCONCLUSIVE} (the rollout completed before the analysis ended)"


def hold_seconds(spec: AnalysisSpec) -> int:
    """The longest an analysis runs from the canary's Ready; the Deployment's hold adds a margin."""
    return spec.duration_seconds * EVIDENCE_WAIT_DURATIONS


@dataclass(frozen=True)
class CanaryVerdict:
    detail: str
    failure: Failure | None = None  # a regression: the release failed
    outcome: str | None = None  # the analysis ended in this pass ("passed: ...", ...)
    until: datetime | None = None  # while it runs: when it ends at the latest
    # While it runs past its duration: what evidence it waits for (a stable phrase, no counts).
    awaiting: str | None = None


def analyse(
    spec: AnalysisSpec,
    new: list[PodObservation],
    old: list[PodObservation],
    now: datetime,
    *,
    comparable: bool = True,
) -> CanaryVerdict | None:
    """The canary's verdict; None while no new pod is ready. `comparable`: old pods can serve
    beside the canary (a release served before, and room for both); without old pods then,
    the analysis waits for them as for any other missing evidence instead of being skipped."""
    canaries = [p for p in new if p.ready and p.ready_changed_at is not None]
    if not canaries:
        return None
    if not old and not comparable:
        return CanaryVerdict(
            "no old pods to compare with",
            outcome=f"{SKIPPED}: no pods of another release served beside the new ones",
        )
    canary = min(canaries, key=lambda p: p.ready_changed_at or now)
    assert canary.ready_changed_at is not None
    controls = [p for p in old if p.ready]
    new_read = [p for p in canaries if p.requests is not None]
    old_read = [p for p in controls if p.requests is not None]
    new_total = total(p.requests for p in new_read if p.requests is not None)
    old_total = total(p.requests for p in old_read if p.requests is not None)
    comparison = compare(new_total, old_total, spec)
    summary = comparison.summary
    if comparison.regression is not None:
        failure = Failure(FailureKind.METRICS_REGRESSION, canary.name, comparison.regression)
        return CanaryVerdict(summary, failure=failure)
    # Every kept baseline counts, read this pass or not: the end does not move with the reads.
    since = (p.requests_since for p in (*canaries, *controls))
    started = max(t for t in (canary.ready_changed_at, *since) if t)
    ends = started + timedelta(seconds=spec.duration_seconds)
    limit = canary.ready_changed_at + timedelta(seconds=hold_seconds(spec))
    if now < min(ends, limit):
        return CanaryVerdict(f"analysing {canary.name}: {summary}", until=min(ends, limit))
    missing = _missing_evidence(comparison, new_read, old_read, controls)
    if missing is None and now < ends:  # the limit came first (a late baseline: a restart)
        measured = int((now - started).total_seconds())
        missing = f"measured {measured}s of its {spec.duration_seconds}s"
        return CanaryVerdict(summary, outcome=f"{INCONCLUSIVE} ({missing}): {summary}")
    if missing is None:
        return CanaryVerdict(summary, outcome=f"{PASSED}: {summary}")
    if now < limit:
        return CanaryVerdict(
            f"analysing {canary.name}, {missing}: {summary}", until=limit, awaiting=missing
        )
    if comparison.suspect is not None:  # the last look, at the one-test significance
        final = compare(new_total, old_total, spec, z_needed=FINAL_SIGNIFICANCE_Z)
        if final.regression is not None:
            detail = f"{final.regression} (95% significant at the analysis' end)"
            failure = Failure(FailureKind.METRICS_REGRESSION, canary.name, detail)
            return CanaryVerdict(summary, failure=failure)
        missing = f"{comparison.suspect}, not significant at its end"
    return CanaryVerdict(summary, outcome=f"{INCONCLUSIVE} ({missing}): {summary}")


def _missing_evidence(
    comparison: Comparison,
    new_read: list[PodObservation],
    old_read: list[PodObservation],
    controls: list[PodObservation],
) -> str | None:
    """What the comparison still lacks to conclude; None if it can."""
    if not controls:
        return "no old pod ready"
    if not old_read:
        return "the old pods' /metrics not read"
    if not new_read:
        return "the new pod's /metrics not read"
    if not comparison.conclusive:
        return "too few requests"
    if comparison.suspect is not None:  # a stable phrase: the figures are in the summary
        return "an excess over the tolerance to confirm or clear"
    return None
