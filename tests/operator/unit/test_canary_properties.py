"""Properties of the canary analysis' verdict (canary.py) over generated evidence and timing:
it never passes a release on evidence it lacks or on figures beyond a tolerance, never ends
before its duration, and always ends before the Deployment controller's hold would roll the
rest out without it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from items_operator.analysis import RequestSample
from items_operator.canary import INCONCLUSIVE, PASSED, CanaryVerdict, analyse, hold_seconds
from items_operator.model import AnalysisSpec
from items_operator.observe import PodObservation
from items_operator.specs.deployment import CANARY_HOLD_MARGIN_SECONDS

READY_AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SPEC = AnalysisSpec(duration_seconds=60, min_requests=30)
Evidence = dict[str, Any]


def _pod(
    name: str, release: str, *, ready: bool, requests: RequestSample | None, since: float
) -> PodObservation:
    return PodObservation(
        name=name,
        image=f"items:{release}",
        created_at=READY_AT - timedelta(seconds=10),
        ready=ready,
        deleting=False,
        release=release,
        started_at=READY_AT - timedelta(seconds=8),
        ready_changed_at=READY_AT if release == "new" else READY_AT - timedelta(hours=1),
        uid=name,
        requests=requests,
        requests_since=READY_AT + timedelta(seconds=since) if requests is not None else None,
    )


def _requests(max_requests: int) -> st.SearchStrategy[RequestSample | None]:
    counts = st.integers(0, max_requests).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n))
    )
    return st.one_of(st.none(), counts.map(lambda c: RequestSample(c[0], c[1])))


evidence = st.fixed_dictionaries(
    {
        "new": _requests(400),
        "old": _requests(800),
        "old_ready": st.booleans(),
        # when each group's baseline was taken, seconds after the canary's Ready
        "new_since": st.floats(0, 200),
        "old_since": st.floats(0, 200),
        "elapsed": st.floats(0, 400),
    }
)


def _judge(e: Evidence) -> tuple[CanaryVerdict | None, datetime]:
    new = [_pod("new-0", "new", ready=True, requests=e["new"], since=e["new_since"])]
    old = [_pod("old-0", "old", ready=e["old_ready"], requests=e["old"], since=e["old_since"])]
    now = READY_AT + timedelta(seconds=e["elapsed"])
    return analyse(SPEC, new, old, now), now


@given(evidence)
def test_a_pass_rests_on_both_groups_read_with_enough_requests(e: Evidence) -> None:
    verdict, _ = _judge(e)
    assert verdict is not None
    if verdict.outcome is not None and verdict.outcome.startswith(PASSED):
        assert e["old_ready"]
        new, old = e["new"], e["old"]
        assert new is not None
        assert old is not None
        assert min(new.requests, old.requests) >= SPEC.min_requests
        # and within the tolerance by its figures, significant or not (2026-12-07: 10/60
        # against 0/141 had passed)
        assert new.error_ratio - old.error_ratio <= SPEC.max_error_rate_increase


@given(evidence)
def test_an_excess_never_ends_as_a_pass_and_is_tested_at_the_limit(e: Evidence) -> None:
    """Beyond the tolerance by the figures, the analysis ends only at its limit (failed or
    inconclusive), never passed; a failure there says it was the last look."""
    verdict, now = _judge(e)
    assert verdict is not None
    new, old = e["new"], e["old"]
    if new is None or old is None or not e["old_ready"]:
        return
    if min(new.requests, old.requests) < SPEC.min_requests:
        return
    if new.error_ratio - old.error_ratio <= SPEC.max_error_rate_increase:
        return
    assert not (verdict.outcome or "").startswith(PASSED)
    if verdict.outcome is not None:
        assert now >= READY_AT + timedelta(seconds=hold_seconds(SPEC))


@given(evidence)
def test_it_never_ends_before_its_duration(e: Evidence) -> None:
    verdict, _ = _judge(e)
    assert verdict is not None
    if verdict.outcome is not None:  # a regression may fail it at any time; nothing else ends it
        assert e["elapsed"] >= SPEC.duration_seconds


@given(evidence)
def test_it_always_ends_before_the_controller_s_hold(e: Evidence) -> None:
    """Past the longest wait a pass ends it (passed, inconclusive or failed): the hold
    (minReadySeconds) the Deployment carries is longer, so the controller never rolls the
    rest out before the operator has decided."""
    e = {**e, "elapsed": hold_seconds(SPEC) + e["elapsed"] % CANARY_HOLD_MARGIN_SECONDS}
    verdict, _ = _judge(e)
    assert verdict is not None
    assert verdict.failure is not None or verdict.outcome is not None
    if verdict.outcome is not None and not verdict.outcome.startswith(PASSED):
        assert verdict.outcome.startswith(INCONCLUSIVE)


@given(evidence)
def test_while_it_runs_it_names_an_end_within_the_hold(e: Evidence) -> None:
    verdict, now = _judge(e)
    assert verdict is not None
    if verdict.outcome is None and verdict.failure is None:
        assert verdict.until is not None
        assert verdict.until > now
        assert verdict.until <= READY_AT + timedelta(seconds=hold_seconds(SPEC))
