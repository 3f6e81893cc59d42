"""Named deadlines and polls of the time-driven wake-ups (pacing.next_sleep), by example: a pass
that read a /readyz body polls, a pull or a config error that may still fail by time names
when. The properties over random histories are in test_wake_properties_strong.py.
"""

from __future__ import annotations

from datetime import timedelta

from items_operator.observe import JobState, PodObservation
from items_operator.plan import Plan

from .world import V1, World, spec


def _migrated(world: World, image: str) -> None:
    """The spec moves to `image` and its migration succeeds: the rollout starts."""
    world.change(image=image)
    world.step()
    world.finish_jobs()
    world.step()


def test_an_unready_running_pod_is_polled_for_its_readyz() -> None:
    world = World(spec=spec(V1, replicas=2))
    world.settle()
    _migrated(world, "items:2")
    world.controllers(ready=False, started_ago=1)
    plan = world.step()
    assert plan.status["reason"] == "RollingOut"
    assert not plan.watched  # /readyz may change with no event on the pod
    assert plan.wake_after is not None  # and the window's end is named besides


def test_a_pull_that_may_stick_names_its_deadline() -> None:
    world = World(spec=spec(V1, replicas=1))
    world.settle()
    _migrated(world, "items:2")
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
