"""Small builders of ItemServices and observations for the decision tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from items_operator.constants import ANNOTATION_DESIRED_HASH
from items_operator.decide import Apply, CreateJob, Delete, FailJob, Plan, decide
from items_operator.model import ItemService, ItemServiceSpec, Owner
from items_operator.observe import (
    DeploymentObservation,
    JobObservation,
    JobState,
    Observed,
    PodObservation,
    SecretState,
)
from items_operator.specs.common import migration_job_name
from items_operator.specs.deployment import build_deployment
from items_operator.specs.pdb import build_pdb
from items_operator.specs.service import build_service
from items_operator.specs.serviceaccount import build_service_account

NOW = datetime(2026, 11, 29, 2, 0, 0, tzinfo=UTC)
OWNER = Owner(name="shop", namespace="items", uid="0f0e0d0c-uid")
V1 = "registry.example/items-service:1.0.0"
V2 = "registry.example/items-service:2.0.0"
V3 = "registry.example/items-service:3.0.0"


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def spec(image: str = V1, **overrides: Any) -> ItemServiceSpec:
    raw: dict[str, Any] = {"image": image, "database": {"secretRef": {"name": "shop-db"}}}
    raw.update(overrides)
    return ItemServiceSpec.model_validate(raw)


def item_service(
    image: str = V1, *, status: dict[str, Any] | None = None, generation: int = 1, **overrides: Any
) -> ItemService:
    return ItemService(
        owner=OWNER, generation=generation, spec=spec(image, **overrides), status=status or {}
    )


def job_name(image: str) -> str:
    return migration_job_name(OWNER.name, image)


def job(
    image: str,
    state: JobState,
    *,
    finished_seconds_ago: float = 60,
    reason: str = "",
    message: str = "",
    note: str = "",
) -> JobObservation:
    finished = None if state is JobState.ACTIVE else ago(finished_seconds_ago)
    return JobObservation(
        name=job_name(image),
        image=image,
        state=state,
        reason=reason,
        message=message,
        started_at=ago(finished_seconds_ago + 20),
        finished_at=finished,
        failure_note=note,
    )


def deployment_hash(cr: ItemService, image: str, **rollback: Any) -> str:
    desired = build_deployment(cr.owner, cr.spec, image=image, **rollback)
    return str(desired["metadata"]["annotations"][ANNOTATION_DESIRED_HASH])


def deployment(
    cr: ItemService,
    image: str,
    *,
    ready: int | None = None,
    updated: int | None = None,
    total: int | None = None,
    complete: bool = True,
    deadline_exceeded: bool = False,
    rolled_back_image: str | None = None,
    rolled_back_generation: int | None = None,
    stale_hash: bool = False,
) -> DeploymentObservation:
    """A Deployment running `image` as the operator would have applied it for `cr`."""
    replicas = cr.spec.replicas
    rollback: dict[str, Any] = {}
    if rolled_back_image is not None:
        rollback = {
            "rolled_back_image": rolled_back_image,
            "rolled_back_generation": rolled_back_generation,
        }
    default_ready = replicas if complete else 0
    return DeploymentObservation(
        image=image,
        desired_hash="stale" if stale_hash else deployment_hash(cr, image, **rollback),
        generation=2,
        observed_generation=2,
        replicas=replicas,
        status_replicas=total if total is not None else replicas,
        updated_replicas=updated if updated is not None else (replicas if complete else 1),
        ready_replicas=ready if ready is not None else default_ready,
        available_replicas=ready if ready is not None else default_ready,
        progress_deadline_exceeded=deadline_exceeded,
        rolled_back_image=rolled_back_image,
        rolled_back_generation=rolled_back_generation,
    )


def pod(
    image: str,
    *,
    ready: bool = False,
    age: float = 10,
    waiting: tuple[str, ...] = (),
    name: str | None = None,
    job: str | None = None,
) -> PodObservation:
    return PodObservation(
        name=name or f"shop-{image.rsplit(':', 1)[-1]}-{int(age)}-{'-'.join(waiting) or 'ok'}",
        image=image,
        created_at=ago(age),
        ready=ready,
        deleting=False,
        waiting_reasons=waiting,
        waiting_message=f"back-off: {waiting[0]}" if waiting else "",
        job_name=job,
    )


def converged_hashes(cr: ItemService) -> dict[str, str | None]:
    """Supporting objects as the operator would have applied them for `cr`."""
    objects = [build_service_account(cr.owner, cr.spec), build_service(cr.owner, cr.spec)]
    if (pdb := build_pdb(cr.owner, cr.spec)) is not None:
        objects.append(pdb)
    return {o["kind"]: o["metadata"]["annotations"][ANNOTATION_DESIRED_HASH] for o in objects}


def observed(
    cr: ItemService,
    *,
    secret: SecretState = SecretState.PRESENT,
    deployment: DeploymentObservation | None = None,
    jobs: tuple[JobObservation, ...] = (),
    pods: tuple[PodObservation, ...] = (),
    job_pods: tuple[PodObservation, ...] = (),
    owned_hashes: dict[str, str | None] | None = None,
    conflicts: tuple[str, ...] = (),
) -> Observed:
    return Observed(
        secret=secret,
        deployment=deployment,
        jobs=jobs,
        pods=pods,
        job_pods=job_pods,
        owned_hashes=converged_hashes(cr) if owned_hashes is None else owned_hashes,
        conflicts=conflicts,
    )


def summarize(plan: Plan) -> list[str]:
    """Actions as short strings, e.g. "apply Deployment <image>", for readable tables."""
    lines = []
    for action in plan.actions:
        match action:
            case Apply() if action.kind == "Deployment":
                image = action.obj["spec"]["template"]["spec"]["containers"][0]["image"]
                lines.append(f"apply Deployment {image}")
            case Apply():
                lines.append(f"apply {action.kind}")
            case CreateJob():
                image = action.obj["spec"]["template"]["spec"]["containers"][0]["image"]
                lines.append(f"create Job {image}")
            case FailJob():
                lines.append(f"fail Job/{action.name}")
            case Delete():
                lines.append(f"delete {action.kind}/{action.name}")
    return lines


def conditions(plan: Plan) -> dict[str, tuple[str, str]]:
    """type -> (status, reason)."""
    return {c["type"]: (c["status"], c["reason"]) for c in plan.status["conditions"]}


def run_until_steady(cr: ItemService, seen: Observed, passes: int = 2) -> tuple[ItemService, Plan]:
    """Feed each pass's status back in, as the API server would, and return the last plan."""
    plan = decide(cr, seen, NOW)
    for _ in range(passes - 1):
        cr = ItemService(owner=cr.owner, generation=cr.generation, spec=cr.spec, status=plan.status)
        plan = decide(cr, seen, NOW)
    return cr, plan
