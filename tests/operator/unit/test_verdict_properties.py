"""Properties of the verdict's failure classes and window (issue #14), over random histories.

- a transient pull error never causes a rollback, however long it lasts;
- a pod progressing under its startup probe is never rolled back before the probe's budget;
- a failure the serving release's own pods show too is never blamed on the release;
- the learned window stays within its floor and ceiling and never beats the spec's;
- a learned window judges a pod that answered /readyz within it exactly when it ends; one
  whose server had not answered by then never before the ceiling from its start, a silent
  one at the ceiling at the latest; the spec's window is every pod's, answered or not;
- a transient match wins over a permanent one, and the image's name never changes a class.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from items_operator.containers import ServiceContainer, Termination
from items_operator.failure_messages import Healing, pull_healing
from items_operator.observe import DeploymentObservation, PodObservation
from items_operator.policy import Reason
from items_operator.verdict import Verdict, VerdictKind, judge
from items_operator.window import (
    LEARNED_WINDOW_LEAD,
    WINDOW_CEILING,
    WINDOW_FLOOR,
    readiness_window,
    silent_window,
    verdict_lead,
)

from .test_decide_properties import check_invariants, perturb, perturbation
from .world import V1, V2, World, available_world, spec

TRANSIENT_PULLS = (
    "unexpected status code 429 Too Many Requests",
    "toomanyrequests: You have reached your pull rate limit",
    "unexpected status from HEAD request: 503 Service Unavailable",
    "received unexpected HTTP status: 502 Bad Gateway",
    "dial tcp 10.0.0.5:443: i/o timeout",
    "dial tcp 10.0.0.5:443: connect: connection refused",
    "read: connection reset by peer",
    "net/http: TLS handshake timeout",
)
PERMANENT_PULLS = (
    "manifest unknown",
    "not found",
    "401 Unauthorized",
    "pull access denied",
    "invalid reference format",
)
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rolling_out(replicas: int = 1, **spec_fields: Any) -> World:
    world = available_world(replicas=replicas, **spec_fields)
    world.change(image=V2)
    world.settle(passes=1)
    return world


def _never_rolled_back(world: World) -> None:
    assert world.status["reason"] not in ("RolledBack", "RolloutFailed"), world.status["message"]
    assert "failedRelease" not in world.status
    assert world.serving_release == world.status["targetRelease"]


transient_steps = st.lists(
    st.tuples(
        st.sampled_from(("ErrImagePull", "ImagePullBackOff")),
        st.just("bare") | st.sampled_from(TRANSIENT_PULLS),  # bare: an older kubelet
        st.integers(0, 400),  # seconds that pass before the kubelet reports it
        st.booleans(),  # the old pods are ready
    ),
    min_size=1,
    max_size=12,
)


@PROPERTY
@given(first=st.sampled_from(TRANSIENT_PULLS), steps=transient_steps, replicas=st.integers(1, 3))
def test_a_transient_pull_error_never_causes_a_rollback(
    first: str, steps: list[tuple[str, str, int, bool]], replicas: int
) -> None:
    world = _rolling_out(replicas)
    born = world.now  # the new pods stay the same pods: their age grows with every tick
    world.controllers(ready=False, waiting=("ErrImagePull",), message=first)
    world.step()
    for reason, message, seconds, old_ready in steps:
        world.tick(seconds)
        text = f'Back-off pulling image "{V2}"' if message == "bare" else message
        world.controllers(ready=False, waiting=(reason,), message=text, old_ready=old_ready)
        world.pods = [
            replace(p, created_at=born) if p.release == world.serving_release else p
            for p in world.pods
        ]
        world.step()
        _never_rolled_back(world)


@PROPERTY
@given(
    period=st.integers(1, 15),
    threshold=st.integers(1, 30),
    starts=st.lists(st.floats(0, 1), min_size=1, max_size=8),
    started_flag=st.sampled_from((False, None, True)),
)
def test_a_pod_under_its_startup_probe_is_never_rolled_back_before_its_budget(
    period: int, threshold: int, starts: list[float], started_flag: bool | None
) -> None:
    startup = {"periodSeconds": period, "failureThreshold": threshold}
    world = _rolling_out(probes={"startup": startup})
    budget = timedelta(seconds=period * threshold)
    for share in sorted(starts):  # the container runs longer and longer, never ready
        started_ago = share * budget.total_seconds()
        world.controllers(ready=False, started_ago=started_ago)
        container = ServiceContainer(started=started_flag, startup_budget=budget)
        world.pods = [
            replace(p, container=container) if p.release == world.serving_release else p
            for p in world.pods
        ]
        world.step()
        _never_rolled_back(world)


def _failing(pod: PodObservation, kind: str, code: int) -> PodObservation:
    """The pod shows a failure that, alone, would roll the release back at once."""
    ran = Termination("Error", code, started_at=pod.created_at)
    match kind:
        case "pull":
            return replace(
                pod,
                ready=False,
                started_at=None,
                waiting_reasons=("ErrImagePull",),
                waiting_message="manifest unknown",
            )
        case "crash":
            return replace(
                pod,
                ready=False,
                started_at=None,
                waiting_reasons=("CrashLoopBackOff",),
                container=ServiceContainer(last_terminated=ran),
                restart_count=3,
            )
        case "exit":
            return replace(
                pod,
                ready=False,
                started_at=None,
                restart_count=1,
                container=ServiceContainer(terminated=ran, last_terminated=ran),
            )
        case "oom":
            oom = Termination("OOMKilled", 137, started_at=pod.created_at)
            return replace(
                pod,
                ready=False,
                ready_changed_at=pod.created_at,
                restart_count=1,
                container=ServiceContainer(last_terminated=oom),
            )
        case _:
            return replace(
                pod,
                ready=False,
                started_at=None,
                waiting_reasons=("CreateContainerConfigError",),
                waiting_message="couldn't find key token in Secret items/shared",
            )


@PROPERTY
@given(
    kind=st.sampled_from(("pull", "crash", "exit", "oom", "key")),
    code=st.integers(1, 255),
    old_ready=st.lists(st.booleans(), min_size=2, max_size=3),
    seconds=st.lists(st.integers(0, 30), min_size=1, max_size=4),
)
def test_old_pods_failing_the_same_way_is_never_blamed_on_the_release(
    kind: str, code: int, old_ready: list[bool], seconds: list[int]
) -> None:
    world = available_world(replicas=len(old_ready))
    world.change(image=V2)
    world.settle(passes=1)
    for tick in seconds:
        world.tick(tick)
        world.controllers(ready=False, keep_old=True)
        new = [p for p in world.pods if p.release == world.serving_release]
        old = [p for p in world.pods if p.release != world.serving_release]
        # One old pod (rescheduled, restarted) shows the very failure; the others as drawn.
        old = [
            _failing(old[0], kind, code),
            *(replace(p, ready=r) for p, r in zip(old[1:], old_ready[1:], strict=False)),
        ]
        world.pods = [*old, *(_failing(p, kind, code) for p in new)]
        world.step()
        _never_rolled_back(world)
        assert world.status["reason"] == "DependencyUnavailable", world.status["message"]


@PROPERTY
@given(
    times=st.lists(
        st.tuples(
            st.sampled_from(("Available", "RolledBack", "Superseded")), st.integers(0, 10_000)
        ),
        max_size=12,
    ),
    spec_seconds=st.none() | st.integers(5, 3600),
)
def test_the_learned_window_stays_within_its_bounds(
    times: list[tuple[str, int]], spec_seconds: int | None
) -> None:
    history: list[dict[str, Any]] = [{"outcome": o, "timeToReadySeconds": t} for o, t in times]
    window = readiness_window(spec_seconds, history)
    if spec_seconds is not None:
        assert window == timedelta(seconds=spec_seconds)
    else:
        assert WINDOW_FLOOR <= window <= WINDOW_CEILING
        slower = [{**e, "timeToReadySeconds": e["timeToReadySeconds"] + 5} for e in history]
        assert readiness_window(None, slower) >= window  # slower history, never a shorter wait


T0 = datetime(2026, 12, 3, 20, 0, tzinfo=UTC)
ROLLING = DeploymentObservation(
    image=V2,
    desired_hash="h",
    generation=2,
    observed_generation=2,
    replicas=1,
    status_replicas=2,
    updated_replicas=1,
    ready_replicas=1,
    available_replicas=1,
    progress_deadline_exceeded=False,
    release="new",
)
OLD_READY = PodObservation(
    "shop-old", V1, T0, ready=True, deleting=False, release="old", started_at=T0, uid="o"
)


@PROPERTY
@given(
    window_seconds=st.integers(20, 120),
    spec_window=st.booleans(),
    answered_after=st.none() | st.floats(0, 200),
    seconds=st.floats(0, 260),
)
def test_the_window_judges_an_answering_server_as_promised_and_a_silent_one_by_the_ceiling(
    window_seconds: int, spec_window: bool, answered_after: float | None, seconds: float
) -> None:
    spec_seconds = window_seconds if spec_window else None
    now = T0 + timedelta(seconds=seconds)
    answered = None if answered_after is None else T0 + timedelta(seconds=answered_after)
    if answered is not None and answered > now:
        answered = None  # not seen yet by the pass at `now`
    window, lead = timedelta(seconds=window_seconds), verdict_lead(spec_seconds)
    verdict = _judge_unready_new_pod(spec_seconds, window, now, answered_at=answered)
    failed = verdict.kind is VerdictKind.FAILED
    due = T0 + window - lead
    if spec_window:  # the person's window: every pod's, answered or not
        assert failed == (now >= due)
        return
    assert lead == LEARNED_WINDOW_LEAD
    ceiling = T0 + WINDOW_CEILING - lead
    if answered is not None and answered <= due:  # up by the window's end: as promised
        assert failed == (now >= due)
    elif now < ceiling and (answered is None or now < answered + window - lead):
        assert not failed, verdict.failure  # silent, or within the window from its answer
    if now >= ceiling:
        assert failed  # nobody waits past the ceiling
    if not failed:
        assert verdict.deadline is not None
        assert verdict.deadline <= ceiling  # the pass is awake when it is due


@PROPERTY
@given(
    window_seconds=st.integers(20, 120),
    spec_window=st.booleans(),
    ready_after=st.floats(0, 300),
    seconds=st.floats(0, 400),
)
def test_a_pod_whose_server_said_ready_is_judged_a_window_after_it(
    window_seconds: int, spec_window: bool, ready_after: float, seconds: float
) -> None:
    """An unready pod whose /readyz answered the operator ready once within its window (a
    blip the kubelet's probe fell into) is failed exactly a window after that answer, under
    either window; an answer after its window changes nothing (at most two windows)."""
    assume(ready_after <= seconds)
    spec_seconds = window_seconds if spec_window else None
    now, ready = T0 + timedelta(seconds=seconds), T0 + timedelta(seconds=ready_after)
    window, lead = timedelta(seconds=window_seconds), verdict_lead(spec_seconds)
    verdict = _judge_unready_new_pod(
        spec_seconds, window, now, answered_at=T0, ready_answered_at=ready
    )
    start = ready if ready < T0 + window else T0
    assert (verdict.kind is VerdictKind.FAILED) == (now >= start + window - lead)


def _judge_unready_new_pod(
    spec_seconds: int | None,
    window: timedelta,
    now: datetime,
    *,
    answered_at: datetime | None,
    ready_answered_at: datetime | None = None,
) -> Verdict:
    """The verdict on one unready new pod started at T0, beside a ready old one."""
    pod = PodObservation(
        "shop-new",
        V2,
        T0,
        ready=False,
        deleting=False,
        release="new",
        started_at=T0,
        uid="n",
        ready_changed_at=T0,
        answered_at=answered_at,
        ready_answered_at=ready_answered_at,
    )
    return judge(
        release="new",
        deployment=ROLLING,
        pods=[OLD_READY, pod],
        now=now,
        window=window,
        floor=None,
        lead=verdict_lead(spec_seconds),
        silent_window=silent_window(spec_seconds),
    )


reference = st.from_regex(r"[a-z0-9.-]{1,12}/[a-z0-9-]{1,12}:[A-Za-z0-9._-]{1,10}", fullmatch=True)


@PROPERTY
@given(
    transient=st.sampled_from(TRANSIENT_PULLS),
    permanent=st.sampled_from(PERMANENT_PULLS),
    image=reference,
    order=st.booleans(),
)
def test_transient_wins_and_the_image_name_never_changes_the_class(
    transient: str, permanent: str, image: str, order: bool
) -> None:
    both = f"{transient}: {permanent}" if order else f"{permanent}: {transient}"
    assert pull_healing("ErrImagePull", both, image) is Healing.TRANSIENT
    for message in (transient, permanent, "Back-off pulling image"):
        plain = pull_healing("ErrImagePull", message)
        named = f'failed to pull image "{image}": {message} (pulling {image})'
        assert pull_healing("ErrImagePull", named, image) is plain


KUBELET_STATES = (
    ("ErrImagePull", "dial tcp 10.0.0.5:443: i/o timeout"),
    ("ImagePullBackOff", "Back-off pulling image"),
    ("ErrImagePull", "manifest unknown"),
    ("CreateContainerConfigError", 'secret "shop-extra" not found'),
    ("CreateContainerConfigError", "couldn't find key token in Secret items/shop-extra"),
    (
        "CreateContainerConfigError",
        "failed to sync secret cache: timed out waiting for the condition",
    ),
)
HOLDS = (Reason.DEPENDENCY_UNAVAILABLE, Reason.IMAGE_PULL_TRANSIENT, Reason.CONFIG_NOT_FOUND)
kubelet = st.tuples(
    st.just("kubelet"),
    st.tuples(st.sampled_from(KUBELET_STATES), st.integers(1, 400), st.booleans()),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(perturbation | kubelet, min_size=1, max_size=25))
def test_the_invariants_hold_with_the_kubelet_s_failure_classes(
    steps: list[tuple[str, Any]],
) -> None:
    """The general invariants (test_decide_properties.py) with the new classes in the mix;
    a hold for the environment never blocks a release."""
    world = World(spec=spec(V1, replicas=2))
    world.settle()
    for what, arg in steps:
        if what == "kubelet":
            (reason, message), started_ago, old_ready = arg
            world.controllers(
                ready=False,
                waiting=(reason,),
                message=message,
                started_ago=started_ago,
                old_ready=old_ready,
            )
        else:
            perturb(world, what, arg)
        before = dict(world.status)
        plan = world.decide()
        check_invariants(world, before, plan)
        if plan.status.get("reason") in HOLDS:
            assert plan.status.get("failedRelease") in (None, before.get("failedRelease"))
        world.apply(plan)
        world.status = plan.status
