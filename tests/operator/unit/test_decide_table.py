"""The decision table, one row per situation a real cluster produces (issue list of #10).

Each case drives the simulated World (world.py) the way the API server, the controllers and the
kubelet would, and asserts what the operator wrote, announced and reported.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from items_operator.observe import JobState, PodPhase, SecretState
from items_operator.policy import TABLE, Reason

from .world import V1, V2, V3, World, available_world, spec


def _env(world: World) -> list[str]:
    assert world.deployment is not None
    container = world.deployment["spec"]["template"]["spec"]["containers"][0]
    return [f"{e['name']}={e.get('value')}" for e in container["env"] if "value" in e]


def _image(world: World) -> str:
    assert world.deployment is not None
    return str(world.deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def _conditions(world: World) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in world.status["conditions"]}


def _release_v2_with_env(world: World) -> None:
    world.change(image=V2, env=[{"name": "FEATURE", "value": "on"}])


def test_image_and_env_change_waits_for_the_migration_then_rolls_back_whole() -> None:
    world = available_world(replicas=2)
    template_before = world.deployment["spec"]["template"]  # type: ignore[index]
    _release_v2_with_env(world)
    world.step()
    assert world.status["phase"] == "Migrating"
    # The gate holds for the whole release: neither image nor env of serving pods moved.
    assert world.deployment["spec"]["template"] == template_before  # type: ignore[index]
    world.controllers()
    world.step()
    assert world.deployment["spec"]["template"] == template_before  # type: ignore[index]
    world.finish_jobs()
    world.step()
    assert _image(world) == V2
    assert "FEATURE=on" in _env(world)
    world.controllers(ready=False, started_ago=121)
    plan = world.step()
    assert world.status["reason"] == "RolledBack"
    assert _image(world) == V1
    assert "FEATURE=on" not in _env(world)
    assert world.deployment["spec"]["template"] == template_before  # type: ignore[index]
    assert [e.reason for e in plan.events] == ["RolledBack"]
    assert world.status["failedImage"] == V2
    assert world.status["history"][-1]["outcome"] == "RolledBack"


def test_env_only_change_is_a_release_without_a_migration() -> None:
    world = available_world()
    world.change(env=[{"name": "FEATURE", "value": "on"}])
    plan = world.pass_once()  # stores the release first: what cannot be rolled back to never
    assert "FEATURE=on" not in _env(world)  # goes live
    assert [a.kind for a in plan.actions] == ["ControllerRevision"]
    world.pass_once()
    assert world.status["reason"] == "RollingOut"
    assert not [j for j in world.jobs.values() if j.state is JobState.ACTIVE]
    assert "FEATURE=on" in _env(world)
    assert world.status["targetRevision"] == 2


def test_new_database_target_is_migrated_before_pods_use_it() -> None:
    world = available_world()
    jobs_before = set(world.jobs)
    world.secret_digest = "0f0f0f0f0f0f0f0f"  # the Secret now holds another URL
    world.step()
    assert world.status["phase"] == "Migrating"
    assert set(world.jobs) - jobs_before
    assert world.deployment["status"]["observedGeneration"] == 1  # type: ignore[index]


def test_replicas_are_not_a_release() -> None:
    world = available_world(replicas=2)
    template_before = world.deployment["spec"]["template"]  # type: ignore[index]
    jobs_before = set(world.jobs)
    world.change(replicas=3)
    world.step()
    assert world.status["targetRevision"] == 1
    assert world.deployment["spec"]["replicas"] == 3  # type: ignore[index]
    assert world.deployment["spec"]["template"] == template_before  # type: ignore[index]
    assert set(world.jobs) == jobs_before


def test_database_outage_during_a_good_rollout_holds_and_never_blocks() -> None:
    world = available_world(replicas=2)
    world.change(image=V2)
    world.settle(passes=1)
    assert _image(world) == V2
    # The database goes away: the new pods say so in /readyz, the old ones lose readiness.
    for _ in range(4):
        world.tick(60)
        world.controllers(ready=False, started_ago=200, old_ready=False)
        world.pods = [
            replace(p, readiness_checks={"database": "unreachable: OperationalError"})
            for p in world.pods
        ]
        world.step()
        assert world.status["reason"] == "DependencyUnavailable", world.status["message"]
        assert "failedRelease" not in world.status
        assert _image(world) == V2
    # Back: a fresh window; still-unready pods are not blamed for the outage's time.
    world.tick(5)
    world.controllers(ready=False, started_ago=300, old_ready=True)
    world.step()
    assert world.status["reason"] == "RollingOut"
    world.controllers(ready=True)
    world.step()
    assert world.status["phase"] == "Available"
    assert world.status["lastGoodImage"] == V2


def test_old_pods_losing_readiness_too_is_the_environment() -> None:
    world = available_world(replicas=2)
    world.change(image=V2)
    world.settle(passes=1)
    world.tick(200)
    world.controllers(ready=False, started_ago=200, old_ready=False)
    world.step()
    assert world.status["reason"] == "DependencyUnavailable"


def test_finished_and_terminating_pods_do_not_count() -> None:
    world = available_world()
    world.change(image=V2)
    world.settle(passes=1)
    world.controllers(ready=False, started_ago=10)
    evicted = replace(
        world.pods[-1],
        name="evicted",
        phase=PodPhase.FAILED,
        started_at=world.now - timedelta(seconds=900),
    )
    leaving = replace(
        world.pods[-1], name="leaving", deleting=True, started_at=world.now - timedelta(seconds=900)
    )
    world.pods = [*world.pods, evicted, leaving]
    world.step()
    assert world.status["reason"] == "RollingOut"


def test_pending_for_capacity_is_not_the_release() -> None:
    world = available_world()
    world.change(image=V2)
    world.settle(passes=1)
    world.controllers(ready=False)
    unplaced = {
        "started_at": None,
        "phase": PodPhase.PENDING,
        "unschedulable": "0/1 nodes: Insufficient cpu",
    }
    world.pods = [
        replace(p, **unplaced) if p.release == world.serving_release else p  # type: ignore[arg-type]
        for p in world.pods
    ]
    world.tick(900)
    world.step()
    assert world.status["reason"] == "Unschedulable"
    assert "Insufficient cpu" in world.status["message"]
    assert "failedRelease" not in world.status


def test_window_counts_from_container_start_not_pod_creation() -> None:
    world = available_world()
    world.change(image=V2)
    world.settle(passes=1)
    world.controllers(ready=False, started_ago=15)  # within even the learned 20 s window
    world.pods = [replace(p, created_at=world.now - timedelta(seconds=600)) for p in world.pods]
    world.step()
    assert world.status["reason"] == "RollingOut"


def test_a_pod_that_was_ready_and_blipped_gets_a_fresh_window() -> None:
    world = available_world()
    world.change(image=V2, replicas=2)
    world.settle(passes=1)
    world.controllers(ready=False, started_ago=500)
    world.pods = [replace(p, ready_changed_at=world.now - timedelta(seconds=3)) for p in world.pods]
    world.step()
    assert world.status["reason"] == "RollingOut"


def test_a_deadline_of_the_previous_template_is_ignored() -> None:
    world = available_world()
    world.change(image=V2)
    world.step()
    world.finish_jobs()
    world.step()  # the Deployment now has generation 2; its controller has not seen it
    world.deployment["status"] = {  # type: ignore[index]
        "observedGeneration": 1,
        "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        ],
        "replicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "updatedReplicas": 1,
    }
    world.step()
    assert world.status["reason"] == "RollingOut"


def test_zero_replicas_proves_nothing_and_a_crash_looping_scale_up_rolls_back() -> None:
    world = available_world()
    world.change(image=V2, replicas=0)
    world.settle(passes=2)
    assert world.status["phase"] == "ScaledToZero"
    assert world.status["lastGoodImage"] == V1
    assert _conditions(world)["Available"][0] == "True"
    world.change(replicas=1)
    world.step()
    world.controllers(ready=False, waiting=("CrashLoopBackOff",))
    world.step()
    assert world.status["reason"] == "RolledBack"
    assert _image(world) == V1


def test_deleted_deployment_comes_back_on_the_release_that_should_serve() -> None:
    for phase in ("RolledBack", "Migrating", "Failed"):
        world = available_world()
        world.change(image=V2)
        world.step()
        if phase == "RolledBack":
            world.finish_jobs()
            world.step()
            world.controllers(ready=False, waiting=("CrashLoopBackOff",))
            world.step()
        if phase == "Failed":
            world.finish_jobs(JobState.FAILED)
            world.step()
        assert world.status["phase"] == phase
        world.deployment = None
        world.pods = []
        world.step()
        assert _image(world) == V1, phase
        assert world.status["phase"] == phase


def test_refused_service_write_never_blocks_the_rollback() -> None:
    world = available_world()
    world.change(image=V2, service={"port": 8080})
    world.refuse = frozenset({"Service"})
    world.settle(passes=1)
    world.controllers(ready=False, waiting=("ImagePullBackOff",))
    plan = world.step()
    assert plan.actions[0].kind == "Deployment"
    assert _image(world) == V1
    assert world.status["reason"] == "RolledBack"


def test_missing_secret_and_conflicts_keep_the_guard_on() -> None:
    for breakage in ("secret", "conflict"):
        world = available_world()
        world.change(image=V2)
        world.settle(passes=1)
        if breakage == "secret":
            world.secret = SecretState.MISSING
        else:
            world.conflicts = ("Service/shop",)
        world.controllers(ready=False, waiting=("CrashLoopBackOff",))
        world.step()
        assert _image(world) == V1, breakage
        assert world.status["reason"] == "RolledBack", breakage


def test_missing_secret_starts_nothing_new() -> None:
    world = available_world()
    world.secret = SecretState.MISSING
    world.change(image=V2)
    plan = world.step()
    assert world.status["reason"] == "SecretNotFound"
    assert not [a for a in plan.actions if a.kind in ("Job", "Deployment")]


def test_paused_pauses_the_deployment_and_the_verdict_clock() -> None:
    world = available_world()
    world.change(image=V2)
    world.settle(passes=1)
    world.controllers(ready=False, started_ago=10)
    world.change(paused=True)
    world.step()
    assert world.status["phase"] == "Paused"
    assert world.deployment["spec"]["paused"] is True  # type: ignore[index]
    world.tick(600)
    world.step()
    assert world.status["phase"] == "Paused"
    world.change(paused=False)
    world.step()
    assert "paused" not in world.deployment["spec"]  # type: ignore[index]
    world.controllers(ready=False, started_ago=610)
    world.step()
    assert world.status["reason"] == "RollingOut"  # not rolled back for time spent paused
    world.tick(121)
    world.controllers(ready=False, started_ago=731)
    world.step()
    assert world.status["reason"] == "RolledBack"


def test_available_is_false_for_a_new_generation_until_it_serves() -> None:
    world = available_world()
    world.change(image=V2)
    world.step()
    available = next(c for c in world.status["conditions"] if c["type"] == "Available")
    assert available["status"] == "False"
    assert available["observedGeneration"] == world.generation
    world.settle()
    assert _conditions(world)["Available"] == ("True", "RolloutComplete")


def test_proven_release_that_degrades_is_degraded_not_rolled_back() -> None:
    world = available_world(replicas=2)
    world.controllers(ready=False, waiting=("CrashLoopBackOff",))
    world.deployment["status"]["readyReplicas"] = 0  # type: ignore[index]
    world.step()
    assert world.status["phase"] == "Degraded"
    assert _conditions(world)["Available"][0] == "False"
    assert _image(world) == V1


def test_events_only_on_transitions() -> None:
    world = available_world()
    world.change(image=V2)
    world.settle(passes=1)
    events = []
    for flip in range(6):
        world.controllers(ready=False, started_ago=5 + flip)
        events += [e.reason for e in world.step().events]
    assert events == []


def test_rollback_to_a_named_revision_and_back() -> None:
    world = available_world()
    world.change(image=V2)
    world.settle()
    assert world.status["currentRevision"] == 2
    world.rollback_to = 1
    world.step()
    assert world.status["reason"] == "RollbackRequested"
    assert _image(world) == V1
    world.rollback_to = 9
    world.step()
    assert world.status["reason"] == "RevisionNotFound"
    world.rollback_to = None
    world.settle()
    assert _image(world) == V2


def test_migration_of_the_next_release_waits_for_a_running_one() -> None:
    world = available_world()
    world.change(image=V2)
    world.step()
    world.change(image=V3)
    world.step()
    assert world.status["reason"] == "WaitingForPreviousMigration"
    assert sum(1 for j in world.jobs.values() if j.state is JobState.ACTIVE) == 1


def test_first_release_failing_with_nothing_to_go_back_to() -> None:
    world = World(spec=spec(V1))
    world.step()
    world.finish_jobs()
    world.step()
    world.controllers(ready=False, waiting=("CrashLoopBackOff",))
    world.step()
    assert world.status["phase"] == "Failed"
    assert world.status["reason"] == "RolloutFailed"


def test_every_reason_has_a_row() -> None:
    assert set(TABLE) == set(Reason)


def test_readyz_blaming_the_database_while_old_pods_are_ready_is_the_release() -> None:
    """The old pods are the control group: they reach the database, so the release is at fault
    (the never-ready test image's /readyz times out its own database check)."""
    world = available_world()
    world.change(image=V2)
    world.settle(passes=1)
    world.tick(200)
    world.controllers(ready=False, started_ago=200, old_ready=True)
    world.pods = [
        replace(p, readiness_checks={"database": "unreachable: no answer within 1e-06s"})
        if p.release == world.serving_release
        else p
        for p in world.pods
    ]
    world.step()
    assert world.status["reason"] == "RolledBack"


def test_readyz_blaming_the_database_with_no_old_pods_holds() -> None:
    world = available_world()
    world.change(image=V2, replicas=0)
    world.settle(passes=2)
    world.change(replicas=1)
    world.step()
    world.tick(300)
    world.controllers(ready=False, started_ago=300)
    world.pods = [
        replace(p, readiness_checks={"database": "unreachable: TimeoutError"}) for p in world.pods
    ]
    world.step()
    assert world.status["reason"] == "DependencyUnavailable"
    assert "failedRelease" not in world.status


def test_the_documented_table_is_the_code() -> None:
    """docs/operator.md renders policy.TABLE for people; it must say what the code does."""
    doc = (Path(__file__).resolve().parents[3] / "docs" / "operator.md").read_text()
    block = doc.split("<!-- decision-table:start -->")[1].split("<!-- decision-table:end -->")[0]
    rows = [line.split("|")[1:-1] for line in block.strip().splitlines()[2:]]
    documented = {
        cells[0].strip().strip("`"): tuple(c.strip() for c in cells[1:8]) for cells in rows
    }
    expected = {
        str(reason): (
            str(row.phase),
            str(row.progressing),
            str(row.degraded),
            str(row.stalled),
            f"{row.requeue:g} s",
            "event" if row.watched else "poll",
            row.event,
        )
        for reason, row in TABLE.items()
    }
    assert documented == expected


def test_a_rolled_back_release_the_spec_moved_past_is_not_reported_failed() -> None:
    world = available_world()
    world.change(image=V2)
    world.settle(passes=1)
    world.controllers(ready=False, waiting=("CrashLoopBackOff",))
    world.step()
    assert world.status["failedImage"] == V2
    world.change(image=V3)
    world.settle()
    assert world.status["phase"] == "Available"
    assert "failedImage" not in world.status


def test_an_outage_that_crash_loops_old_and_new_pods_is_not_the_release() -> None:
    """A database that hangs can fail liveness too: both releases restart and back off."""
    world = available_world(replicas=2)
    world.change(image=V2)
    world.settle(passes=1)
    world.controllers(ready=False, waiting=("CrashLoopBackOff",), old_ready=False)
    world.pods = [
        replace(p, started_at=None, waiting_reasons=("CrashLoopBackOff",), restart_count=2)
        for p in world.pods
    ]
    world.step()
    assert world.status["reason"] == "DependencyUnavailable"
    assert _image(world) == V2
