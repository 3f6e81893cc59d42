"""Invariants of the decision layer over random histories of a real cluster's perturbations.

Hypothesis drives the simulated World (world.py) through spec edits, controller and kubelet
reports, Job outcomes, outages, deletions, refused writes and the passing of time; after every
pass the rules of docs/operator.md ("Invariants") must hold.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from items_operator.analysis import RequestSample
from items_operator.constants import LABEL_RELEASE
from items_operator.observe import JobState, SecretState
from items_operator.plan import Apply, Create, Plan
from items_operator.policy import Reason
from items_operator.status import latest_entry

from .world import V1, V2, V3, World, spec

IMAGES = (V1, V2, V3)
ENVS: tuple[list[dict[str, str]], ...] = ([], [{"name": "FEATURE", "value": "on"}])

perturbation = st.one_of(
    st.tuples(st.just("image"), st.sampled_from(IMAGES)),
    st.tuples(st.just("env"), st.sampled_from(range(len(ENVS)))),
    st.tuples(st.just("replicas"), st.integers(0, 3)),
    st.tuples(st.just("paused"), st.booleans()),
    st.tuples(
        st.just("pods"),
        st.tuples(
            st.booleans(),
            st.sampled_from(((), ("CrashLoopBackOff",), ("ImagePullBackOff",))),
            st.integers(1, 400),
            st.booleans(),
        ),
    ),
    st.tuples(st.just("outage"), st.booleans()),
    st.tuples(st.just("jobs"), st.sampled_from((JobState.SUCCEEDED, JobState.FAILED))),
    st.tuples(st.just("tick"), st.integers(1, 300)),
    st.tuples(st.just("delete-deployment"), st.none()),
    st.tuples(st.just("secret"), st.sampled_from(tuple(SecretState))),
    st.tuples(st.just("refuse-service"), st.booleans()),
    st.tuples(st.just("analysis"), st.booleans()),
    st.tuples(
        st.just("traffic"),
        st.tuples(st.integers(0, 400), st.integers(0, 400), st.integers(0, 400)),
    ),
)


def perturb(world: World, what: str, arg: Any) -> None:
    match what:
        case "image":
            world.change(image=arg)
        case "env":
            world.change(env=ENVS[arg])
        case "replicas":
            world.change(replicas=arg)
        case "paused":
            world.change(paused=arg)
        case "pods":
            ready, waiting, started_ago, old_ready = arg
            world.controllers(
                ready=ready and not waiting,
                waiting=waiting,
                started_ago=started_ago,
                old_ready=old_ready,
            )
        case "outage":
            checks = {"database": "unreachable: OperationalError"} if arg else {}
            world.pods = [
                replace(p, ready=False if arg else p.ready, readiness_checks=checks)
                for p in world.pods
            ]
        case "jobs":
            world.finish_jobs(arg)
        case "tick":
            world.tick(arg)
        case "delete-deployment":
            world.deployment = None
            world.pods = []
        case "secret":
            world.secret = arg
        case "refuse-service":
            world.refuse = frozenset({"Service"}) if arg else frozenset()
        case "analysis":
            world.change(rollout={"analysis": {"durationSeconds": 30}} if arg else {})
        case "traffic":  # what the canary analysis reads: new pods fail `errors` of `requests`
            requests, errors, old_requests = arg
            new = RequestSample(requests, min(errors, requests), ((0.01, requests),))
            old = RequestSample(old_requests, 0, ((0.01, old_requests),))
            world.pods = [
                replace(p, requests=new if p.release == world.serving_release else old)
                for p in world.pods
            ]


def _template_release(obj: dict[str, Any]) -> str:
    return str(obj["spec"]["template"]["metadata"]["labels"][LABEL_RELEASE])


def check_invariants(world: World, before: dict[str, Any], plan: Plan) -> None:
    objects = [(a.kind, getattr(a, "name", "")) for a in plan.actions]
    assert len(objects) == len(set(objects)), f"two writes to one object: {objects}"

    serving_before = world.serving_release
    new_jobs = [a for a in plan.actions if isinstance(a, Create) and a.kind == "Job"]
    active = [j for j in world.jobs.values() if j.state is JobState.ACTIVE]
    assert len(active) + len(new_jobs) <= 1, "never two migrators"

    for action in plan.actions:
        if not (isinstance(action, Apply) and action.kind == "Deployment"):
            continue
        moved_to = _template_release(action.obj)
        if moved_to == serving_before or moved_to == "legacy":
            continue
        keys = {r.release: r.migration_key for r in world.observed().revisions}
        keys.update(
            (
                a.obj["metadata"]["labels"][LABEL_RELEASE],
                a.obj["metadata"]["labels"]["items.platform.dev/migration-key"],
            )
            for a in plan.actions
            if isinstance(a, Create) and a.kind == "ControllerRevision"
        )
        target_key, serving_key = keys.get(moved_to), keys.get(serving_before or "")
        assert target_key is not None, "a Deployment serves a release that is not stored"
        migrated = any(
            j.migration_key == target_key and j.state is JobState.SUCCEEDED
            for j in world.jobs.values()
        )
        rollback = moved_to == before.get("lastGoodRelease")
        requested = plan.status.get("reason") == Reason.ROLLBACK_REQUESTED
        assert rollback or requested or migrated or (target_key == serving_key), (
            "the serving template changed before the release's migration succeeded"
        )
        assert not (
            serving_before == before.get("lastGoodRelease")
            and rollback is False
            and moved_to != plan.status.get("targetRelease")
            and not requested
        ), "moved away from the proven release to something other than the spec's"

    proven = plan.status.get("lastGoodRelease")
    if (
        proven is not None
        and proven != before.get("lastGoodRelease")
        and world.spec.rollout.analysis is not None
        and world.rollback_to is None
    ):
        entry = latest_entry(plan.status.get("history") or [], proven)
        assert entry.get("analysis"), f"proven with an analysis set but no outcome: {entry}"

    if plan.status.get("reason") == Reason.DEPENDENCY_UNAVAILABLE:
        assert plan.status.get("failedRelease") in (None, before.get("failedRelease"))
    if before.get("lastGoodRelease") == serving_before and plan.status.get("reason") in (
        Reason.ROLLED_BACK,
    ):
        assert plan.status.get("failedRelease") != serving_before, "rolled back a proven release"


def _settled() -> World:
    world = World(spec=spec(V1, replicas=2))
    world.settle()
    return world


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(perturbation, min_size=1, max_size=25))
def test_invariants_hold_after_every_pass(steps: list[tuple[str, Any]]) -> None:
    _check_every_pass(_settled(), steps)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(perturbation, min_size=1, max_size=12))
def test_invariants_hold_from_a_canary_under_analysis(steps: list[tuple[str, Any]]) -> None:
    """The same rules from the middle of a canary analysis (V2 migrated, its first pod ready
    beside the old ones), where random steps from a settled world rarely get."""
    world = World(spec=spec(V1, replicas=2, rollout={"analysis": {"durationSeconds": 30}}))
    world.settle()
    world.change(image=V2)
    world.settle(passes=1)
    world.controllers(keep_old=True)
    world.step()
    _check_every_pass(world, steps)


def _check_every_pass(world: World, steps: list[tuple[str, Any]]) -> None:
    for what, arg in steps:
        perturb(world, what, arg)
        before = dict(world.status)
        plan = world.decide()
        check_invariants(world, before, plan)
        world.apply(plan)
        world.status = plan.status


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(perturbation, min_size=1, max_size=15))
def test_a_second_pass_after_applying_a_plan_writes_nothing(steps: list[tuple[str, Any]]) -> None:
    world = _settled()
    for what, arg in steps:
        perturb(world, what, arg)
        world.step()
    world.refuse = frozenset()
    world.step()
    again = world.decide()
    assert [a for a in again.actions if a.kind != "Job"] == [], again.actions
    assert again.events == ()
    assert again.status == world.status


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    image=st.sampled_from(IMAGES), env=st.sampled_from(range(len(ENVS))), replicas=st.integers(1, 3)
)
def test_a_steady_state_yields_an_empty_plan(image: str, env: int, replicas: int) -> None:
    world = World(spec=spec(image, replicas=replicas, env=ENVS[env]))
    world.settle()
    plan = world.decide()
    assert plan.actions == ()
    assert plan.events == ()
    assert plan.status == world.status
