"""A small simulated cluster for the decision layer's tests: it keeps the objects a Plan wrote
(as the API server would), lets a test set what the controllers and kubelet report (pods,
Deployment status, Job outcomes), and turns it all into an Observed for the next pass."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from items_operator.constants import (
    ANNOTATION_DESIRED_HASH,
    ANNOTATION_IMAGE_ID,
    ANNOTATION_MIGRATION_REPORT,
    ANNOTATION_PROTECT_DIGEST,
    LABEL_RELEASE,
)
from items_operator.decide import decide
from items_operator.model import ItemService, ItemServiceSpec, Owner
from items_operator.observe import (
    JobObservation,
    JobState,
    Observed,
    PodObservation,
    PodPhase,
    SecretState,
    observe_deployment,
    observe_revision,
)
from items_operator.plan import AdoptJob, Apply, Create, Delete, FailJob, Plan
from items_operator.schema_floor import parse_report

NOW = datetime(2026, 11, 29, 2, 0, 0, tzinfo=UTC)
OWNER = Owner(name="shop", namespace="items", uid="0f0e0d0c-uid")
V1 = "registry.example/items-service:1.0.0"
V2 = "registry.example/items-service:2.0.0"
V3 = "registry.example/items-service:3.0.0"
SECRET = "a1b2c3d4e5f60718"
IMMEDIATE = 0.5  # requeue_after of a pass that asks to run again at once


def spec(image: str = V1, **overrides: Any) -> ItemServiceSpec:
    raw: dict[str, Any] = {"image": image, "database": {"secretRef": {"name": "shop-db"}}}
    raw.update(overrides)
    return ItemServiceSpec.model_validate(raw)


@dataclass
class World:
    spec: ItemServiceSpec = field(default_factory=spec)
    generation: int = 1
    status: dict[str, Any] = field(default_factory=dict)
    rollback_to: int | None = None
    now: datetime = NOW
    secret: SecretState = SecretState.PRESENT
    secret_digest: str | None = SECRET
    deployment: dict[str, Any] | None = None
    revisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, JobObservation] = field(default_factory=dict)
    pods: list[PodObservation] = field(default_factory=list)
    job_pods: list[PodObservation] = field(default_factory=list)
    owned: dict[str, str | None] = field(default_factory=dict)
    conflicts: tuple[str, ...] = ()
    writes: list[str] = field(default_factory=list)
    refuse: frozenset[str] = frozenset()  # kinds whose writes the "API server" refuses
    job_env: dict[str, dict[str, str]] = field(default_factory=dict)  # migration env by Job
    allow_contract: tuple[str, ...] = ()
    migration_report: str = ""  # what finished migration pods report, unless a test says
    migration_image_id: str = ""
    upgrade_slot: bool = True  # the operator-upgrade wave lets this one start (fleet.py)

    # -- the ItemService ------------------------------------------------------------------------

    @property
    def cr(self) -> ItemService:
        return ItemService(
            OWNER, self.generation, self.spec, self.status, self.rollback_to, self.allow_contract
        )

    def change(self, **fields: Any) -> None:
        """A spec edit by a person: the generation moves."""
        raw = self.spec.model_dump(by_alias=True)
        raw.update(fields)
        self.spec = ItemServiceSpec.model_validate(raw)
        self.generation += 1

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    # -- one pass -------------------------------------------------------------------------------

    def observed(self) -> Observed:
        dep = None
        if self.deployment is not None:
            dep = observe_deployment(self.deployment)
        revisions = tuple(
            r for obj in self.revisions.values() if (r := observe_revision(obj)) is not None
        )
        return Observed(
            secret=self.secret,
            secret_digest=self.secret_digest if self.secret is SecretState.PRESENT else None,
            deployment=dep,
            revisions=revisions,
            jobs=tuple(self.jobs.values()),
            pods=tuple(self.pods),
            job_pods=tuple(self.job_pods),
            owned_hashes=dict(self.owned),
            conflicts=self.conflicts,
            upgrade_slot=self.upgrade_slot,
            upgrade_wave="3 of 3 ItemServices roll an operator upgrade now",
        )

    def decide(self) -> Plan:
        return decide(self.cr, self.observed(), self.now)

    def step(self) -> Plan:
        """decide, then apply the plan as the API server would, and store the status; a pass
        that asks to run again at once (it stored a release before rolling it out) is followed
        by that pass, as the operator's loop does within half a second."""
        plan = self.pass_once()
        for _ in range(3):
            if plan.requeue_after > IMMEDIATE:
                break
            plan = self.pass_once()
        return plan

    def pass_once(self) -> Plan:
        plan = self.decide()
        self.apply(plan)
        self.status = plan.status
        return plan

    def apply(self, plan: Plan) -> None:
        for action in plan.actions:
            kind = action.kind
            name = getattr(action, "name", "")
            self.writes.append(f"{type(action).__name__} {kind}/{name}")
            if kind in self.refuse:
                continue
            match action:
                case Apply(obj=obj) if kind == "Deployment":
                    self._apply_deployment(obj)
                case Apply(obj=obj):
                    self.owned[kind] = obj["metadata"]["annotations"][ANNOTATION_DESIRED_HASH]
                case Create(obj=obj) if kind == "ControllerRevision":
                    self.revisions.setdefault(obj["metadata"]["name"], copy.deepcopy(obj))
                case Create(obj=obj) if kind == "Job":
                    annotations = obj["metadata"]["annotations"]
                    self.jobs.setdefault(
                        obj["metadata"]["name"],
                        JobObservation(
                            name=obj["metadata"]["name"],
                            image=next(iter(annotations.values())),
                            state=JobState.ACTIVE,
                            started_at=self.now,
                            migration_key=obj["metadata"]["labels"][
                                "items.platform.dev/migration-key"
                            ],
                            adopted="ownerReferences" in obj["metadata"],
                            protect_digest=annotations.get(ANNOTATION_PROTECT_DIGEST, ""),
                        ),
                    )
                    self.job_env[obj["metadata"]["name"]] = {
                        e["name"]: e.get("value", "")
                        for e in obj["spec"]["template"]["spec"]["containers"][0]["env"]
                    }
                case AdoptJob(name=job_name, annotations=annotations):
                    self.jobs[job_name] = replace(
                        self.jobs[job_name],
                        adopted=True,
                        image_id=annotations.get(ANNOTATION_IMAGE_ID, ""),
                        report=parse_report(annotations.get(ANNOTATION_MIGRATION_REPORT)),
                    )
                case FailJob(name=job_name, note=note):
                    self.jobs[job_name] = replace(
                        self.jobs[job_name],
                        state=JobState.FAILED,
                        failure_note=note,
                        finished_at=self.now,
                    )
                case Delete(kind="Job", name=job_name):
                    self.jobs.pop(job_name, None)
                case Delete(kind="ControllerRevision", name=rev):
                    self.revisions.pop(rev, None)
                case Delete(kind=other):
                    self.owned.pop(other, None)

    def _apply_deployment(self, obj: dict[str, Any]) -> None:
        old = self.deployment
        generation = int(old["metadata"]["generation"]) if old else 0
        changed = old is None or old["spec"] != obj["spec"]
        body = copy.deepcopy(obj)
        body["metadata"]["generation"] = generation + (1 if changed else 0)
        body["status"] = copy.deepcopy(old.get("status", {})) if old else {}
        self.deployment = body

    # -- what the controllers report ------------------------------------------------------------

    @property
    def serving_release(self) -> str | None:
        if self.deployment is None:
            return None
        labels: dict[str, str] = self.deployment["spec"]["template"]["metadata"]["labels"]
        return labels.get(LABEL_RELEASE)

    def finish_jobs(
        self,
        state: JobState = JobState.SUCCEEDED,
        *,
        report: str | None = None,
        image_id: str | None = None,
    ) -> None:
        """Active Jobs end; their last pod reports `report` (the migrator's termination
        message) and ran `image_id` (defaults: the world's migration_report/_image_id)."""
        report = self.migration_report if report is None else report
        image_id = self.migration_image_id if image_id is None else image_id
        for name, job in list(self.jobs.items()):
            if job.state is JobState.ACTIVE:
                self.jobs[name] = replace(job, state=state, finished_at=self.now)
                phase = PodPhase.SUCCEEDED if state is JobState.SUCCEEDED else PodPhase.FAILED
                self.job_pods.append(
                    PodObservation(
                        name=f"{name}-pod",
                        image=job.image,
                        created_at=self.now,
                        ready=False,
                        deleting=False,
                        job_name=name,
                        phase=phase,
                        image_id=image_id,
                        termination_message=report,
                    )
                )

    def _answered_at(
        self, waiting: tuple[str, ...], started_ago: float, answered_ago: float | None
    ) -> datetime | None:
        if waiting or answered_ago is None:
            return None
        return self.now - timedelta(seconds=started_ago if answered_ago == -1 else answered_ago)

    def controllers(
        self,
        *,
        ready: bool = True,
        started_ago: float = 5,
        waiting: tuple[str, ...] = (),
        message: str | None = None,
        old_ready: bool = True,
        keep_old: bool | None = None,
        answered_ago: float | None = -1,
    ) -> None:
        """The Deployment and ReplicaSet controllers and the kubelet catch up: pods of the
        served release exist (ready or not) and the Deployment status says so. A waiting
        reason gets `message`, or the kubelet's usual words for it (a pull: not found).
        `answered_ago`: when the new pods' servers first answered /readyz (the operator's
        reads); -1: as they started (a server that is up at once), None: not yet."""
        if self.deployment is None:
            self.pods = []
            return
        release = self.serving_release
        replicas = int(self.deployment["spec"].get("replicas", 1))
        paused = bool(self.deployment["spec"].get("paused"))
        old = [p for p in self.pods if p.release != release and p.counts]
        if keep_old is None:
            keep_old = not ready
        new = [
            PodObservation(
                name=f"shop-{release}-{i}",
                image=self._image(),
                created_at=self.now - timedelta(seconds=started_ago + 1),
                ready=ready,
                deleting=False,
                waiting_reasons=waiting,
                waiting_message=self._message(waiting, message),
                release=release,
                phase=PodPhase.RUNNING,
                started_at=None if waiting else self.now - timedelta(seconds=started_ago),
                ready_changed_at=self.now - timedelta(seconds=started_ago),
                answered_at=self._answered_at(waiting, started_ago, answered_ago),
            )
            for i in range(replicas)
        ]
        if paused:
            return
        old = [replace(p, ready=old_ready) for p in old] if keep_old else []
        self.pods = [*old, *new]
        count_ready = sum(1 for p in self.pods if p.ready)
        self.deployment["status"] = {
            "observedGeneration": self.deployment["metadata"]["generation"],
            "replicas": len(self.pods),
            "updatedReplicas": len(new),
            "readyReplicas": count_ready,
            "availableReplicas": count_ready,
        }

    def _message(self, waiting: tuple[str, ...], message: str | None) -> str:
        if message is not None or not waiting:
            return message or ""
        if waiting[0] in ("ErrImagePull", "ImagePullBackOff"):
            image = self._image()
            return (
                f'Back-off pulling image "{image}": ErrImagePull: rpc error: code = NotFound '
                f'desc = failed to pull and unpack image "{image}": not found'
            )
        return f"back-off: {waiting[0]}"

    def _image(self) -> str:
        assert self.deployment is not None
        return str(self.deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    def settle(self, passes: int = 6, **controllers: Any) -> Plan:
        """Run passes with jobs succeeding and pods as given until a pass writes nothing."""
        plan = self.step()
        for _ in range(passes):
            self.finish_jobs()
            self.controllers(**controllers)
            plan = self.step()
            if not plan.actions and plan.status == self.status:
                break
        return plan


def available_world(image: str = V1, **spec_fields: Any) -> World:
    """An ItemService whose first release rolled out and is proven."""
    world = World(spec=spec(image, **spec_fields))
    world.settle()
    assert world.status["phase"] == "Available", world.status
    return world
