"""Level-based and idempotent: feeding a pass's status back in converges, and a steady state
writes nothing (no actions, no events, no status patch) — even later in time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from items_operator.decide import decide
from items_operator.model import ItemService
from items_operator.observe import JobState, SecretState
from items_operator.status import merge_patch

from .factories import NOW, V1, V2, deployment, item_service, job, observed, pod
from .test_decide_table import Case, _cases

ACTION_BOUND_EVENTS = {"MigrationStarted", "MigrationPodFailed", "RolloutStarted", "RolledBack"}


def _with_status(cr: ItemService, status: dict[str, object]) -> ItemService:
    return ItemService(owner=cr.owner, generation=cr.generation, spec=cr.spec, status=dict(status))


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.id)
def test_status_converges_after_one_pass(case: Case) -> None:
    first = decide(case.cr, case.seen, NOW)
    second = decide(_with_status(case.cr, first.status), case.seen, NOW)
    third = decide(_with_status(case.cr, second.status), case.seen, NOW)

    assert merge_patch(second.status, third.status) == {}
    # Only events that accompany a (re-issued) action may repeat; transitions are reported once.
    assert {e.reason for e in second.events} <= ACTION_BOUND_EVENTS
    if not first.actions:
        assert merge_patch(first.status, second.status) == {}


@pytest.mark.parametrize(
    "scenario",
    ["available", "migration-failed", "rolled-back", "secret-missing", "migrating"],
)
def test_steady_state_writes_nothing_later_in_time(scenario: str) -> None:
    cr = item_service(V1)
    if scenario == "available":
        seen = observed(cr, deployment=deployment(cr, V1), jobs=(job(V1, JobState.SUCCEEDED),))
    elif scenario == "migration-failed":
        cr = item_service(V2, status={"lastGoodImage": V1}, generation=2)
        seen = observed(cr, deployment=deployment(cr, V1), jobs=(job(V2, JobState.FAILED),))
    elif scenario == "rolled-back":
        cr = item_service(V2, status={"lastGoodImage": V1, "failedImage": V2}, generation=2)
        dep = deployment(cr, V1, rolled_back_image=V2, rolled_back_generation=2)
        seen = observed(cr, deployment=dep, pods=(pod(V1, ready=True),))
    elif scenario == "secret-missing":
        seen = observed(cr, secret=SecretState.MISSING)
    else:
        seen = observed(cr, jobs=(job(V1, JobState.ACTIVE),))

    settled = decide(cr, seen, NOW)
    cr = _with_status(cr, settled.status)
    settled = decide(cr, seen, NOW)
    cr = _with_status(cr, settled.status)

    later = decide(cr, seen, NOW + timedelta(minutes=5))

    assert later.actions == ()
    assert later.events == ()
    assert merge_patch(cr.status, later.status) == {}


def test_condition_transition_time_moves_only_when_status_flips() -> None:
    cr = item_service(V1, status={"lastGoodImage": V1})
    ready = observed(cr, deployment=deployment(cr, V1))
    first = decide(cr, ready, NOW)
    ready_since = {c["type"]: c["lastTransitionTime"] for c in first.status["conditions"]}

    cr = _with_status(cr, first.status)
    degraded = observed(cr, deployment=deployment(cr, V1, complete=False, ready=1))
    second = decide(cr, degraded, NOW + timedelta(seconds=30))
    after = {c["type"]: c["lastTransitionTime"] for c in second.status["conditions"]}

    assert after["Ready"] != ready_since["Ready"]
    assert after["MigrationSucceeded"] == ready_since["MigrationSucceeded"]
