"""What the cluster looks like, reduced to the facts the decision layer needs.

Parsers take raw API dicts (as lightkube's `.to_dict()` or a test fixture gives them) and return
small frozen records, so the decision layer never digs through nested dicts.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from items_operator.analysis import RequestSample
from items_operator.constants import (
    ANNOTATION_DESIRED_HASH,
    ANNOTATION_FAILURE,
    ANNOTATION_IMAGE,
    ANNOTATION_IMAGE_ID,
    ANNOTATION_MIGRATION_REPORT,
    ANNOTATION_PROTECT_DIGEST,
    ANNOTATION_RELEASE_IMAGE,
    ANNOTATION_ROLLED_BACK_RELEASE,
    CONTAINER_NAME,
    FIELD_MANAGER,
    JOB_NAME_LABELS,
    LABEL_MANAGED_BY,
    LABEL_MIGRATION_KEY,
    LABEL_RELEASE,
)
from items_operator.containers import ServiceContainer, observe_service_container, parse_time
from items_operator.schema_floor import MigrationReport, parse_report


class SecretState(enum.Enum):
    PRESENT = "Present"
    MISSING = "Missing"
    KEY_MISSING = "KeyMissing"


def secret_state(secret: dict[str, Any] | None, key: str) -> SecretState:
    if secret is None:
        return SecretState.MISSING
    data = {**(secret.get("data") or {}), **(secret.get("stringData") or {})}
    return SecretState.PRESENT if data.get(key) else SecretState.KEY_MISSING


def secret_value_digest(secret: dict[str, Any] | None, key: str) -> str | None:
    """A short digest of the database URL: enough to notice a new target, never the value."""
    if secret is None:
        return None
    value = {**(secret.get("data") or {}), **(secret.get("stringData") or {})}.get(key)
    if not value:
        return None
    return hashlib.sha256(str(value).encode()).hexdigest()[:16]


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
    migration_key: str = ""
    # Created without an ownerReference; adopted (owner set, image ID and report copied from
    # its pod) once finished.
    adopted: bool = True
    image_id: str = ""
    report: MigrationReport | None = None
    protect_digest: str = ""

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
        migration_key=(meta.get("labels") or {}).get(LABEL_MIGRATION_KEY, ""),
        adopted=any(ref.get("controller") for ref in meta.get("ownerReferences") or []),
        image_id=annotations.get(ANNOTATION_IMAGE_ID, ""),
        report=parse_report(annotations.get(ANNOTATION_MIGRATION_REPORT)),
        protect_digest=annotations.get(ANNOTATION_PROTECT_DIGEST, ""),
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
    # Only when the controller has seen the latest spec: a deadline left from the previous
    # template says nothing about this one.
    progress_deadline_exceeded: bool
    # When the controller said so (its Progressing condition's lastTransitionTime).
    progress_deadline_at: datetime | None = None
    release: str | None = None  # the template's release label; None for a legacy Deployment
    paused: bool = False
    rolled_back_release: str | None = None
    template: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def caught_up(self) -> bool:
        return self.observed_generation >= self.generation

    @property
    def rollout_complete(self) -> bool:
        """Every pod runs the current template and is ready and available (no old pods left)."""
        return (
            self.caught_up
            and self.updated_replicas == self.replicas
            and self.status_replicas == self.replicas
            and self.ready_replicas >= self.replicas
            and self.available_replicas >= self.replicas
        )


def container_image(template: dict[str, Any]) -> str:
    containers = (template.get("spec") or {}).get("containers") or []
    return next((c.get("image", "") for c in containers if c.get("name") == CONTAINER_NAME), "")


def observe_deployment(deployment: dict[str, Any]) -> DeploymentObservation:
    meta = deployment["metadata"]
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    annotations = meta.get("annotations") or {}
    template = spec.get("template") or {}
    progressing: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {}
    )
    generation = int(meta.get("generation", 0))
    observed_generation = int(status.get("observedGeneration", 0))
    return DeploymentObservation(
        image=container_image(template),
        desired_hash=annotations.get(ANNOTATION_DESIRED_HASH),
        generation=generation,
        observed_generation=observed_generation,
        replicas=int(spec.get("replicas", 1)),
        status_replicas=int(status.get("replicas", 0)),
        updated_replicas=int(status.get("updatedReplicas", 0)),
        ready_replicas=int(status.get("readyReplicas", 0)),
        available_replicas=int(status.get("availableReplicas", 0)),
        progress_deadline_exceeded=observed_generation >= generation
        and progressing.get("status") == "False"
        and progressing.get("reason") == "ProgressDeadlineExceeded",
        progress_deadline_at=parse_time(progressing.get("lastTransitionTime")),
        release=((template.get("metadata") or {}).get("labels") or {}).get(LABEL_RELEASE),
        paused=bool(spec.get("paused")),
        rolled_back_release=annotations.get(ANNOTATION_ROLLED_BACK_RELEASE),
        template=template,
    )


@dataclass(frozen=True)
class RevisionObservation:
    """A stored release (ControllerRevision)."""

    name: str
    revision: int
    release: str
    image: str
    migration_key: str
    template: dict[str, Any] = field(compare=False)
    image_id: str = ""
    report: MigrationReport | None = field(default=None, compare=False)


def observe_revision(obj: dict[str, Any]) -> RevisionObservation | None:
    meta = obj["metadata"]
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    template = (obj.get("data") or {}).get("template")
    if not isinstance(template, dict) or LABEL_RELEASE not in labels:
        return None  # not one of ours, or damaged: never served from
    return RevisionObservation(
        name=meta["name"],
        revision=int(obj.get("revision", 0)),
        release=labels[LABEL_RELEASE],
        image=annotations.get(ANNOTATION_RELEASE_IMAGE, ""),
        migration_key=labels.get(LABEL_MIGRATION_KEY, ""),
        template=template,
        image_id=annotations.get(ANNOTATION_IMAGE_ID, ""),
        report=parse_report(annotations.get(ANNOTATION_MIGRATION_REPORT)),
    )


class PodPhase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


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
    release: str | None = None
    phase: PodPhase = PodPhase.RUNNING
    # API-server/kubelet timestamps: when the service container (last) started, and when the
    # Ready condition last changed (a pod that was ready and lost it starts a fresh window).
    started_at: datetime | None = None
    ready_changed_at: datetime | None = None
    unschedulable: str | None = None  # the scheduler's message while it cannot place the pod
    # The service container's image ID (a repository digest when pulled from a registry) and
    # its termination message (the migrator's report, on migration pods).
    image_id: str = ""
    termination_message: str = ""
    # /readyz body of an unready running pod, read through the API server (kube.py), if read.
    readiness_checks: dict[str, str] = field(default_factory=dict, compare=False)
    # When the current container first answered /readyz at all (any status), as the operator's
    # reads saw it (kube_proxy.py, the API server's clock); None: not yet, or not read.
    answered_at: datetime | None = field(default=None, compare=False)
    # When it first answered /readyz ready (200) to those reads: its server was ready then,
    # whether or not the kubelet's probe saw it (verdict.window_start).
    ready_answered_at: datetime | None = field(default=None, compare=False)
    # The service container's terminations and startup probe (containers.py).
    container: ServiceContainer = field(default_factory=ServiceContainer)
    uid: str = ""
    # Item API requests served since the canary analysis first read this pod (kube.py), and
    # when that was (the API server's clock).
    requests: RequestSample | None = field(default=None, compare=False)
    requests_since: datetime | None = field(default=None, compare=False)

    @property
    def counts(self) -> bool:
        """Terminating and finished (evicted, preempted, completed) pods serve nothing."""
        return not self.deleting and self.phase not in (PodPhase.SUCCEEDED, PodPhase.FAILED)

    @property
    def started(self) -> bool:
        return self.started_at is not None

    @property
    def readiness_polled(self) -> bool:
        """Its /readyz is read every pass (kube_proxy.with_readiness): what it says can change
        with no event on the pod, so a pass that sees one polls."""
        return self.counts and self.started and not self.ready

    def answered_by(self, when: datetime) -> bool:
        """Its server was up by `when`: it answered /readyz, or has been Ready since it started."""
        was_ready = self.ready or self.lost_readiness
        return was_ready or (self.answered_at is not None and self.answered_at <= when)

    @property
    def lost_readiness(self) -> bool:
        """It was ready since its container started, and is not now (not merely starting)."""
        return (
            not self.ready
            and self.started_at is not None
            and self.ready_changed_at is not None
            and self.ready_changed_at > self.started_at
        )


def _main_container_start(status: dict[str, Any]) -> datetime | None:
    for container in status.get("containerStatuses") or []:
        if container.get("name") != CONTAINER_NAME:
            continue
        running = (container.get("state") or {}).get("running") or {}
        return parse_time(running.get("startedAt"))
    return None


def _main_container(status: dict[str, Any]) -> dict[str, Any]:
    return next(
        (c for c in status.get("containerStatuses") or [] if c.get("name") == CONTAINER_NAME), {}
    )


def observe_pod(pod: dict[str, Any]) -> PodObservation:
    meta = pod["metadata"]
    labels = meta.get("labels") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    waiting = [s.get("state", {}).get("waiting") or {} for s in statuses]
    ready_condition: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
    scheduled: dict[str, Any] = next((c for c in conditions if c.get("type") == "PodScheduled"), {})
    unschedulable = (
        str(scheduled.get("message") or "Unschedulable")
        if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"
        else None
    )
    try:
        phase = PodPhase(status.get("phase") or "Pending")
    except ValueError:
        phase = PodPhase.UNKNOWN
    return PodObservation(
        name=meta["name"],
        uid=str(meta.get("uid") or ""),
        image=_pod_image(spec),
        created_at=parse_time(meta.get("creationTimestamp")),
        ready=ready_condition.get("status") == "True",
        deleting=meta.get("deletionTimestamp") is not None,
        waiting_reasons=tuple(w["reason"] for w in waiting if w.get("reason")),
        waiting_message=next((w["message"] for w in waiting if w.get("message")), ""),
        restart_count=sum(int(s.get("restartCount", 0)) for s in statuses),
        job_name=next((labels[k] for k in JOB_NAME_LABELS if k in labels), None),
        release=labels.get(LABEL_RELEASE),
        phase=phase,
        started_at=_main_container_start(status),
        ready_changed_at=parse_time(ready_condition.get("lastTransitionTime")),
        unschedulable=unschedulable,
        container=observe_service_container(spec, status),
        image_id=str(_main_container(status).get("imageID") or ""),
        termination_message=str(
            ((_main_container(status).get("state") or {}).get("terminated") or {}).get("message")
            or ""
        ),
    )


def _pod_image(spec: dict[str, Any]) -> str:
    return container_image({"spec": spec})


@dataclass(frozen=True)
class Observed:
    """Everything one reconcile pass read from the cluster for one ItemService."""

    secret: SecretState
    deployment: DeploymentObservation | None = None
    revisions: tuple[RevisionObservation, ...] = ()
    # Digest of the database URL in the Secret (part of the release), None when unreadable.
    secret_digest: str | None = None
    jobs: tuple[JobObservation, ...] = ()
    pods: tuple[PodObservation, ...] = ()
    job_pods: tuple[PodObservation, ...] = ()
    # Desired-hash annotation of each supporting object by kind; absent key = object absent.
    owned_hashes: dict[str, str | None] = field(default_factory=dict)
    # "Kind/name" of objects we would manage that exist but another owner controls.
    conflicts: tuple[str, ...] = ()
    # resourceVersion of each object a Plan may write, by (kind, name): the I/O layer tells a
    # lagging cache by it (handlers.py); the decision layer never reads it.
    versions: dict[tuple[str, str], str] = field(default_factory=dict, compare=False)
    # The operator-upgrade wave (fleet.py) lets this ItemService start such a rollout now; and
    # what the wave is doing, for the message of one that waits.
    upgrade_slot: bool = True
    upgrade_halted: bool = False
    upgrade_wave: str = ""


def controlled_by(obj: dict[str, Any], uid: str) -> bool:
    """True when `obj`'s controller ownerReference points at the ItemService with `uid`."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("controller") and ref.get("uid") == uid for ref in refs)


def owns_job(job: dict[str, Any], uid: str) -> bool:
    """Ours: controlled by this ItemService, or not yet adopted (created without an owner, so a
    deletion cannot kill it mid-DDL) and labelled as our migration (the list selects on the
    instance label; managed-by tells ours from someone else's Job)."""
    refs = [r for r in job.get("metadata", {}).get("ownerReferences") or [] if r.get("controller")]
    if refs:
        return controlled_by(job, uid)
    labels = job.get("metadata", {}).get("labels") or {}
    return labels.get(LABEL_MANAGED_BY) == FIELD_MANAGER
