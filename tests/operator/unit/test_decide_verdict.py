"""The verdict's failure classes and learned window, driven through the simulated cluster:
certain failures roll back at once, the environment's holds, the window follows the history,
a startup probe's budget comes first (issue #14)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from items_operator.containers import ServiceContainer, Termination
from items_operator.decide import WAKE_MARGIN
from items_operator.window import LEARNED_WINDOW_LEAD, readiness_window

from .world import V1, V2, World, available_world

PULL_GONE = "rpc error: code = NotFound desc = failed to resolve reference: not found"
PULL_RATE_LIMITED = "unexpected status code 429 Too Many Requests"
PULL_UNAUTHORIZED = "failed to authorize: 401 Unauthorized"


def _image(world: World) -> str:
    assert world.deployment is not None
    return str(world.deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def _rolling_out_v2(**spec_fields: Any) -> World:
    world = available_world(**spec_fields)
    world.change(image=V2)
    world.settle(passes=1)
    assert _image(world) == V2
    return world


def _new(world: World, **fields: Any) -> None:
    world.pods = [
        replace(p, **fields) if p.release == world.serving_release else p for p in world.pods
    ]


def _last_history_reason(world: World) -> str:
    return str(world.status["history"][-1].get("reason"))


def test_an_image_that_cannot_be_pulled_rolls_back_at_once() -> None:
    world = _rolling_out_v2()
    world.controllers(ready=False, waiting=("ErrImagePull",), message=PULL_GONE, started_ago=1)
    world.step()
    assert world.status["reason"] == "RolledBack"
    assert _last_history_reason(world) == "ImagePullFailed"
    assert _image(world) == V1


def test_a_transient_pull_error_holds_and_resumes() -> None:
    world = _rolling_out_v2()
    for _ in range(5):
        world.tick(120)
        world.controllers(ready=False, waiting=("ImagePullBackOff",), message=PULL_RATE_LIMITED)
        plan = world.step()
        assert world.status["reason"] == "ImagePullTransient", world.status["message"]
        assert "failedRelease" not in world.status
        assert _image(world) == V2
    assert len(plan.events) == 0  # announced once, when the hold began
    # An older kubelet's bare back-off between two retries continues the hold (no flapping).
    world.controllers(
        ready=False, waiting=("ImagePullBackOff",), message=f'Back-off pulling "{V2}"'
    )
    plan = world.step()
    assert world.status["reason"] == "ImagePullTransient"
    assert plan.events == ()
    world.tick(2)
    world.controllers(ready=False, started_ago=1)
    world.step()
    assert world.status["reason"] == "RollingOut"
    world.controllers(ready=True)
    world.step()
    assert world.status["phase"] == "Available"
    assert world.status["lastGoodImage"] == V2


def test_a_pull_without_a_reason_counts_after_the_window() -> None:
    world = _rolling_out_v2(rollout={"readinessTimeoutSeconds": 60})
    bare = f'Back-off pulling image "{V2}"'
    world.controllers(ready=False, waiting=("ImagePullBackOff",), message=bare, started_ago=30)
    world.step()
    assert world.status["reason"] == "RollingOut"
    world.controllers(ready=False, waiting=("ImagePullBackOff",), message=bare, started_ago=60)
    world.step()
    assert world.status["reason"] == "RolledBack"
    assert _last_history_reason(world) == "ImagePullStuck"


def test_old_pods_failing_the_same_pull_is_the_environment() -> None:
    """The registry lost the credentials: a rescheduled old pod cannot pull its image either."""
    world = available_world(replicas=2)
    world.change(image=V2)
    world.settle(passes=1)
    world.controllers(
        ready=False, waiting=("ErrImagePull",), message=PULL_UNAUTHORIZED, old_ready=True
    )
    old = [p for p in world.pods if p.release != world.serving_release]
    world.pods = [
        replace(
            old[0],
            ready=False,
            started_at=None,
            waiting_reasons=("ErrImagePull",),
            waiting_message=PULL_UNAUTHORIZED,
        ),
        *[p for p in world.pods if p is not old[0]],
    ]
    world.step()
    assert world.status["reason"] == "DependencyUnavailable", world.status["message"]
    assert "so does the serving release's pod" in world.status["message"]
    assert "failedRelease" not in world.status
    assert _image(world) == V2


def test_the_same_exit_code_twice_rolls_back_before_the_back_off() -> None:
    world = _rolling_out_v2()
    world.controllers(ready=False, started_ago=1)
    runs = ServiceContainer(
        terminated=Termination("Error", 3, started_at=world.now),
        last_terminated=Termination("Error", 3),
    )
    _new(world, started_at=None, container=runs, restart_count=1)
    world.step()
    assert world.status["reason"] == "RolledBack"
    assert _last_history_reason(world) == "RepeatedExitCode"
    assert "code 3" in world.status["message"]


def test_oom_killed_before_ready_rolls_back_at_once() -> None:
    world = _rolling_out_v2()
    world.controllers(ready=False, started_ago=1)
    run = Termination("OOMKilled", 137, started_at=world.now - timedelta(seconds=4))
    _new(
        world,
        container=ServiceContainer(last_terminated=run),
        restart_count=1,
        ready_changed_at=world.now - timedelta(seconds=6),
    )
    world.step()
    assert world.status["reason"] == "RolledBack"
    assert _last_history_reason(world) == "OOMKilledAtStart"


def test_a_schema_behind_the_image_after_its_migration_rolls_back_at_once() -> None:
    world = _rolling_out_v2()
    world.controllers(ready=False, started_ago=2)
    _new(
        world,
        readiness_checks={
            "database": "ok",
            "schema": "behind: database at 0003, this image needs 0004",
        },
    )
    world.step()
    assert world.status["reason"] == "RolledBack"
    assert _last_history_reason(world) == "SchemaBehind"


def test_a_missing_secret_holds_and_a_missing_key_is_the_release() -> None:
    world = _rolling_out_v2()
    world.controllers(
        ready=False,
        waiting=("CreateContainerConfigError",),
        message='secret "shop-extra" not found',
    )
    world.tick(600)
    world.step()
    assert world.status["reason"] == "ConfigNotFound"
    assert world.status["phase"] == "RollingOut"
    assert "failedRelease" not in world.status
    world.controllers(
        ready=False,
        waiting=("CreateContainerConfigError",),
        message="couldn't find key token in Secret items/shop-extra",
    )
    world.step()
    assert world.status["reason"] == "RolledBack"
    assert _last_history_reason(world) == "ContainerConfigError"


def test_time_to_ready_is_recorded_and_learned() -> None:
    world = _rolling_out_v2()
    world.controllers(ready=True, started_ago=7)
    _new(world, ready_changed_at=world.now - timedelta(seconds=1))  # ready 6 s after start
    world.step()
    assert world.status["phase"] == "Available"
    entry = world.status["history"][-1]
    assert entry["outcome"] == "Available"
    assert entry["timeToReadySeconds"] == 6
    assert readiness_window(None, world.status["history"]) == timedelta(seconds=20)  # 3x6, floor


def test_the_learned_window_judges_a_fast_service_sooner() -> None:
    world = _rolling_out_v2()  # the world's pods are ready at once: learned window 20 s
    world.controllers(ready=False, started_ago=18)
    world.step()
    assert world.status["reason"] == "RollingOut"
    world.controllers(ready=False, started_ago=21)
    world.step()
    assert world.status["reason"] == "RolledBack"
    assert "not ready within its 20s window" in world.status["message"]


@pytest.mark.parametrize(
    ("rollout", "window", "lead"),
    [
        ({}, 20, LEARNED_WINDOW_LEAD.total_seconds()),  # learned: the rollback under way by 20 s
        ({"readinessTimeoutSeconds": 30}, 30, 0.0),  # the person's window: granted whole
    ],
)
def test_a_never_ready_pod_is_judged_when_its_window_ends_not_after(
    rollout: dict[str, Any], window: int, lead: float
) -> None:
    """The pass sleeps until the verdict is due (a learned window's LEARNED_WINDOW_LEAD before
    its end, a spec window's at its end; plus WAKE_MARGIN) and the pod fails there, not at
    +0.5 or +1 s."""
    world = _rolling_out_v2(rollout=rollout)
    world.controllers(ready=False, started_ago=window - 8)
    plan = world.step()
    assert world.status["reason"] == "RollingOut"
    assert plan.wake_after == pytest.approx(8 - lead + WAKE_MARGIN)
    world.controllers(ready=False, started_ago=window - lead - 0.01)
    world.step()
    assert world.status["reason"] == "RollingOut"
    world.controllers(ready=False, started_ago=window - lead)
    world.step()
    assert world.status["reason"] == "RolledBack"
    assert f"not ready within its {window}s window" in world.status["message"]


def test_a_pod_whose_server_has_not_answered_is_still_starting() -> None:
    """A learned window judges a server that is up and says no; one that has not answered
    /readyz at all (not listening, or starved on a busy node) gets the ceiling from its start."""
    world = _rolling_out_v2()  # learned window 20 s
    for started_ago in (21, 60, 119 - 0.01):
        world.controllers(ready=False, started_ago=started_ago, answered_ago=None)
        world.step()
        assert world.status["reason"] == "RollingOut", started_ago
    world.controllers(ready=False, started_ago=119, answered_ago=None)
    world.step()
    assert world.status["reason"] == "RolledBack"
    assert "no answer from /readyz within 120s of its start" in world.status["message"]


def test_a_late_first_answer_gets_the_learned_window_from_it() -> None:
    world = _rolling_out_v2()
    # Answered first 25 s after its start, past its 20 s window: judged 20 s after that answer
    # (less the learned window's lead), at 44 s.
    for started_ago, reason in ((30, "RollingOut"), (43.99, "RollingOut"), (44, "RolledBack")):
        world.controllers(ready=False, started_ago=started_ago, answered_ago=started_ago - 25)
        world.step()
        assert world.status["reason"] == reason, started_ago
    assert "20s window from its first /readyz answer" in world.status["message"]


def test_an_answer_within_the_window_keeps_the_learned_verdict() -> None:
    world = _rolling_out_v2()
    world.controllers(ready=False, started_ago=19, answered_ago=1)  # first answered at 18 s
    _new(world, readiness_checks={"database": "unreachable: no answer within 1.0s"})
    world.step()  # the old pods are ready: the database works, the release does not reach it
    assert world.status["reason"] == "RolledBack"
    said = "not ready within its 20s window; /readyz says database: unreachable: no answer"
    assert said in world.status["message"]


def test_a_pod_whose_server_said_ready_gets_a_fresh_window_from_it() -> None:
    """A blip between two probes: the server answered the operator's read ready (200) 12 s
    after its start, then failed the kubelet's next probe, so the kubelet never saw it ready.
    It lost readiness as much as a pod the kubelet saw ready: a fresh window from that answer."""
    for window_args, window in (({}, 20), ({"rollout": {"readinessTimeoutSeconds": 30}}, 30)):
        lead = 1 if not window_args else 0
        due = 12 + window - lead
        for started_ago, reason in ((due - 0.01, "RollingOut"), (due, "RolledBack")):
            world = _rolling_out_v2(**window_args)
            world.controllers(ready=False, started_ago=started_ago, answered_ago=started_ago - 3)
            _new(world, ready_answered_at=world.now - timedelta(seconds=started_ago - 12))
            world.step()
            assert world.status["reason"] == reason, (window, started_ago)
        assert (
            f"not ready within its {window}s window from its first ready answer"
            in (world.status["message"])
        )
    # A first ready answer read after the pod's window (an operator restarted late) moves
    # nothing: judged at the window from its start.
    world = _rolling_out_v2()
    world.controllers(ready=False, started_ago=25, answered_ago=16)
    _new(world, ready_answered_at=world.now - timedelta(seconds=0.5))
    world.step()
    assert world.status["reason"] == "RolledBack"


def test_the_spec_s_window_judges_a_silent_pod_at_its_end() -> None:
    world = _rolling_out_v2(rollout={"readinessTimeoutSeconds": 30})
    world.controllers(ready=False, started_ago=30, answered_ago=None)
    world.step()
    assert world.status["reason"] == "RolledBack"
    assert "not ready within its 30s window" in world.status["message"]


def test_the_spec_s_window_wins_over_the_learned_one() -> None:
    world = _rolling_out_v2(rollout={"readinessTimeoutSeconds": 100})
    world.controllers(ready=False, started_ago=90)
    world.step()
    assert world.status["reason"] == "RollingOut"


def test_no_history_is_the_old_default() -> None:
    assert readiness_window(None, []) == timedelta(seconds=120)
    slow = [{"outcome": "Available", "timeToReadySeconds": 100}]
    assert readiness_window(None, slow) == timedelta(seconds=120)  # the ceiling
    mixed = [
        {"outcome": "Available", "timeToReadySeconds": 9},
        {"outcome": "RolledBack", "timeToReadySeconds": 99},
        {"outcome": "Available", "timeToReadySeconds": 12},
    ]
    assert readiness_window(None, mixed) == timedelta(seconds=36)
    assert readiness_window(30, mixed) == timedelta(seconds=30)


def _good(*seconds: int) -> list[dict[str, object]]:
    return [{"outcome": "Available", "timeToReadySeconds": s} for s in seconds]


def test_an_old_slow_start_does_not_stretch_the_window_a_new_one_does() -> None:
    # A first install on a busy node (13 s), then the service's usual 2 s: judged on the 2 s.
    assert readiness_window(None, _good(13, 2)) == timedelta(seconds=20)
    assert readiness_window(None, _good(13, 2, 2)) == timedelta(seconds=20)
    assert readiness_window(None, _good(2, 40, 2)) == timedelta(seconds=20)  # one blip ignored
    # The newest release is slower than those before it: believed at once.
    assert readiness_window(None, _good(2, 2, 13)) == timedelta(seconds=39)
    # Slow releases are the service's own pace, even when the newest was fast.
    assert readiness_window(None, _good(30, 30, 2)) == timedelta(seconds=90)


def test_no_startup_probe_unless_asked_for() -> None:
    world = available_world()
    container = world.deployment["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert "startupProbe" not in container  # existing releases keep their template and hash


def test_a_pod_under_its_startup_probe_gets_the_probe_s_budget_first() -> None:
    probe = {"startup": {"periodSeconds": 10, "failureThreshold": 9}}  # 90 s budget
    world = _rolling_out_v2(probes=probe)
    container = world.deployment["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for started_ago, reason in ((60, "RollingOut"), (105, "RollingOut"), (111, "RolledBack")):
        world.controllers(ready=False, started_ago=started_ago)
        _new(world, container=ServiceContainer(started=False, startup_budget=timedelta(seconds=90)))
        world.step()
        assert world.status["reason"] == reason, (started_ago, world.status["message"])
    assert "window after its startup probe's 90s budget" in world.status["message"]
