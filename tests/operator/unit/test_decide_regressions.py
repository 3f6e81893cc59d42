"""Regressions found by an adversarial review of the release model (issue #10): operator
upgrades from the image-based status, holds that outlive the Deployment's deadline, conflicts
under every guard, unsafe requested revisions, scale-ups reported too early."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from items_operator.constants import LABEL_RELEASE
from items_operator.observe import JobState, PodObservation, PodPhase, SecretState

from .world import V1, V2, V3, World, available_world, spec


def _image(world: World) -> str:
    assert world.deployment is not None
    return str(world.deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def legacy_world(
    serving: str = V1, spec_image: str = V1, status: dict[str, Any] | None = None
) -> World:
    """An operator upgrade: the Deployment was written by the old operator (no release label),
    no ControllerRevisions exist, status has the old format."""
    w = available_world(serving)
    dep = w.deployment
    assert dep is not None
    dep["spec"]["template"]["metadata"]["labels"].pop(LABEL_RELEASE)
    dep["spec"]["template"]["metadata"].pop("annotations", None)
    dep["metadata"]["annotations"] = {"items.platform.dev/desired-hash": "oldhash"}
    w.revisions = {}
    w.pods = [replace(p, release=None) for p in w.pods]
    w.status = status or {
        "observedGeneration": 1,
        "phase": "Available",
        "currentImage": serving,
        "lastGoodImage": serving,
        "targetImage": spec_image,
        "history": [{"image": serving, "outcome": "Available"}],
    }
    w.jobs = {}
    if spec_image != serving:
        w.change(image=spec_image)
    return w


def test_upgrade_forgets_old_failed_image_and_reroll_bad_image() -> None:
    # old operator had rolled back V2: failedImage=V2, V1 serves, spec still V2
    w = legacy_world(
        V1,
        V1,
        status={
            "observedGeneration": 2,
            "phase": "RolledBack",
            "currentImage": V1,
            "lastGoodImage": V1,
            "failedImage": V2,
            "targetImage": V2,
            "history": [
                {"image": V1, "outcome": "Available"},
                {"image": V2, "outcome": "RolledBack"},
            ],
        },
    )
    w.change(image=V2)
    assert w.deployment is not None
    w.deployment["metadata"]["annotations"]["items.platform.dev/rolled-back-image"] = V2
    w.step()
    w.finish_jobs()
    w.step()
    assert _image(w) == V1, "re-rolled out the image the old operator rolled back"


def test_upgrade_first_release_cannot_be_rolled_back() -> None:
    # after the upgrade the operator re-releases the spec (new template); if those pods fail
    # (e.g. the new derived memory limit OOMs), there is no way back to the legacy template
    w = legacy_world(V1, V1)
    w.change(image=V2)
    w.step()
    w.finish_jobs()
    w.step()
    assert _image(w) == V2
    w.controllers(ready=False, waiting=("CrashLoopBackOff",))
    w.step()
    assert _image(w) == V1, "broken first release after an upgrade is not rolled back"


def test_upgrade_old_history_entries_violate_crd_required_revision() -> None:
    w = legacy_world(V1, V2)
    w.step()
    bad = [e for e in w.status["history"] if "revision" not in e]
    assert not bad, f"history entries without revision (CRD requires it): {bad}"


def _deadline_exceeded(w: World) -> None:
    assert w.deployment is not None
    w.deployment["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    ]


def test_db_outage_longer_than_progress_deadline_rolls_back_good_release_after_recovery() -> None:
    w = available_world(replicas=2)
    w.change(image=V2)
    w.settle(passes=1)
    assert _image(w) == V2
    for _ in range(6):  # 6 minutes of outage > progressDeadlineSeconds (300)
        w.tick(60)
        w.controllers(ready=False, started_ago=400, old_ready=False)
        w.pods = [
            replace(p, readiness_checks={"database": "unreachable: OperationalError"})
            for p in w.pods
        ]
        _deadline_exceeded(w)  # the Deployment controller gave up meanwhile
        w.step()
        assert w.status["reason"] == "DependencyUnavailable"
    # the database is back: old pods ready again at once, new pods need a few seconds
    w.tick(2)
    w.controllers(ready=False, started_ago=400, old_ready=True)
    _deadline_exceeded(w)
    w.step()
    assert w.status["reason"] != "RolledBack", "good release rolled back after the outage"


def test_capacity_wait_longer_than_progress_deadline_then_scheduled_rolls_back() -> None:
    w = available_world()
    w.change(image=V2)
    w.settle(passes=1)
    w.controllers(ready=False)
    w.pods = [
        replace(
            p, started_at=None, phase=PodPhase.PENDING, unschedulable="0/1 nodes: Insufficient cpu"
        )
        if p.release == w.serving_release
        else p
        for p in w.pods
    ]
    w.tick(400)
    _deadline_exceeded(w)
    w.step()
    assert w.status["reason"] == "Unschedulable"
    # the cluster autoscaler added a node: the pod is scheduled, the image is being pulled
    w.pods = [
        replace(p, unschedulable=None, waiting_reasons=("ContainerCreating",))
        if p.release == w.serving_release
        else p
        for p in w.pods
    ]
    w.tick(5)
    w.step()
    assert w.status["reason"] != "RolledBack", "blamed the release for the capacity wait"


def test_conflicting_service_is_force_applied_when_an_earlier_guard_wins() -> None:
    # observe() leaves a foreign object's kind out of owned_hashes -> the builder's Apply is
    # desired; only _conflict drops it, and _conflict is skipped when paused/rollback/... wins
    for how in ("paused", "rollback"):
        w = available_world()
        w.owned.pop("Service")
        w.conflicts = ("Service/shop",)
        if how == "paused":
            w.change(paused=True)
        else:
            w.rollback_to = 1
        plan = w.decide()
        kinds = [(type(a).__name__, a.kind) for a in plan.actions]
        assert ("Apply", "Service") not in kinds, f"{how}: takes over the foreign Service"


def test_conflicting_service_is_force_applied_during_a_rollback() -> None:
    w = available_world()
    w.change(image=V2)
    w.settle(passes=1)
    w.owned.pop("Service")
    w.conflicts = ("Service/shop",)
    w.controllers(ready=False, waiting=("CrashLoopBackOff",))
    plan = w.decide()
    kinds = [(type(a).__name__, a.kind) for a in plan.actions]
    assert ("Apply", "Service") not in kinds


def test_rollback_to_a_revision_whose_migration_failed_serves_it_unmigrated() -> None:
    w = available_world()
    w.change(image=V2)
    w.step()  # revision 2 stored, its migration Job created
    w.finish_jobs(JobState.FAILED)
    w.step()
    assert w.status["reason"] == "MigrationFailed"
    w.rollback_to = 2
    w.step()
    assert _image(w) == V1, "served a release whose migration failed (gate bypassed)"


def test_dependency_unavailable_rewrites_status_every_pass() -> None:
    # every status write is a watch event of the ItemService -> wake_reconciler -> next pass
    # after 0.1 s: a pass that always writes keeps the loop hot (about one pass per second)
    w = available_world(replicas=2)
    w.change(image=V2)
    w.settle(passes=1)
    w.tick(60)
    w.controllers(ready=False, started_ago=200, old_ready=False)
    w.step()
    assert w.status["reason"] == "DependencyUnavailable"
    changed = 0
    for _ in range(5):
        w.tick(1)
        before = copy.deepcopy(w.status)
        w.step()
        changed += before != w.status
    assert changed == 0, f"status changed on {changed}/5 passes with nothing new observed"


def test_scale_up_reports_available_for_the_new_generation_before_the_new_replica_exists() -> None:
    w = available_world(replicas=2)
    w.change(replicas=3)
    w.step()
    av = next(c for c in w.status["conditions"] if c["type"] == "Available")
    assert w.deployment is not None
    assert w.deployment["spec"]["replicas"] == 3
    assert not (av["status"] == "True" and av["observedGeneration"] == w.generation), (
        "kubectl wait --for=condition=Available returns before the 3rd replica exists"
    )


def test_outage_while_the_spec_moved_on_never_blames_the_serving_release() -> None:
    w = available_world(replicas=2)
    w.change(image=V2)
    w.settle(passes=1)
    w.controllers(ready=False, started_ago=10)
    w.step()
    w.change(image=V3)  # a newer release during the rollout; its migration waits on the DB
    for _ in range(4):
        w.tick(60)
        w.controllers(ready=False, started_ago=250, old_ready=False)
        w.step()
    w.tick(2)
    w.controllers(ready=False, started_ago=252, old_ready=True)  # DB back, V2 pods recovering
    w.step()
    assert w.status["reason"] != "RolledBack"


def test_requested_crashlooping_revision_reports_healthy_conditions() -> None:
    w = available_world()
    w.change(image=V2)
    w.settle(passes=1)
    w.controllers(ready=False, waiting=("CrashLoopBackOff",))
    w.step()
    assert w.status["reason"] == "RolledBack"
    w.rollback_to = 2  # a person asks for the failed revision
    w.step()
    w.controllers(ready=False, waiting=("CrashLoopBackOff",))
    w.tick(600)
    w.step()
    conds = {c["type"]: c["status"] for c in w.status["conditions"]}
    assert conds["Degraded"] == "True", "a crash loop must not look Current to kstatus"


def test_legacy_deployment_deleted_is_not_recreated() -> None:
    w = legacy_world(V1, V1)
    w.change(image=V2)
    w.secret = SecretState.MISSING  # nothing new can start; legacy keeps serving
    w.step()
    w.deployment = None
    w.pods = []
    w.step()
    assert w.deployment is not None


def test_a_release_is_served_only_once_stored() -> None:
    """A ControllerRevision create refused (quota, webhook, RBAC not upgraded): the release
    never goes live, so nothing serves that could not be rolled back to."""
    w = available_world()
    before = copy.deepcopy(w.deployment)
    w.refuse = frozenset({"ControllerRevision"})
    w.change(env=[{"name": "FEATURE", "value": "on"}])
    for _ in range(3):
        w.step()
    assert w.deployment == before
    assert "storing" in w.status["message"]
    w.refuse = frozenset()
    w.settle()
    assert w.status["phase"] == "Available"
    assert [e["revision"] for e in w.status["history"]] == [1, 2]


def test_a_readiness_blip_of_a_proven_release_is_not_a_rollout() -> None:
    w = available_world(replicas=2)
    events: list[str] = []
    phases: set[str] = set()
    for _ in range(3):
        assert w.deployment is not None
        w.pods = [replace(w.pods[0], ready=False, ready_changed_at=w.now), *w.pods[1:]]
        w.deployment["status"]["readyReplicas"] = 1
        w.deployment["status"]["availableReplicas"] = 1
        events += [e.reason for e in w.step().events]
        phases.add(w.status["phase"])
        w.tick(5)
        w.controllers()
        events += [e.reason for e in w.step().events]
    assert "RollingOut" not in phases
    assert events == []


def test_a_migrator_that_could_not_reach_the_database_is_waited_for_not_blamed() -> None:
    """Exit 75 is ignored by the Job's podFailurePolicy (it runs the migrator again); the
    message says why the migration takes long, and the release is neither failed nor rolled."""
    world = World(spec=spec(V1, replicas=1))
    world.settle()
    world.change(image=V2)
    world.step()
    [job] = [j for j in world.jobs.values() if j.state is JobState.ACTIVE]
    report = '{"error":"the database is unreachable (2003, timed out)","outcome":"unreachable"}'
    world.job_pods.append(
        PodObservation(
            name=f"{job.name}-a",
            image=job.image,
            created_at=world.now,
            ready=False,
            deleting=False,
            job_name=job.name,
            phase=PodPhase.FAILED,
            termination_message=report,
        )
    )
    plan = world.step()
    assert plan.status["reason"] == "Migrating"
    assert (
        "run 1 could not reach the database: the database is unreachable"
        in (plan.status["message"])
    )
    assert not [a for a in plan.actions if type(a).__name__ in ("FailJob", "Apply")]
