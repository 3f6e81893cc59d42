"""With the watch-fed caches a pass in motion does not poll when every input of its situation
comes through a watch (Plan.watched): it sleeps until an event or the deadline the decision
named (pacing.next_sleep). That is safe only if, with no event, the decision cannot change
before that deadline. Checked over the same random histories as the decision's invariants.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from items_operator.observe import JobState, PodObservation
from items_operator.plan import Plan

from .test_decide_properties import perturb, perturbation
from .world import V1, World, spec

# A watched pass with no deadline may sleep until the resync: look this far ahead.
NO_DEADLINE_HORIZON = 900.0


def _decision(plan: Plan) -> tuple[Any, ...]:
    """What a pass decides, without what only the clock moves (condition timestamps, messages
    that count down)."""
    return (
        plan.status.get("phase"),
        plan.status.get("reason"),
        tuple(sorted((type(a).__name__, a.kind, getattr(a, "name", "")) for a in plan.actions)),
        tuple(e.reason for e in plan.events),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(perturbation, min_size=1, max_size=20),
    fraction=st.floats(0.0, 0.999),
)
def test_with_no_event_a_watched_decision_holds_until_its_deadline(
    steps: list[tuple[str, Any]], fraction: float
) -> None:
    world = World(spec=spec(V1, replicas=2))
    world.settle()
    for what, arg in steps:
        perturb(world, what, arg)
        world.step()
    plan = world.step()  # the pass that goes to sleep; its writes are in the world now
    assume(plan.watched)
    event(f"{plan.status['reason']}, deadline named: {plan.wake_after is not None}")
    now_decision = _decision(world.decide())
    horizon = plan.wake_after if plan.wake_after is not None else NO_DEADLINE_HORIZON
    # wake_after carries half a second past the deadline itself (decide._finish).
    world.tick(max(0.0, fraction * (horizon - 0.5)))
    assert _decision(world.decide()) == now_decision, (plan.status, horizon)


def test_an_unready_running_pod_is_polled_for_its_readyz() -> None:
    world = World(spec=spec(V1, replicas=2))
    world.settle()
    world.change(image="items:2")
    world.step()
    world.finish_jobs()
    world.step()
    world.controllers(ready=False, started_ago=1)
    plan = world.step()
    assert plan.status["reason"] == "RollingOut"
    assert not plan.watched  # /readyz may change with no event on the pod
    assert plan.wake_after is not None  # and the window's end is named besides


def test_a_pull_that_may_stick_names_its_deadline() -> None:
    world = World(spec=spec(V1, replicas=1))
    world.settle()
    world.change(image="items:2")
    world.step()
    world.finish_jobs()
    world.step()
    world.controllers(ready=False, waiting=("ErrImagePull",), message="pull: something odd")
    plan = world.step()
    assert plan.watched, plan.status
    assert plan.wake_after is not None
    assert timedelta(seconds=plan.wake_after) <= timedelta(seconds=121)


def _migration_pod_waiting(message: str) -> tuple[World, Plan]:
    world = World(spec=spec(V1, replicas=1))
    world.settle()
    world.change(image="items:2")
    world.step()
    [job] = [j for j in world.jobs.values() if j.state is JobState.ACTIVE]
    world.job_pods.append(
        PodObservation(
            name=f"{job.name}-pod",
            image=job.image,
            created_at=world.now,
            ready=False,
            deleting=False,
            job_name=job.name,
            waiting_reasons=("CreateContainerConfigError",),
            waiting_message=message,
        )
    )
    world.tick(10)
    plan = world.step()
    assert plan.status["reason"] == "Migrating"
    assert plan.watched
    return world, plan


def test_a_migration_pod_in_an_unknown_config_error_names_the_end_of_its_grace() -> None:
    world, plan = _migration_pod_waiting("the runtime said something new")
    assert plan.wake_after is not None
    assert 20 <= plan.wake_after <= 21  # created + 30 s grace
    world.tick(plan.wake_after)
    assert any(type(a).__name__ == "FailJob" for a in world.step().actions)


def test_a_config_error_the_kubelet_retries_names_no_deadline() -> None:
    _, plan = _migration_pod_waiting("failed to sync secret cache: timed out waiting")
    assert plan.wake_after is None  # it never fails by time: its own event ends the wait
