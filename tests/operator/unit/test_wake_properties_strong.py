"""A stronger form of test_wake_properties: over random histories that include what changes by
time alone (pulls and config errors whose messages say nothing, readiness blips, a rollback-to,
a foreign object in the way, unschedulable pods, waiting migration pods), the decision must not
change, with no event, before the loop wakes as pacing.next_sleep (with the caches) schedules
it: for every plan, not only the `watched` ones (an idle row sleeps the resync whatever
`watched` says), at many points of that sleep, not one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from items_operator.analysis import RequestSample
from items_operator.observe import JobState, PodObservation, PodPhase
from items_operator.plan import Plan

from .test_decide_properties import perturb, perturbation
from .test_wake_review import _decision, _latest_wake
from .world import V1, World, spec

# Exploring: REVIEW_EXAMPLES=3000 finds more; REVIEW_SKIP_REASONS=Scaling,... and
# REVIEW_SKIP=conflicts,metrics,readyz,slot set aside what was found already.
EXAMPLES = int(os.environ.get("REVIEW_EXAMPLES", "60"))
SKIP_REASONS = frozenset(os.environ.get("REVIEW_SKIP_REASONS", "").split(",")) - {""}
SKIP_INPUTS = frozenset(os.environ.get("REVIEW_SKIP", "").split(",")) - {""}

ODD_WAITING = (
    ("ErrImagePull", "pull: something odd"),
    ("ImagePullBackOff", 'Back-off pulling image "x"'),
    ("CreateContainerConfigError", "the runtime said something new"),
    ("CreateContainerError", "failed to reserve container name"),
)


def _odd_pods(world: World, arg: tuple[int, int]) -> None:
    which, created_ago = arg
    reason, message = ODD_WAITING[which]
    world.pods = [
        replace(
            p,
            ready=False,
            started_at=None,
            waiting_reasons=(reason,),
            waiting_message=message,
            created_at=world.now - timedelta(seconds=created_ago),
            phase=PodPhase.PENDING,
        )
        if p.release == world.serving_release
        else p
        for p in world.pods
    ]


def _blip(world: World, _: Any) -> None:
    world.pods = [
        replace(p, ready=False, ready_changed_at=world.now)
        if p.ready and p.started_at is not None and p.release == world.serving_release
        else p
        for p in world.pods
    ]


def _unschedulable(world: World, on: bool) -> None:
    world.pods = [
        replace(p, unschedulable="0/1 nodes are available" if on else None, started_at=None)
        if p.release == world.serving_release and not p.ready
        else p
        for p in world.pods
    ]


def _migration_pod(world: World, arg: tuple[int, int]) -> None:
    which, created_ago = arg
    reason, message = ODD_WAITING[which]
    for job in world.jobs.values():
        if job.state is JobState.ACTIVE:
            world.job_pods = [p for p in world.job_pods if p.job_name != job.name]
            world.job_pods.append(
                PodObservation(
                    name=f"{job.name}-pod",
                    image=job.image,
                    created_at=world.now - timedelta(seconds=created_ago),
                    ready=False,
                    deleting=False,
                    job_name=job.name,
                    waiting_reasons=(reason,),
                    waiting_message=message,
                    phase=PodPhase.PENDING,
                )
            )


def _conflict(world: World, on: bool) -> None:
    if on:
        world.owned.pop("Service", None)
        world.conflicts = ("Service/shop",)
    else:
        world.conflicts = ()


def _rollback_to(world: World, number: int | None) -> None:
    world.rollback_to = number


EXTRA: dict[str, Callable[[World, Any], None]] = {
    "odd-pods": _odd_pods,
    "blip": _blip,
    "unschedulable": _unschedulable,
    "migration-pod": _migration_pod,
    "conflict": _conflict,
    "rollback-to": _rollback_to,
}
timed = st.one_of(
    st.tuples(
        st.just("odd-pods"), st.tuples(st.integers(0, len(ODD_WAITING) - 1), st.integers(0, 200))
    ),
    st.tuples(st.just("blip"), st.none()),
    st.tuples(st.just("unschedulable"), st.booleans()),
    st.tuples(
        st.just("migration-pod"),
        st.tuples(st.integers(0, len(ODD_WAITING) - 1), st.integers(0, 200)),
    ),
    st.tuples(st.just("conflict"), st.booleans()),
    st.tuples(st.just("rollback-to"), st.one_of(st.none(), st.integers(1, 3))),
)


def _apply(world: World, what: str, arg: Any) -> None:
    if what in EXTRA:
        EXTRA[what](world, arg)
    else:
        perturb(world, what, arg)


def _after(steps: list[tuple[str, Any]]) -> tuple[World, Plan]:
    """A settled ItemService through `steps`, and the plan of the pass that then sleeps."""
    world = World(spec=spec(V1, replicas=2))
    world.settle()
    for what, arg in steps:
        _apply(world, what, arg)
        world.step()
    return world, world.step()


def _horizon(plan: Plan) -> float | None:
    """How long the caches let this pass sleep beyond its row's poll, if they do."""
    sleep = _latest_wake(plan)
    return sleep if sleep > plan.requeue_after + 1e-9 else None


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.one_of(perturbation, timed, timed), min_size=1, max_size=20))
# Found by this property (review of issue #13): Scaling names no deadline for a pull that
# says nothing; RollbackRequested (idle) sleeps the resync over its revision's window.
@example(steps=[("replicas", 1), ("odd-pods", (0, 0))])
@example(
    steps=[
        ("image", "registry.example/items-service:2.0.0"),
        ("rollback-to", 1),
        ("pods", (False, (), 1, True)),
    ]
)
def test_with_no_event_no_decision_changes_before_the_loop_wakes(
    steps: list[tuple[str, Any]],
) -> None:
    world, plan = _after(steps)
    horizon = _horizon(plan)
    event(f"{plan.status['reason']}, extended sleep: {horizon is not None}")
    if horizon is None:
        return  # polled at the row's interval, as without the caches
    if plan.status["reason"] in SKIP_REASONS:
        return
    start, now_decision = world.now, _decision(world.decide())
    # Every 2 s across the sleep, and just before its end (wake_after carries 0.5 s past the
    # deadline itself).
    points = [s for s in range(2, int(horizon), 2) if s < horizon - 0.5] + [horizon - 0.6]
    try:
        for second in points:
            world.now = start + timedelta(seconds=second)
            later = _decision(world.decide())
            assert later == now_decision, (
                f"{plan.status['reason']} -> {later[1]} after {second} s with no event; "
                f"the pass sleeps up to {horizon:.1f} s (watched={plan.watched}, "
                f"wake_after={plan.wake_after}); {plan.status['message']}; steps={steps}"
            )
    finally:
        world.now = start


def _unwatched_changes(world: World) -> list[tuple[str, Any]]:
    """What can change with no watch event: /readyz of a running pod, /metrics, the upgrade
    wave's slot, a foreign object (unlabelled, so invisible to the watches) going away."""
    changes: list[tuple[str, Any]] = []
    skip = SKIP_INPUTS
    if world.conflicts and "conflicts" not in skip:
        changes.append(("conflicts", ()))
    for checks in ({"database": "unreachable: timeout"}, {"schema": "behind: 0005 < 0006"}, {}):
        if "readyz" not in skip and any(p.started_at is not None for p in world.pods):
            changes.append(
                (
                    "pods",
                    [
                        replace(p, readiness_checks=checks) if p.started_at is not None else p
                        for p in world.pods
                    ],
                )
            )
    bad = RequestSample(400, 200, ((0.01, 400),))
    good = RequestSample(400, 0, ((0.01, 400),))
    if world.pods and "metrics" not in skip:
        changes.append(
            (
                "pods",
                [
                    replace(p, requests=bad if p.release == world.serving_release else good)
                    for p in world.pods
                ],
            )
        )
    if "slot" not in skip:
        changes.append(("upgrade_slot", not world.upgrade_slot))
    return changes


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.one_of(perturbation, timed, timed), min_size=1, max_size=20))
@example(steps=[("conflict", True), ("rollback-to", 1)])  # found by this property
def test_what_no_watch_reports_never_moves_a_decision_that_sleeps_past_its_poll(
    steps: list[tuple[str, Any]],
) -> None:
    world, plan = _after(steps)
    horizon = _horizon(plan)
    if horizon is None:
        return
    now_decision = _decision(world.decide())
    for field, value in _unwatched_changes(world):
        before = getattr(world, field)
        setattr(world, field, value)
        try:
            later = _decision(world.decide())
        finally:
            setattr(world, field, before)
        event(f"{plan.status['reason']}: {field} moves it: {later != now_decision}")
        assert later == now_decision, (
            f"{plan.status['reason']} -> {later[1]} when {field} changes, which no watch "
            f"reports; the pass sleeps up to {horizon:.1f} s (watched={plan.watched}); "
            f"{plan.status['message']}; steps={steps}"
        )


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.one_of(perturbation, timed), min_size=1, max_size=15))
def test_a_named_deadline_is_not_named_again_and_again(steps: list[tuple[str, Any]]) -> None:
    """Waking at each deadline it named, with nothing else moving, a pass names a short one
    (<= 1 s) at most twice in a row: no busy loop on a deadline that stays in the past."""
    world = World(spec=spec(V1, replicas=2))
    world.settle()
    for what, arg in steps:
        _apply(world, what, arg)
        world.step()
    short = 0
    for _ in range(6):
        plan = world.pass_once()
        if plan.wake_after is None:
            return
        short = short + 1 if plan.wake_after <= 1.0 else 0
        assert short <= 2, (plan.status["reason"], plan.status["message"], plan.actions)
        world.tick(plan.wake_after)
