"""The canary's evidence: the service's own request metrics, new pod against old pods. Pure.

The service exports `items_http_requests_total{route,method,status}` and the latency histogram
`items_http_request_duration_seconds` (service/core/metrics.py). kube.py reads /metrics of the
new release's ready pods and of the serving release's ready pods through the API server, keeps
each pod's first sample of the analysis, and hands the decision layer the increase since then
(`RequestSample`), so both groups are compared over the same interval: an outage that fails
every pod's requests raises both ratios and blames nobody.

Rules (docs/operator.md, "Metrics analysis"):
- Only the item API counts (routes under /items): probes and /metrics are not traffic.
- Errors are 5xx answers except 503: a 4xx is the client's, and 503 is the service's own "not
  now" (draining, its pool exhausted, the database unreachable), which a new pod meets first
  when the environment is short (connection limits, a cold pool) whatever its release.
- Each group needs `minRequests` requests before anything is concluded.
- A regression is an increase of the error ratio by more than `maxErrorRateIncrease` that is
  significant at 99.9% per check (one-sided, normal approximation of the difference of two
  proportions; a pass checks every few seconds, so ~1% over a minute of checks at the boundary).
- Latency: `bound` is the first histogram bucket at or above `maxLatencyRatio` x the old pods'
  p99 (a bucket's upper bound). A regression is a share of the new pod's requests slower than
  `bound` that exceeds the old pods' share by more than 1 point, significant as above, with the
  new p99 at least MIN_LATENCY_REGRESSION slower. A bucket edge (101 ms against 99 ms) or one
  cold request among a hundred is not a regression.
- Beyond a tolerance by the figures but not significant is `suspect`: never a pass. The
  analysis goes on (canary.py) and its last look tests at FINAL_SIGNIFICANCE_Z.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.parser import text_string_to_metric_families

from items_operator.model import AnalysisSpec
from items_operator.status import latest_entry

if TYPE_CHECKING:  # observe.py imports RequestSample from here
    from items_operator.observe import PodObservation

REQUESTS_METRIC = "items_http_requests"
LATENCY_METRIC = "items_http_request_duration_seconds"
API_PREFIX = "/items"
# One-sided 99.9% per check: z of the increase beyond the tolerated one.
SIGNIFICANCE_Z = 3.09
# Slow requests beyond the tolerated latency may exceed the old pods' share by this much.
SLOW_SHARE_TOLERANCE = 0.01
# Service statuses that are not the release's errors (see the rules above).
NOT_RELEASE_ERRORS = frozenset({"503"})
# A p99 must also be this much slower: 1 ms against 3 ms is a ratio, not a regression.
MIN_LATENCY_REGRESSION = 0.05
# The one look at an analysis' end that is still beyond a tolerance (canary.py): a single
# test, so one-sided 95% (the per-check 99.9% pays for looking every few seconds).
FINAL_SIGNIFICANCE_Z = 1.645

_Excess = tuple[str, float]  # what is beyond a tolerance, and its z


@dataclass(frozen=True)
class RequestSample:
    """Counts of the item API's requests; cumulative as scraped, or an increase (delta)."""

    requests: int = 0
    errors: int = 0
    # Cumulative histogram buckets: (upper bound in seconds, requests at or below it).
    buckets: tuple[tuple[float, int], ...] = field(default=())

    def __add__(self, other: RequestSample) -> RequestSample:
        return RequestSample(
            self.requests + other.requests,
            self.errors + other.errors,
            _merge(self.buckets, other.buckets, sign=1),
        )

    def since(self, earlier: RequestSample) -> RequestSample:
        """The increase since `earlier`; a counter that went down (a restart) counts from 0."""
        if self.requests < earlier.requests or self.errors < earlier.errors:
            return self
        return RequestSample(
            self.requests - earlier.requests,
            self.errors - earlier.errors,
            _merge(self.buckets, earlier.buckets, sign=-1),
        )

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def above(self, bound: float) -> int:
        """Requests slower than `bound` (a bucket's upper bound)."""
        at_most = next((count for b, count in self.buckets if b == bound), 0)
        return max(self.requests - at_most, 0)

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding the q-quantile (None without requests)."""
        total = self.buckets[-1][1] if self.buckets else 0
        if total <= 0:
            return None
        rank = q * total
        return next((bound for bound, count in self.buckets if count >= rank), math.inf)


def _merge(
    a: tuple[tuple[float, int], ...], b: tuple[tuple[float, int], ...], *, sign: int
) -> tuple[tuple[float, int], ...]:
    counts: dict[float, int] = dict(a)
    for bound, count in b:
        counts[bound] = counts.get(bound, 0) + sign * count
    return tuple(sorted((bound, max(count, 0)) for bound, count in counts.items()))


def parse_metrics(text: str) -> RequestSample:
    """The item API's totals from a /metrics body (Prometheus text format)."""
    requests = errors = 0
    buckets: dict[float, int] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (REQUESTS_METRIC, LATENCY_METRIC):
            continue
        for sample in family.samples:
            if not sample.labels.get("route", "").startswith(API_PREFIX):
                continue
            value = int(sample.value)
            if sample.name == f"{REQUESTS_METRIC}_total":
                requests += value
                status = sample.labels.get("status", "")
                if status.startswith("5") and status not in NOT_RELEASE_ERRORS:
                    errors += value
            elif sample.name == f"{LATENCY_METRIC}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0) + value
    return RequestSample(requests, errors, tuple(sorted(buckets.items())))


def total(samples: Iterable[RequestSample]) -> RequestSample:
    result = RequestSample()
    for sample in samples:
        result = result + sample
    return result


@dataclass(frozen=True)
class Comparison:
    """What the evidence says: a regression (with the numbers), enough to judge, or too little;
    `suspect`: beyond a tolerance by the figures, but not (yet) significant."""

    regression: str | None
    conclusive: bool
    summary: str
    suspect: str | None = None


def compare(
    new: RequestSample, old: RequestSample, spec: AnalysisSpec, *, z_needed: float = SIGNIFICANCE_Z
) -> Comparison:
    """The comparison at the per-check significance, or (`z_needed`) at the final look's."""
    summary = (
        f"new pod: {new.errors}/{new.requests} 5xx ({new.error_ratio:.1%}), p99 "
        f"{_seconds(new.quantile(0.99))}; old pods: {old.errors}/{old.requests} 5xx "
        f"({old.error_ratio:.1%}), p99 {_seconds(old.quantile(0.99))}"
    )
    if new.requests < spec.min_requests or old.requests < spec.min_requests:
        return Comparison(None, conclusive=False, summary=summary)
    excesses = [
        e
        for e in (_more_errors(new, old, spec.max_error_rate_increase), _slower(new, old, spec))
        if e is not None
    ]
    for what, z in excesses:
        if z >= z_needed:
            return Comparison(f"{what}: {summary}", conclusive=True, summary=summary)
    suspect = excesses[0][0] if excesses else None
    return Comparison(None, conclusive=True, summary=summary, suspect=suspect)


def _more_errors(new: RequestSample, old: RequestSample, tolerated: float) -> _Excess | None:
    """The 5xx ratio's increase beyond the tolerated one, with its z; None within it."""
    increase = new.error_ratio - old.error_ratio
    if increase <= tolerated:
        return None
    z = _z_beyond(new.errors, new.requests, old.errors, old.requests, tolerated)
    return f"5xx ratio up {increase * 100:.1f} points (tolerated {tolerated * 100:g})", z


def _slower(new: RequestSample, old: RequestSample, spec: AnalysisSpec) -> _Excess | None:
    """The new pod's latency beyond the tolerated one (see the rules above), with its z."""
    ratio = spec.max_latency_ratio
    new_p99, old_p99 = new.quantile(0.99), old.quantile(0.99)
    if new_p99 is None or old_p99 is None or new_p99 - old_p99 < MIN_LATENCY_REGRESSION:
        return None
    bound = next((b for b, _ in old.buckets if b >= ratio * old_p99), math.inf)
    if math.isinf(bound):
        return None
    new_slow, old_slow = new.above(bound), old.above(bound)
    if new_slow / new.requests - old_slow / old.requests <= SLOW_SHARE_TOLERANCE:
        return None
    z = _z_beyond(new_slow, new.requests, old_slow, old.requests, SLOW_SHARE_TOLERANCE)
    what = (
        f"p99 latency {_seconds(new_p99)} against {_seconds(old_p99)}: "
        f"{new_slow}/{new.requests} new requests slower than {_seconds(bound)} against "
        f"{old_slow}/{old.requests} old ones (tolerated {ratio:g}x the old p99)"
    )
    return what, z


def _z_beyond(
    new_hits: int, new_total: int, old_hits: int, old_total: int, tolerated: float
) -> float:
    """z of (new ratio - old ratio - tolerated), unpooled standard error; each ratio is kept
    off 0 and 1 by half a request so that a clean control group does not make it infinite."""

    def ratio_and_variance(hits: int, n: int) -> tuple[float, float]:
        ratio = hits / n
        kept = min(max(ratio, 0.5 / n), 1 - 0.5 / n)
        return ratio, kept * (1 - kept) / n

    new_ratio, new_var = ratio_and_variance(new_hits, new_total)
    old_ratio, old_var = ratio_and_variance(old_hits, old_total)
    error = math.sqrt(new_var + old_var)
    return (new_ratio - old_ratio - tolerated) / error if error else 0.0


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    if math.isinf(value):
        return ">10s"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:g}s"


# Pods read per group and pass (the canary is one pod; the control group a sample of the old).
MAX_PODS_PER_GROUP = 3


def analysis_running(
    spec: AnalysisSpec | None,
    release: str | None,
    last_good: str | None,
    history: list[dict[str, Any]],
) -> bool:
    """An analysis is configured, the release is not proven, and none ended for it yet."""
    if spec is None or release is None or release == last_good:
        return False
    return not latest_entry(history, release).get("analysis")


def pods_to_measure(
    spec: AnalysisSpec | None,
    status: dict[str, Any],
    release: str | None,
    pods: Iterable[PodObservation],
) -> list[PodObservation]:
    """Whose /metrics this pass reads: ready pods of the release the Deployment serves and of
    the others, while its analysis runs (spec set, release not proven, no outcome recorded)."""
    history = status.get("history") or []
    if not analysis_running(spec, release, status.get("lastGoodRelease"), history):
        return []
    ready = [p for p in pods if p.counts and p.ready]
    new = [p for p in ready if p.release == release][:MAX_PODS_PER_GROUP]
    old = [p for p in ready if p.release != release][:MAX_PODS_PER_GROUP]
    return [*new, *old] if new and old else []
