"""Review of the time-driven wake-ups (issue #13): with the caches on, a pass sleeps until an
event, the deadline it named or the safety net (pacing.next_sleep). Each test here builds a
situation in which the decision changes with no watch event before that sleep ends.

`_latest_wake` is the longest the loop can sleep after `plan` (the jitter at its top), and
`_first_change` the first second at which the same observation, only later, decides something
else: a pass that sleeps past it acts late by the difference.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from items_operator import handlers, kube
from items_operator.analysis import pods_to_measure
from items_operator.fleet import UpgradeWave
from items_operator.observe import PodObservation, PodPhase, SecretState
from items_operator.pacing import DEFAULT_RESYNC_SECONDS, next_sleep
from items_operator.plan import Create, Plan
from items_operator.policy import RETRY_POLL

from .test_analysis import _analysing, _canary, sample
from .test_fenced_pass import ITEM_SERVICE, Clock, Fence
from .world import V1, V2, World, available_world


class _Top:
    """An rng whose jitter is always at its top: the latest a pass can wake."""

    def uniform(self, a: float, b: float) -> float:
        return b


def _latest_wake(plan: Plan) -> float:
    return next_sleep(plan, DEFAULT_RESYNC_SECONDS, _Top())  # type: ignore[arg-type]


def _decision(plan: Plan) -> tuple[Any, ...]:
    return (
        plan.status.get("phase"),
        plan.status.get("reason"),
        tuple(sorted((type(a).__name__, a.kind, getattr(a, "name", "")) for a in plan.actions)),
    )


def _first_change(world: World, horizon: float) -> float | None:
    """The first whole second before `horizon` at which nothing but the clock moved and the
    decision differs from now's."""
    start, now_decision = world.now, _decision(world.decide())
    try:
        for second in (s for s in range(1, int(horizon) + 1) if s < horizon):
            world.now = start + timedelta(seconds=second)
            if _decision(world.decide()) != now_decision:
                return float(second)
        return None
    finally:
        world.now = start


def _assert_wakes_in_time(world: World, plan: Plan) -> None:
    sleep = _latest_wake(plan)
    # Half a second of slack: "again at once" is half a second (decide.SOONEST_WAKE).
    change = _first_change(world, sleep - 0.5)
    assert change is None, (
        f"{plan.status['reason']}: the decision changes {change:.0f} s from now with no event, "
        f"the pass sleeps up to {sleep:.1f} s (watched={plan.watched}, "
        f"wake_after={plan.wake_after})"
    )


# -- 1. the canary's /metrics under a situation marked watched ----------------------------------


def test_a_canary_analysed_while_its_secret_is_missing_still_polls_its_metrics() -> None:
    """The Secret goes (a rotation by delete and create, an external-secrets refresh) while the
    canary serves: _verdict runs the analysis, _secret_unusable names SecretNotFound (watched),
    and the pass sleeps 30 s +-20 % although /metrics is read every pass and a regression shows
    there with no event. The canary's 5xx reach users up to 36 s instead of <= 5 s."""
    world = _analysing(5, durationSeconds=300)
    world.secret = SecretState.MISSING
    _canary(world, sample(0, 0), sample(0, 0))
    plan = world.step()
    assert plan.status["reason"] == "SecretNotFound", plan.status["message"]
    measured = pods_to_measure(
        world.spec.rollout.analysis, world.status, world.serving_release, world.pods
    )
    assert measured, "the canary's /metrics are read on every pass"
    # A regression the next pass would roll back on, with no watch event to wake it.
    _canary(world, sample(100, 20), sample(300, 1))
    assert world.decide().status["reason"] == "RolledBack"
    assert not plan.watched, f"sleeps up to {_latest_wake(plan):.1f} s on unwatched /metrics"


# -- 2. a foreign object in the way, under another situation --------------------------------


def _paused_with_a_foreign_service() -> tuple[World, Plan]:
    world = available_world(replicas=2)
    world.change(paused=True)
    world.step()
    world.owned.pop("Service", None)
    world.conflicts = ("Service/shop",)  # someone else's Service under our name, unlabelled
    plan = world.step()
    assert plan.status["reason"] == "Paused"
    return world, plan


def test_a_foreign_object_in_the_way_is_looked_at_again_whatever_the_situation() -> None:
    """The person deletes the foreign Service as the status asks: the watches select our
    label, so no event comes, and the ItemService has no Service until the next pass. Under
    ObjectConflict that is 15 s; under Paused (or RollbackRequested, RolledBack...) the
    resync, up to 720 s; under a watched hold in motion, up to 36 s."""
    world, plan = _paused_with_a_foreign_service()
    world.conflicts = ()  # deleted: invisible to the label-selected watch
    assert any(a.kind == "Service" for a in world.decide().actions)
    assert _latest_wake(plan) <= RETRY_POLL, f"sleeps up to {_latest_wake(plan):.0f} s"


def test_a_foreign_object_in_the_way_during_a_watched_hold_is_polled() -> None:
    world = available_world(replicas=1)
    world.change(image=V2)
    world.settle(passes=1)
    world.controllers(
        ready=False, waiting=("ImagePullBackOff",), message="unexpected status code 429"
    )
    world.owned.pop("Service", None)
    world.conflicts = ("Service/shop",)
    plan = world.step()
    assert plan.status["reason"] == "ImagePullTransient", plan.status["message"]
    assert not plan.watched, "the foreign Service's deletion sends no event"


# -- 3. the verdict on a requested revision, in an idle row ------------------------------------


def test_a_requested_revision_that_never_turns_ready_is_reported_within_its_window() -> None:
    """rollback-to names V1 while V2 serves; V1's new pods start and never turn ready. The
    verdict (p.judge in _requested_rollback) fails them at the window's end, but names no
    deadline, and RollbackRequested is an idle row: next_sleep gives it the 600 s resync and
    ignores Plan.watched (False here: the pods' /readyz is polled). RequestedRevisionFailing
    comes up to ~12 minutes late, instead of <= 60 s with the caches off."""
    world = available_world(V1, replicas=1)
    world.change(image=V2)
    world.settle()
    assert world.status["currentImage"] == V2
    world.rollback_to = 1
    world.step()
    world.controllers(ready=False, started_ago=1)
    plan = world.step()
    assert plan.status["reason"] == "RollbackRequested", plan.status["message"]
    _assert_wakes_in_time(world, plan)


# -- 4. a proven release scaling up: the verdict's deadlines are not named -----------------------


def _scaling_with(world: World, **waiting: Any) -> Plan:
    world.change(replicas=2)
    world.step()
    release = world.serving_release
    stuck = PodObservation(
        name=f"shop-{release}-new",
        image=V1,
        created_at=world.now,
        ready=False,
        deleting=False,
        release=release,
        phase=PodPhase.PENDING,
        **waiting,
    )
    world.pods = [*world.pods, stuck]
    assert world.deployment is not None
    world.deployment["status"] = {
        "observedGeneration": world.deployment["metadata"]["generation"],
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 1,
        "availableReplicas": 1,
    }
    return world.step()


def test_a_scale_up_pod_stuck_pulling_is_reported_when_its_window_ends() -> None:
    """Scaling names no deadline (_proven_health drops verdict.deadline): the pull that says
    nothing becomes ImagePullStuck / ReplicasUnavailable at created + window, the pass wakes
    at the 30 s +-20 % safety net."""
    world = available_world(V1, replicas=1)
    plan = _scaling_with(
        world, waiting_reasons=("ErrImagePull",), waiting_message="pull: something odd"
    )
    assert plan.status["reason"] == "Scaling", plan.status["message"]
    _assert_wakes_in_time(world, plan)


def test_a_scale_up_pod_in_an_unknown_config_error_is_reported_when_its_grace_ends() -> None:
    world = available_world(V1, replicas=1)
    plan = _scaling_with(
        world,
        waiting_reasons=("CreateContainerConfigError",),
        waiting_message="the runtime said something new",
    )
    assert plan.status["reason"] == "Scaling", plan.status["message"]
    _assert_wakes_in_time(world, plan)


def test_a_rolled_out_pod_that_lost_readiness_is_reported_when_the_blip_grace_ends() -> None:
    """A sanity check that passes: the blip grace is named (ROLLOUT_COMPLETE, idle)."""
    world = available_world(V1, replicas=2)
    world.pods = [
        replace(world.pods[0], ready=False, ready_changed_at=world.now),
        *world.pods[1:],
    ]
    assert world.deployment is not None
    world.deployment["status"] = {**world.deployment["status"], "readyReplicas": 1}
    plan = world.step()
    assert plan.status["reason"] == "RolloutComplete"
    _assert_wakes_in_time(world, plan)


# -- 5. a refused write on a pass that asked to run again at once (pre-existing) ------------------


def test_a_refused_store_of_a_release_is_retried_at_the_refusal_pace_not_twice_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pass that stores the spec's release names `now` as its deadline (wake_after 0.5 s);
    when the ControllerRevision's create is refused (a foreign one under our name, a quota, a
    webhook), reconcile_once returns min(0.5, REFUSED_RETRY_SECONDS): a GET and a POST every
    half second, for as long as the refusal lasts."""
    world = available_world()
    world.change(image=V2)
    world.pass_once()
    world.finish_jobs()
    plan = world.decide()
    assert any(isinstance(a, Create) and a.kind == "ControllerRevision" for a in plan.actions)
    assert plan.requeue_after == 0.5

    async def observe(*_: Any, **__: Any) -> Any:
        return world.observed()

    async def read(*_: Any) -> dict[str, Any]:
        return ITEM_SERVICE

    async def execute(_: Any, __: str, action: Any) -> None:
        if action.kind == "ControllerRevision":
            raise kube.ForeignObjectError("ControllerRevision/shop-2 is not ours")

    async def patch_status(*_: Any, **__: Any) -> None:
        return None

    monkeypatch.setattr(kube, "read_item_service", read)
    monkeypatch.setattr(kube, "observe", observe)
    monkeypatch.setattr(kube, "execute", execute)
    monkeypatch.setattr(kube, "patch_status", patch_status)
    monkeypatch.setattr(handlers, "decide", lambda *_: plan)
    monkeypatch.setattr(kopf, "event", lambda *_, **__: None)
    monkeypatch.setattr(kopf, "warn", lambda *_, **__: None)
    logger: Any = SimpleNamespace(info=lambda *_: None, warning=lambda *_: None)
    delay = asyncio.run(
        handlers.reconcile_once(
            None,  # type: ignore[arg-type]
            Clock(),  # type: ignore[arg-type]
            "shop",
            "items",
            ITEM_SERVICE,  # type: ignore[arg-type]
            logger,
            UpgradeWave(),
            fence=Fence(100),
        )
    )
    assert delay >= 1.0, f"a refused write retried every {delay} s"
