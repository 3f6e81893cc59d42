"""The canary analysis (issue #14): the service's own /metrics parsed, new pod against old pods,
and the decision layer's canary step (one new pod held beside the old ones, then the rest)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from items_operator.analysis import RequestSample, compare, parse_metrics, pods_to_measure
from items_operator.canary import EVIDENCE_WAIT_DURATIONS
from items_operator.kube_proxy import attach_requests
from items_operator.model import AnalysisSpec
from items_operator.observe import PodObservation, PodPhase
from items_operator.specs.deployment import CANARY_HOLD_MARGIN_SECONDS
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from .world import V1, V2, V3, World, available_world

SPEC = AnalysisSpec()
BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, float("inf"))


def _exposition(requests: dict[tuple[str, str], int], latency: dict[str, list[float]]) -> str:
    """A /metrics body with the service's metric names and labels (service/core/metrics.py)."""
    registry = CollectorRegistry()
    counter = Counter("items_http_requests", "", ["route", "method", "status"], registry=registry)
    histogram = Histogram(
        "items_http_request_duration_seconds",
        "",
        ["route", "method"],
        buckets=BUCKETS[:-1],
        registry=registry,
    )
    for (route, status), count in requests.items():
        counter.labels(route, "GET", status).inc(count)
    for route, values in latency.items():
        for value in values:
            histogram.labels(route, "GET").observe(value)
    return generate_latest(registry).decode()


def sample(requests: int, errors: int, slow: int = 0, *, slow_s: float = 0.3) -> RequestSample:
    """`requests` answered in ~5 ms except `slow` of them."""
    fast = requests - slow
    buckets = [(b, fast + (slow if b >= slow_s else 0)) for b in BUCKETS]
    return RequestSample(requests, errors, tuple(buckets))


def test_only_the_item_api_counts_and_only_5xx_but_503_are_errors() -> None:
    body = _exposition(
        {
            ("/items", "200"): 90,
            ("/items/{item_id}", "500"): 7,
            ("/items/{item_id}", "503"): 3,
            ("/items", "404"): 5,
            ("/readyz", "503"): 40,
            ("/metrics", "200"): 12,
        },
        {"/items": [0.004] * 95 + [0.3] * 10, "/readyz": [2.0] * 40},
    )
    parsed = parse_metrics(body)
    assert (parsed.requests, parsed.errors) == (105, 7)  # 503 is "not now", not the release
    assert parsed.quantile(0.5) == 0.01
    assert parsed.quantile(0.99) == 0.5  # the /readyz timeouts are not the API's latency


def test_the_service_s_own_exposition_parses() -> None:
    """The real metrics module of the service, as a pod serves it."""
    from service.core import metrics

    before = parse_metrics(metrics.render()[0].decode())
    metrics.observe_request("/items", "GET", 200, 0.003)
    metrics.observe_request("/items/{item_id}", "GET", 500, 0.2)
    metrics.observe_request("/healthz", "GET", 200, 0.001)
    after = parse_metrics(metrics.render()[0].decode()).since(before)
    assert (after.requests, after.errors) == (2, 1)


def test_an_increase_counts_from_the_baseline_and_a_restart_from_zero() -> None:
    first, later = sample(100, 2), sample(160, 14)
    assert later.since(first).requests == 60
    assert later.since(first).errors == 12
    restarted = sample(10, 1)
    assert restarted.since(first) == restarted


@pytest.mark.parametrize(
    ("new", "old", "regressed"),
    [
        (sample(100, 20), sample(300, 0), True),  # +20 points at 100 requests: the benchmark's
        (sample(50, 10), sample(150, 0), False),  # the same at 50: not yet significant at 99.9%
        (sample(50, 3), sample(150, 0), False),  # +6 points on 50 requests: not significant
        (sample(1000, 110), sample(3000, 60), True),  # +9 points on many requests
        (sample(200, 60), sample(400, 120), False),  # an outage fails both alike
        (sample(20, 20), sample(100, 0), False),  # below minRequests: no verdict yet
        (sample(100, 30), sample(0, 0), False),  # old pods not read: nothing to compare with
        (sample(300, 0, slow=15), sample(900, 0), True),  # 5% of requests 5 ms -> 300 ms
        (sample(100, 0, slow=5, slow_s=0.05), sample(300, 0), False),  # too small to matter
        (sample(100, 0, slow=5), sample(300, 0, slow=15), False),  # old pods as slow
        (sample(100, 0, slow=1, slow_s=0.5), sample(300, 0), False),  # one cold request
        (
            RequestSample(100, 0, ((0.1, 97), (0.25, 100), (float("inf"), 100))),
            RequestSample(300, 0, ((0.1, 300), (0.25, 300), (float("inf"), 300))),
            False,
        ),  # a tail across a bucket edge (99 ms -> 101 ms) is not "2.5x slower"
    ],
)
def test_compare(new: RequestSample, old: RequestSample, regressed: bool) -> None:
    result = compare(new, old, SPEC)
    assert (result.regression is not None) is regressed, result.summary


def test_the_message_gives_the_numbers() -> None:
    result = compare(sample(100, 20), sample(300, 0), SPEC)
    assert result.regression is not None
    assert "20/100 5xx (20.0%)" in result.regression
    assert "0/300" in result.regression


counts = st.integers(min_value=0, max_value=5_000)


@given(n=counts, e=counts, slow=counts)
def test_a_pod_like_the_old_ones_is_never_a_regression(n: int, e: int, slow: int) -> None:
    e, slow = min(e, n), min(slow, n)
    twin = sample(n, e, slow)
    assert compare(twin, twin, SPEC).regression is None


@given(n=st.integers(1, 5_000), e=counts, m=st.integers(1, 5_000), f=counts)
def test_a_regression_needs_more_errors_than_tolerated(n: int, e: int, m: int, f: int) -> None:
    new, old = sample(n, min(e, n)), sample(m, min(f, m))
    result = compare(new, old, SPEC)
    if new.error_ratio - old.error_ratio <= SPEC.max_error_rate_increase:
        assert result.regression is None or "latency" in result.regression


@given(n=st.integers(30, 2_000), e=st.integers(0, 2_000), extra=st.integers(0, 200))
def test_more_errors_never_turn_a_regression_into_a_pass(n: int, e: int, extra: int) -> None:
    e = min(e, n - min(extra, n))
    old = sample(400, 4)
    worse = sample(n, min(e + extra, n))
    if compare(sample(n, e), old, SPEC).regression is not None:
        assert compare(worse, old, SPEC).regression is not None


# -- the canary step, through the simulated cluster ------------------------------------------


def _analysed_world(**analysis: Any) -> World:
    world = available_world(replicas=2, rollout={"analysis": analysis})
    world.change(image=V2)
    world.settle(passes=1)
    return world


def _canary(world: World, new: RequestSample | None, old: RequestSample | None) -> None:
    """The controller surged one new pod beside the old ones; it turned ready now."""
    release = world.serving_release
    assert world.deployment is not None
    old_pods = [replace(p, requests=old) for p in world.pods if p.release != release]
    ready_at = next((p.ready_changed_at for p in world.pods if p.uid == "canary-uid"), world.now)
    canary = PodObservation(
        name=f"shop-{release}-0",
        image=V2,
        created_at=world.now - timedelta(seconds=6),
        ready=True,
        deleting=False,
        release=release,
        phase=PodPhase.RUNNING,
        started_at=world.now - timedelta(seconds=5),
        ready_changed_at=ready_at,
        uid="canary-uid",
        requests=new,
    )
    world.pods = [*old_pods, canary]
    world.deployment["status"] = {
        "observedGeneration": world.deployment["metadata"]["generation"],
        "replicas": len(world.pods),
        "updatedReplicas": 1,
        "readyReplicas": len(world.pods),
        "availableReplicas": len(old_pods),
    }


def _strategy(world: World) -> tuple[Any, Any, Any]:
    assert world.deployment is not None
    spec = world.deployment["spec"]
    rolling = spec["strategy"]["rollingUpdate"]
    return rolling["maxSurge"], rolling["maxUnavailable"], spec.get("minReadySeconds")


def test_the_canary_is_one_pod_held_beside_the_old_ones() -> None:
    world = _analysed_world(durationSeconds=60)
    hold = EVIDENCE_WAIT_DURATIONS * 60 + CANARY_HOLD_MARGIN_SECONDS  # the longest wait, and more
    assert _strategy(world) == (1, 0, hold)
    assert world.deployment is not None
    assert world.deployment["spec"]["progressDeadlineSeconds"] > hold
    _canary(world, RequestSample(), RequestSample())
    world.step()
    assert world.status["reason"] == "Analysing", world.status["message"]
    assert _strategy(world) == (1, 0, hold)


def _analysing(seconds: float, **analysis: Any) -> World:
    """The canary turned ready (baselines taken), then `seconds` pass."""
    world = _analysed_world(**analysis)
    _canary(world, sample(0, 0), sample(0, 0))
    world.step()
    world.tick(seconds)
    return world


def test_a_5xx_regression_rolls_back_with_the_numbers() -> None:
    world = _analysing(20)
    _canary(world, sample(100, 20), sample(300, 1))
    world.step()
    assert world.status["reason"] == "RolledBack"
    entry = world.status["history"][-1]
    assert entry["reason"] == "MetricsRegression"
    assert "20/100 5xx" in entry["message"]
    assert world.deployment is not None
    assert world.deployment["spec"]["template"]["spec"]["containers"][0]["image"] == V1
    assert _strategy(world) == (1, 0, None)  # the old release rolls back without a hold


def test_the_analysis_passes_at_its_end_and_the_rest_rolls_out() -> None:
    world = _analysing(31, durationSeconds=30)
    _canary(world, sample(90, 0), sample(200, 1))
    plan = world.step()
    entry = world.status["history"][-1]
    assert entry["analysis"].startswith("passed"), entry
    assert _strategy(world) == (1, 0, None)  # the spec's strategy, no hold
    assert any(e.reason == "AnalysisEnded" for e in plan.events)
    world.settle()
    assert world.status["phase"] == "Available"
    assert world.status["currentImage"] == V2


def test_too_little_traffic_waits_then_is_inconclusive_not_a_block() -> None:
    world = _analysed_world(durationSeconds=30)
    _canary(world, sample(3, 0), sample(9, 0))
    world.step()
    world.tick(31)
    _canary(world, sample(3, 0), sample(9, 0))
    world.step()
    assert world.status["reason"] == "Analysing", world.status["message"]
    assert "too few requests" in world.status["message"]
    assert "analysis" not in world.status["history"][-1]
    assert _strategy(world)[2] is not None  # the Deployment controller still holds
    world.tick(EVIDENCE_WAIT_DURATIONS * 30 - 31)  # the canary's Ready + the longest wait
    _canary(world, sample(3, 0), sample(9, 0))
    plan = world.step()
    assert world.status["history"][-1]["analysis"].startswith("inconclusive (too few requests)")
    assert [e.type for e in plan.events if e.reason == "AnalysisInconclusive"] == ["Warning"]
    world.settle()
    assert world.status["phase"] == "Available"


def test_traffic_that_arrives_late_is_still_judged() -> None:
    """A quiet (or unread) first duration does not wave the release through: the regression
    that shows once requests come is rolled back."""
    world = _analysing(31, durationSeconds=30)
    _canary(world, sample(4, 1), sample(10, 0))
    world.step()
    assert world.status["reason"] == "Analysing"
    world.tick(20)
    _canary(world, sample(120, 30), sample(240, 0))
    world.step()
    assert world.status["reason"] == "RolledBack", world.status["message"]
    assert world.status["history"][-1]["reason"] == "MetricsRegression"


@pytest.mark.parametrize(
    ("new", "old", "missing"),
    [
        (sample(90, 0), None, "the old pods' /metrics not read"),
        (None, sample(200, 0), "the new pod's /metrics not read"),
    ],
)
def test_unread_metrics_wait_instead_of_passing(
    new: RequestSample | None, old: RequestSample | None, missing: str
) -> None:
    world = _analysing(31, durationSeconds=30)
    _canary(world, new, old)
    world.step()
    assert world.status["reason"] == "Analysing"
    assert missing in world.status["message"]
    assert "analysis" not in world.status["history"][-1]
    world.tick(EVIDENCE_WAIT_DURATIONS * 30)
    _canary(world, new, old)
    world.step()
    assert world.status["history"][-1]["analysis"].startswith(f"inconclusive ({missing})")


def test_a_waiting_analysis_writes_nothing_until_its_evidence_comes() -> None:
    world = _analysing(31, durationSeconds=30)
    _canary(world, sample(3, 0), sample(9, 0))
    world.step()
    for more in range(5):
        world.tick(5)
        _canary(world, sample(3 + more, 0), sample(9 + more, 0))
        before = world.status
        plan = world.step()
        assert (plan.actions, plan.events) == ((), ()), world.status["message"]
        assert plan.status == before


def test_an_outage_during_the_analysis_blames_nobody() -> None:
    world = _analysing(20)
    _canary(world, sample(60, 30), sample(180, 95))
    world.step()
    assert world.status["reason"] == "Analysing"


def test_without_old_pods_the_analysis_is_skipped() -> None:
    """A first release (or a scale-up from zero) has nothing to be compared with."""
    world = World()
    world.change(rollout={"analysis": {}})
    world.step()
    world.finish_jobs()
    world.step()
    assert _strategy(world)[2] is not None
    world.controllers()
    assert world.deployment is not None
    world.deployment["status"]["availableReplicas"] = 0  # held by minReadySeconds
    world.step()
    assert world.status["history"][-1]["analysis"].startswith("skipped")
    assert _strategy(world)[2] is None
    world.settle()
    assert world.status["phase"] == "Available"


def test_nothing_is_measured_once_the_analysis_ended_or_without_one() -> None:
    world = _analysed_world()
    _canary(world, None, None)
    release = world.serving_release
    assert len(pods_to_measure(SPEC, world.status, release, world.pods)) == 3
    assert pods_to_measure(None, world.status, release, world.pods) == []
    ended = {**world.status, "history": [{"release": release, "analysis": "passed: ..."}]}
    assert pods_to_measure(SPEC, ended, release, world.pods) == []
    proven = {**world.status, "lastGoodRelease": release}
    assert pods_to_measure(SPEC, proven, release, world.pods) == []


def test_without_analysis_the_strategy_and_hashes_do_not_change() -> None:
    world = available_world(replicas=2)
    world.change(image=V2)
    world.settle(passes=1)
    assert _strategy(world) == (1, 0, None)
    assert world.status["reason"] != "Analysing"
    assert world.status["history"][-1].get("analysis") is None
    assert V1 != V2


# -- regressions from the adversarial review ------------------------------------------------


def test_a_later_baseline_measures_a_whole_duration_again() -> None:
    """An operator restart (or failover) loses the baselines: the analysis does not end on a
    shortened window, it runs its duration from the new baseline."""
    world = _analysing(25, durationSeconds=30)
    _canary(world, sample(5, 0), sample(10, 0))
    world.pods = [replace(p, requests_since=world.now) for p in world.pods]
    world.tick(10)  # past the canary's ready time + 30 s, 10 s after the new baseline
    world.step()
    assert world.status["reason"] == "Analysing", world.status["message"]
    assert "analysis" not in world.status["history"][-1]


def test_old_pods_unready_mid_analysis_wait_instead_of_skipping() -> None:
    world = _analysing(10, durationSeconds=30)
    _canary(world, sample(40, 16), sample(80, 0))
    world.pods = [p if p.uid == "canary-uid" else replace(p, ready=False) for p in world.pods]
    world.step()
    assert "analysis" not in world.status["history"][-1]
    assert _strategy(world)[2] is not None  # still held


def test_a_requested_rollback_is_never_held_as_a_canary() -> None:
    world = _analysed_world(durationSeconds=30)
    world.rollback_to = 1
    world.step()
    assert world.status["reason"] == "RollbackRequested", world.status["message"]
    assert _strategy(world)[2] is None


def test_no_room_to_surge_makes_the_canary_replace_one_old_pod() -> None:
    world = available_world(replicas=2, rollout={"maxSurge": 0, "maxUnavailable": 1})
    world.change(image=V2, rollout={"maxSurge": 0, "maxUnavailable": 1, "analysis": {}})
    world.settle(passes=1)
    surge, unavailable, hold = _strategy(world)
    assert (surge, unavailable) == (0, 1)
    assert hold is not None


def test_a_baseline_outlives_a_pass_without_a_read_and_not_a_restart() -> None:
    """An unanswered read, a pod unready for a moment or a stale cache does not restart the
    analysis' clock (the bench's lost 5xx rollbacks); a restarted container counts afresh."""
    world = _analysed_world()
    _canary(world, None, None)
    pods = list(world.pods)
    canary = next(p for p in pods if p.uid == "canary-uid")
    t0 = world.now
    measured, kept = attach_requests(pods, {canary.name: sample(10, 1)}, {}, t0)
    assert next(p for p in measured if p.uid == "canary-uid").requests == sample(0, 0)
    _, kept = attach_requests(pods, {}, kept, t0 + timedelta(seconds=5))  # nothing answered
    later = t0 + timedelta(seconds=10)
    measured, kept = attach_requests(pods, {canary.name: sample(50, 9)}, kept, later)
    seen = next(p for p in measured if p.uid == "canary-uid")
    assert (seen.requests, seen.requests_since) == (sample(40, 8), t0)
    restarted = [replace(p, restart_count=1) if p.uid == "canary-uid" else p for p in pods]
    measured, kept = attach_requests(restarted, {canary.name: sample(3, 0)}, kept, later)
    seen = next(p for p in measured if p.uid == "canary-uid")
    assert (seen.requests, seen.requests_since) == (sample(0, 0), later)
    _, kept = attach_requests([p for p in pods if p.uid != "canary-uid"], {}, kept, later)
    assert kept == {}


def test_a_spec_change_mid_analysis_keeps_the_canary_held_and_unproven() -> None:
    """The spec moves on to V3 while V2's canary is analysed: V2 keeps its hold (the
    controller must not roll it out while V3 migrates) and its analysis still judges it."""
    world = _analysing(10, durationSeconds=30)
    analysed = world.serving_release
    world.change(image=V3)
    world.step()
    assert world.serving_release == analysed
    assert _strategy(world)[2] is not None, "the superseded canary lost its hold"
    _canary(world, sample(100, 20), sample(300, 1))
    world.step()
    entry = next(e for e in world.status["history"] if e.get("release") == analysed)
    assert entry["reason"] == "MetricsRegression", entry
    assert world.status.get("lastGoodRelease") != analysed


def test_a_rollout_that_completed_before_its_analysis_ended_is_said_so() -> None:
    """The hold lapsed (paused past it, an operator down): nothing is left to compare; the
    release is proven, and the analysis ends inconclusive with a Warning, never silently."""
    world = _analysing(10, durationSeconds=30)
    world.controllers()  # the controller rolled the rest out: only new pods
    plan = world.step()
    entry = world.status["history"][-1]
    assert entry["analysis"].startswith("inconclusive (the rollout completed"), entry
    assert any(e.type == "Warning" and e.reason == "AnalysisInconclusive" for e in plan.events)
    assert _strategy(world)[2] is None


def test_old_pods_gone_for_a_moment_wait_instead_of_skipping() -> None:
    """The only old pods evicted before their replacements exist: the analysis waits (a
    first release, or one replica with no room to surge, is skipped: nothing can compare)."""
    world = _analysing(10, durationSeconds=30)
    world.pods = [p for p in world.pods if p.uid == "canary-uid"]
    world.step()
    assert world.status["reason"] == "Analysing", world.status["message"]
    assert "analysis" not in world.status["history"][-1]
    single = available_world(replicas=1, rollout={"maxSurge": 0, "maxUnavailable": 1})
    single.change(image=V2, rollout={"maxSurge": 0, "maxUnavailable": 1, "analysis": {}})
    single.settle(passes=1)
    _canary(single, sample(0, 0), None)
    single.pods = [p for p in single.pods if p.uid == "canary-uid"]
    single.step()
    assert single.status["history"][-1]["analysis"].startswith("skipped")


def test_a_baseline_taken_late_never_passes_a_shortened_analysis() -> None:
    """Baselines retaken just before the longest wait ends (an operator restart): enough
    requests since, but not a duration of them: inconclusive, never passed."""
    world = _analysing(EVIDENCE_WAIT_DURATIONS * 30 - 2, durationSeconds=30)
    _canary(world, sample(40, 0), sample(160, 0))
    world.pods = [replace(p, requests_since=world.now) for p in world.pods]
    world.tick(2)
    world.step()
    outcome = world.status["history"][-1]["analysis"]
    assert outcome.startswith("inconclusive (measured 2s of its 30s)"), outcome


def test_figures_beyond_the_tolerance_never_pass_and_the_last_look_rolls_back() -> None:
    """The 2026-12-07 bench's case: 10/60 5xx against 0/141 is +16.7 points, not significant
    at the per-check 99.9% (z 2.4). It had passed at the duration's end; it now goes on, and
    at the longest wait one last test at 95% rolls it back."""
    assert compare(sample(60, 10), sample(141, 0), SPEC).regression is None
    assert compare(sample(60, 10), sample(141, 0), SPEC).suspect is not None
    world = _analysing(31, durationSeconds=30)
    _canary(world, sample(60, 10), sample(141, 0))
    world.step()
    assert world.status["reason"] == "Analysing", world.status["message"]
    assert "an excess over the tolerance to confirm or clear" in world.status["message"]
    assert "analysis" not in world.status["history"][-1]
    world.tick(EVIDENCE_WAIT_DURATIONS * 30 - 31)
    _canary(world, sample(60, 10), sample(141, 0))
    world.step()
    assert world.status["reason"] == "RolledBack", world.status["message"]
    assert world.status["history"][-1]["reason"] == "MetricsRegression"
    assert "95% significant at the analysis' end" in world.status["message"]


def test_a_small_excess_at_the_last_look_is_inconclusive_not_a_rollback() -> None:
    """2/31 against 0/100 is beyond +5 points by its figures but far from significant even at
    95%: the release is not blamed; it is not passed either."""
    world = _analysing(31, durationSeconds=30)
    world.tick(EVIDENCE_WAIT_DURATIONS * 30 - 31)
    _canary(world, sample(31, 2), sample(100, 0))
    plan = world.step()
    outcome = world.status["history"][-1]["analysis"]
    assert outcome.startswith("inconclusive (5xx ratio up 6.5 points"), outcome
    assert "not significant at its end" in outcome
    assert [e.type for e in plan.events if e.reason == "AnalysisInconclusive"] == ["Warning"]
