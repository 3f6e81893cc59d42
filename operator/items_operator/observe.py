"""What the cluster looks like, reduced to the facts the decision layer needs.

Parsers take raw API dicts (as lightkube's `.to_dict()` or a test fixture gives them) and return
small frozen records, so the decision layer never digs through nested dicts.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from items_operator.constants import (
    ANNOTATION_DESIRED_HASH,
    ANNOTATION_FAILURE,
    ANNOTATION_IMAGE,
    ANNOTATION_ROLLED_BACK_GENERATION,
    ANNOTATION_ROLLED_BACK_IMAGE,
    CONTAINER_NAME,
    JOB_NAME_LABELS,
)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class SecretState(enum.Enum):
    PRESENT = "Present"
    MISSING = "Missing"
    KEY_MISSING = "KeyMissing"


def secret_state(secret: dict[str, Any] | None, key: str) -> SecretState:
    if secret is None:
        return SecretState.MISSING
    data = {**(secret.get("data") or {}), **(secret.get("stringData") or {})}
    return SecretState.PRESENT if data.get(key) else SecretState.KEY_MISSING


class JobState(enum.Enum):
    ACTIVE = "Active"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class JobObservation:
    name: str
    image: str
    state: JobState
    reason: str = ""
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Set when the operator failed the Job early because its pod could not start.
    failure_note: str = ""

    @property
    def finished(self) -> bool:
        return self.state is not JobState.ACTIVE


def _condition(conditions: Iterable[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    for condition in conditions:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return condition
    return None


def observe_job(job: dict[str, Any]) -> JobObservation:
    meta = job["metadata"]
    status = job.get("status") or {}
    conditions = status.get("conditions") or []
    state, terminal = JobState.ACTIVE, None
    if (terminal := _condition(conditions, "Complete")) is not None:
        state = JobState.SUCCEEDED
    elif (terminal := _condition(conditions, "Failed")) is not None:
        state = JobState.FAILED
    annotations = meta.get("annotations") or {}
    image = annotations.get(ANNOTATION_IMAGE, "")
    return JobObservation(
        name=meta["name"],
        image=image,
        state=state,
        reason=(terminal or {}).get("reason", ""),
        message=(terminal or {}).get("message", ""),
        started_at=parse_time(status.get("startTime")),
        finished_at=parse_time(status.get("completionTime"))
        or parse_time((terminal or {}).get("lastTransitionTime")),
        failure_note=annotations.get(ANNOTATION_FAILURE, ""),
    )


@dataclass(frozen=True)
class DeploymentObservation:
    image: str
    desired_hash: str | None
    generation: int
    observed_generation: int
    replicas: int
    status_replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    progress_deadline_exceeded: bool
    rolled_back_image: str | None = None
    rolled_back_generation: int | None = None

    @property
    def rollout_complete(self) -> bool:
        """Every pod runs the current template and is ready and available (no old pods left)."""
        return (
            self.observed_generation >= self.generation
            and self.updated_replicas == self.replicas
            and self.status_replicas == self.replicas
            and self.ready_replicas >= self.replicas
            and self.available_replicas >= self.replicas
        )


def observe_deployment(deployment: dict[str, Any]) -> DeploymentObservation:
    meta = deployment["metadata"]
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    annotations = meta.get("annotations") or {}
    containers = spec.get("template", {}).get("spec", {}).get("containers") or []
    image = next((c.get("image", "") for c in containers if c.get("name") == CONTAINER_NAME), "")
    progressing: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {}
    )
    rolled_back_generation = annotations.get(ANNOTATION_ROLLED_BACK_GENERATION)
    return DeploymentObservation(
        image=image,
        desired_hash=annotations.get(ANNOTATION_DESIRED_HASH),
        generation=int(meta.get("generation", 0)),
        observed_generation=int(status.get("observedGeneration", 0)),
        replicas=int(spec.get("replicas", 1)),
        status_replicas=int(status.get("replicas", 0)),
        updated_replicas=int(status.get("updatedReplicas", 0)),
        ready_replicas=int(status.get("readyReplicas", 0)),
        available_replicas=int(status.get("availableReplicas", 0)),
        progress_deadline_exceeded=progressing.get("status") == "False"
        and progressing.get("reason") == "ProgressDeadlineExceeded",
        rolled_back_image=annotations.get(ANNOTATION_ROLLED_BACK_IMAGE),
        rolled_back_generation=int(rolled_back_generation)
        if rolled_back_generation and rolled_back_generation.isdigit()
        else None,
    )


@dataclass(frozen=True)
class PodObservation:
    name: str
    image: str
    created_at: datetime | None
    ready: bool
    deleting: bool
    waiting_reasons: tuple[str, ...] = ()
    waiting_message: str = ""
    restart_count: int = 0
    job_name: str | None = None


def observe_pod(pod: dict[str, Any]) -> PodObservation:
    meta = pod["metadata"]
    labels = meta.get("labels") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    image = next(
        (
            c.get("image", "")
            for c in spec.get("containers") or []
            if c.get("name") == CONTAINER_NAME
        ),
        "",
    )
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    waiting = [s.get("state", {}).get("waiting") or {} for s in statuses]
    return PodObservation(
        name=meta["name"],
        image=image,
        created_at=parse_time(meta.get("creationTimestamp")),
        ready=_condition(status.get("conditions") or [], "Ready") is not None,
        deleting=meta.get("deletionTimestamp") is not None,
        waiting_reasons=tuple(w["reason"] for w in waiting if w.get("reason")),
        waiting_message=next((w["message"] for w in waiting if w.get("message")), ""),
        restart_count=sum(int(s.get("restartCount", 0)) for s in statuses),
        job_name=next((labels[k] for k in JOB_NAME_LABELS if k in labels), None),
    )


@dataclass(frozen=True)
class Observed:
    """Everything one reconcile pass read from the cluster for one ItemService."""

    secret: SecretState
    deployment: DeploymentObservation | None = None
    jobs: tuple[JobObservation, ...] = ()
    pods: tuple[PodObservation, ...] = ()
    job_pods: tuple[PodObservation, ...] = ()
    # Desired-hash annotation of each supporting object by kind; absent key = object absent.
    owned_hashes: dict[str, str | None] = field(default_factory=dict)
    # "Kind/name" of objects we would manage that exist but another owner controls.
    conflicts: tuple[str, ...] = ()


def controlled_by(obj: dict[str, Any], uid: str) -> bool:
    """True when `obj`'s controller ownerReference points at the ItemService with `uid`."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("controller") and ref.get("uid") == uid for ref in refs)
