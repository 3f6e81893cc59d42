"""One ItemService's life, pass by pass, feeding each status back in as the API server would:
first deploy, an upgrade, a broken image rolled back and held, then a fixed image."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from items_operator.decide import Plan, decide
from items_operator.model import ItemService
from items_operator.observe import JobObservation, JobState, Observed

from .factories import NOW, V1, V2, V3, deployment, item_service, job, observed, pod, summarize


class Story:
    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.generation = 1
        self.image = V1
        self.minute = 0

    def cr(self) -> ItemService:
        return item_service(self.image, status=self.status, generation=self.generation)

    def set_image(self, image: str) -> None:
        self.image, self.generation = image, self.generation + 1

    def step(self, seen: Observed) -> Plan:
        self.minute += 1
        plan = decide(self.cr(), seen, NOW + timedelta(minutes=self.minute))
        self.status = plan.status
        return plan


def test_lifecycle() -> None:
    story = Story()

    plan = story.step(observed(story.cr(), owned_hashes={}))
    assert plan.status["phase"] == "Migrating"
    assert f"create Job {V1}" in summarize(plan)

    migrated_v1 = job(V1, JobState.SUCCEEDED)
    plan = story.step(observed(story.cr(), jobs=(migrated_v1,)))
    assert (plan.status["phase"], summarize(plan)) == ("RollingOut", [f"apply Deployment {V1}"])

    plan = story.step(
        observed(story.cr(), deployment=deployment(story.cr(), V1), jobs=(migrated_v1,))
    )
    assert plan.status["phase"] == "Available"
    assert plan.status["lastGoodImage"] == V1

    # Upgrade to V2: migrate, then roll out.
    story.set_image(V2)
    serving_v1 = deployment(story.cr(), V1)
    plan = story.step(observed(story.cr(), deployment=serving_v1, jobs=(migrated_v1,)))
    assert (plan.status["phase"], summarize(plan)) == ("Migrating", [f"create Job {V2}"])

    migrated_v2 = job(V2, JobState.SUCCEEDED)
    jobs: tuple[JobObservation, ...] = (migrated_v1, migrated_v2)
    plan = story.step(observed(story.cr(), deployment=serving_v1, jobs=jobs))
    assert summarize(plan) == [f"apply Deployment {V2}"]

    plan = story.step(observed(story.cr(), deployment=deployment(story.cr(), V2), jobs=jobs))
    assert plan.status["phase"] == "Available"
    assert plan.status["lastGoodImage"] == V2

    # V3 migrates fine but crashes: rolled back to V2 and held.
    story.set_image(V3)
    serving_v2 = deployment(story.cr(), V2)
    story.step(observed(story.cr(), deployment=serving_v2, jobs=jobs))
    jobs = (*jobs, job(V3, JobState.SUCCEEDED))
    story.step(observed(story.cr(), deployment=serving_v2, jobs=jobs))
    crashing = observed(
        story.cr(),
        deployment=deployment(story.cr(), V3, complete=False, ready=2),
        jobs=jobs,
        pods=(pod(V2, ready=True), pod(V3, waiting=("CrashLoopBackOff",))),
    )
    plan = story.step(crashing)
    assert plan.status["phase"] == "RolledBack"
    assert summarize(plan) == [f"apply Deployment {V2}"]
    assert [e.reason for e in plan.events] == ["RolledBack"]
    assert V3 in plan.status["message"]
    assert "CrashLoopBackOff" in plan.status["message"]

    rolled_back = deployment(story.cr(), V2, rolled_back_image=V3, rolled_back_generation=3)
    for _ in range(3):
        plan = story.step(observed(story.cr(), deployment=rolled_back, jobs=jobs))
        assert plan.actions == ()
        assert plan.status["phase"] == "RolledBack"
    outcomes = [(e["image"], e["outcome"]) for e in plan.status["history"]]
    assert outcomes == [(V1, "Available"), (V2, "Available"), (V3, "RolledBack")]
    # Finished Jobs beyond migration.historyLimit (3) would be pruned; here exactly 3 remain.
    assert len(jobs) == 3


def test_scaled_to_zero_still_migrates_each_image_and_is_available() -> None:
    """replicas: 0 (a service switched off): no pod ever serves, yet a new image is migrated
    before its (empty) Deployment is applied, and 0/0 ready counts as Available."""
    def cr(image: str, status: dict[str, Any], generation: int) -> ItemService:
        return item_service(image, status=status, generation=generation, replicas=0)

    first = cr(V1, {}, 1)
    plan = decide(first, observed(first, owned_hashes={}), NOW)
    assert (plan.status["phase"], summarize(plan)[-1]) == ("Migrating", f"create Job {V1}")
    assert "PodDisruptionBudget" not in " ".join(summarize(plan))

    migrated = (job(V1, JobState.SUCCEEDED),)
    plan = decide(cr(V1, plan.status, 1), observed(first, jobs=migrated), NOW)
    assert (plan.status["phase"], summarize(plan)) == ("RollingOut", [f"apply Deployment {V1}"])

    serving = cr(V1, plan.status, 1)
    seen = observed(serving, deployment=deployment(serving, V1), jobs=migrated)
    plan = decide(serving, seen, NOW)
    assert (plan.status["phase"], plan.status["readyReplicas"]) == ("Available", 0)
    steady = decide(cr(V1, plan.status, 1), seen, NOW + timedelta(minutes=5))
    assert (steady.actions, steady.status) == ((), plan.status)

    upgraded = cr(V2, plan.status, 2)
    plan = decide(upgraded, observed(upgraded, deployment=deployment(upgraded, V1),
                                     jobs=migrated), NOW)
    assert (plan.status["phase"], summarize(plan)) == ("Migrating", [f"create Job {V2}"])
