"""The decision layer: (ItemService, what the cluster shows, now) -> Plan. Pure; no I/O.

One pass, in order:
1. paused: report only.
2. supporting objects (ServiceAccount, Service, PDB) converge by desired-hash.
3. the database Secret must exist with its key, or nothing new starts (Degraded).
4. rollout guard: if the Deployment runs an image not yet proven good, promote it when every pod
   is ready, or roll it back to lastGoodImage on the first sign it will not get there.
5. target flow for spec.image: blocked if it was rolled back; else migrate (one Job at a time,
   waiting for a superseded one to end), then update the Deployment.
Every write is conditional on a difference, so a steady-state pass yields an empty Plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from items_operator.constants import ANNOTATION_DESIRED_HASH
from items_operator.failures import Failure, classify_waiting, detect_rollout_failure
from items_operator.model import ItemService
from items_operator.observe import (
    DeploymentObservation,
    JobObservation,
    JobState,
    Observed,
    SecretState,
)
from items_operator.specs.common import migration_job_name
from items_operator.specs.deployment import build_deployment
from items_operator.specs.job import build_migration_job
from items_operator.specs.pdb import build_pdb
from items_operator.specs.service import build_service
from items_operator.specs.serviceaccount import build_service_account
from items_operator.status import (
    ConditionType,
    Outcome,
    Phase,
    get_condition,
    record_revision,
    set_condition,
    timestamp,
)

# Seconds until the next pass when nothing wakes the loop earlier. Rollouts poll fast so a broken
# image is rolled back within the readiness window plus one interval.
ROLLOUT_POLL = 2.0
MIGRATION_POLL = 5.0
RETRY_POLL = 15.0
IDLE_POLL = 60.0


@dataclass(frozen=True)
class Apply:
    """Server-side apply of a desired object (the handler skips nothing; the plan already did)."""

    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


@dataclass(frozen=True)
class CreateJob:
    obj: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


@dataclass(frozen=True)
class FailJob:
    """End a migration Job now (activeDeadlineSeconds -> 1) because its pod cannot start.

    Without this an unpullable image would sit in "Migrating" for the whole deadline; the failed
    Job then stays as the record, with `note` saying why.
    """

    name: str
    note: str


@dataclass(frozen=True)
class Delete:
    kind: str
    name: str
    # Background: the Job's pods go too, without blocking this pass on their termination.
    propagation: Literal["Background", "Foreground"] = "Background"


Action = Apply | CreateJob | FailJob | Delete


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    events: tuple[Event, ...]
    status: dict[str, Any]
    requeue_after: float
    # For metrics: the failure that caused a rollback this pass, if any.
    rolled_back: Failure | None = None
    migration_finished: JobObservation | None = None


@dataclass
class _Pass:
    """Mutable scratch state of one decide() call; turned into a frozen Plan at the end."""

    cr: ItemService
    now: datetime
    conditions: list[dict[str, Any]]
    history: list[dict[str, Any]]
    last_good: str | None
    failed_image: str | None
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    rolled_back: Failure | None = None
    migration_finished: JobObservation | None = None

    def condition(
        self, type_: ConditionType, status: bool | None, reason: str, message: str
    ) -> None:
        self.conditions = set_condition(
            self.conditions,
            type_=str(type_),
            status=status,
            reason=reason,
            message=message,
            generation=self.cr.generation,
            now=self.now,
        )

    def revision(self, image: str, *, start_new: bool = False, **changes: Any) -> None:
        self.history = record_revision(
            self.history,
            image=image,
            limit=self.cr.spec.revision_history_limit,
            start_new=start_new,
            **changes,
        )

    def event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def prior_reason(self, type_: ConditionType) -> str | None:
        previous = get_condition(list(self.cr.status.get("conditions") or []), str(type_))
        return None if previous is None else str(previous.get("reason"))


def decide(cr: ItemService, observed: Observed, now: datetime) -> Plan:
    p = _Pass(
        cr=cr,
        now=now,
        conditions=list(cr.status.get("conditions") or []),
        history=list(cr.status.get("history") or []),
        last_good=cr.status.get("lastGoodImage"),
        failed_image=cr.status.get("failedImage"),
    )
    spec, target, dep = cr.spec, cr.spec.image, observed.deployment

    if spec.paused:
        p.condition(
            ConditionType.PROGRESSING,
            False,
            "Paused",
            "spec.paused is true: no migration, rollout or rollback is started",
        )
        phase = Phase(cr.status.get("phase", Phase.PENDING))
        return _finish(p, observed, phase, serving=dep.image if dep else None, requeue=IDLE_POLL)

    if observed.conflicts:
        return _conflict(p, observed)

    _converge_supporting_objects(p, observed)

    if observed.secret is not SecretState.PRESENT:
        return _secret_unusable(p, observed)

    _prune_finished_jobs(p, observed.jobs)
    _fail_stuck_jobs(p, observed)

    serving = dep.image if dep else None
    if dep is not None and serving is not None and serving != p.last_good:
        serving = _guard_unproven_rollout(p, observed, dep, serving)

    if p.failed_image is not None and p.failed_image != target:
        p.failed_image = None  # the spec names a different image: the block is lifted
    blocked = p.failed_image == target or (
        dep is not None
        and dep.rolled_back_image == target
        and dep.rolled_back_generation == cr.generation
    )

    if blocked and serving != target:
        p.failed_image = target  # restores the memory if only the Deployment annotation had it
        return _hold_blocked_image(p, observed, dep, serving)
    if serving == target and dep is not None:
        return _track_target_rollout(p, observed, dep)
    return _migrate_then_deploy(p, observed, dep, serving)


def _converge_supporting_objects(p: _Pass, observed: Observed) -> None:
    owner, spec = p.cr.owner, p.cr.spec
    desired = [build_service_account(owner, spec), build_service(owner, spec)]
    pdb = build_pdb(owner, spec)
    if pdb is not None:
        desired.append(pdb)
    elif "PodDisruptionBudget" in observed.owned_hashes:
        p.actions.append(Delete("PodDisruptionBudget", owner.name))
    for obj in desired:
        if observed.owned_hashes.get(obj["kind"]) != _hash_of(obj):
            p.actions.append(Apply(obj))


def _hash_of(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["annotations"][ANNOTATION_DESIRED_HASH])


def _apply_deployment_if_changed(
    p: _Pass, dep: DeploymentObservation | None, desired: dict[str, Any]
) -> None:
    if dep is None or dep.desired_hash != _hash_of(desired):
        p.actions.append(Apply(desired))


def _secret_unusable(p: _Pass, observed: Observed) -> Plan:
    ref = p.cr.spec.database.secret_ref
    if observed.secret is SecretState.MISSING:
        reason = "SecretNotFound"
        message = (
            f"Secret {p.cr.owner.namespace}/{ref.name} not found: "
            f"create it with key {ref.key!r} holding the DATABASE_URL"
        )
    else:
        reason = "SecretKeyMissing"
        message = (
            f"Secret {p.cr.owner.namespace}/{ref.name} has no key {ref.key!r}: add the "
            "DATABASE_URL under that key or fix spec.database.secretRef.key"
        )
    if p.prior_reason(ConditionType.PROGRESSING) != reason:
        p.event("Warning", reason, message)
    p.condition(ConditionType.PROGRESSING, False, reason, message)
    dep = observed.deployment
    return _finish(
        p,
        observed,
        Phase.DEGRADED,
        serving=dep.image if dep else None,
        requeue=RETRY_POLL,
        message=message,
    )


def _conflict(p: _Pass, observed: Observed) -> Plan:
    """Never take over objects someone else created under our names; say what is in the way."""
    names = ", ".join(observed.conflicts)
    message = (
        f"{names} already exist(s) and is not controlled by this ItemService: "
        "delete or rename it; nothing is changed until then"
    )
    if p.prior_reason(ConditionType.PROGRESSING) != "ObjectConflict":
        p.event("Warning", "ObjectConflict", message)
    p.condition(ConditionType.PROGRESSING, False, "ObjectConflict", message)
    return _finish(p, observed, Phase.DEGRADED, serving=None, requeue=RETRY_POLL, message=message)


def _prune_finished_jobs(p: _Pass, jobs: tuple[JobObservation, ...]) -> None:
    """Keep the newest migration.historyLimit finished Jobs (always the target's); delete older."""
    target_job = migration_job_name(p.cr.owner.name, p.cr.spec.image)
    finished = [j for j in jobs if j.finished and j.name != target_job]
    finished.sort(
        key=lambda j: (j.finished_at or datetime.min.replace(tzinfo=p.now.tzinfo), j.name),
        reverse=True,
    )
    keep = p.cr.spec.migration.history_limit - sum(
        1 for j in jobs if j.finished and j.name == target_job
    )
    for job in finished[max(keep, 0) :]:
        p.actions.append(Delete("Job", job.name))


def _fail_stuck_jobs(p: _Pass, observed: Observed) -> None:
    """Fail fast a running migration whose pod cannot start (image pull, missing config)."""
    for job in observed.jobs:
        if job.state is not JobState.ACTIVE:
            continue
        pods = (pod for pod in observed.job_pods if pod.job_name == job.name)
        failure = next(
            (f for pod in pods if (f := classify_waiting(pod, now=p.now)) is not None), None
        )
        if failure is not None:
            note = failure.describe(job.image)
            p.actions.append(FailJob(job.name, note))
            p.event("Warning", "MigrationPodFailed", f"ending migration Job {job.name}: {note}")


def _rollout_failure(
    p: _Pass, observed: Observed, dep: DeploymentObservation, image: str
) -> Failure | None:
    return detect_rollout_failure(
        image=image,
        deployment=dep,
        pods=observed.pods,
        now=p.now,
        readiness_timeout=timedelta(seconds=p.cr.spec.rollout.readiness_timeout_seconds),
    )


def _guard_unproven_rollout(
    p: _Pass, observed: Observed, dep: DeploymentObservation, serving: str
) -> str:
    """Promote or roll back the image the Deployment runs; return the image it will run."""
    spec, owner = p.cr.spec, p.cr.owner
    if dep.rollout_complete:
        p.last_good = serving
        if p.failed_image == serving:
            p.failed_image = None
        p.revision(serving, outcome=Outcome.AVAILABLE, rolledOutAt=timestamp(p.now))
        p.event(
            "Normal",
            "RolloutComplete",
            f"{serving}: all {dep.replicas} replicas ready and available",
        )
        return serving
    failure = _rollout_failure(p, observed, dep, serving)
    if failure is None:
        return serving
    if p.last_good is None:
        # Nothing to go back to: leave the pods (the failure stays visible) and stop retrying.
        if p.failed_image != serving and serving == spec.image:
            p.failed_image = serving
            message = (
                f"rollout of {failure.describe(serving)}; no earlier good image to roll back to"
            )
            p.revision(serving, outcome=Outcome.ROLLOUT_FAILED, message=message)
            p.event("Warning", "RolloutFailed", message)
        return serving
    message = f"rolled back from {failure.describe(serving)}; now serving {p.last_good}"
    p.actions.append(
        Apply(
            build_deployment(
                owner,
                spec,
                image=p.last_good,
                rolled_back_image=serving,
                rolled_back_generation=p.cr.generation,
            )
        )
    )
    if serving == spec.image:
        p.failed_image = serving
    p.revision(serving, outcome=Outcome.ROLLED_BACK, message=message)
    p.condition(ConditionType.ROLLED_BACK, True, failure.kind.value, message)
    p.event("Warning", "RolledBack", message)
    p.rolled_back = failure
    return p.last_good


def _hold_blocked_image(
    p: _Pass, observed: Observed, dep: DeploymentObservation | None, serving: str | None
) -> Plan:
    """spec.image was rolled back: keep serving lastGoodImage until the spec names another."""
    target = p.cr.spec.image
    if dep is not None and serving is not None and p.rolled_back is None:
        desired = build_deployment(
            p.cr.owner,
            p.cr.spec,
            image=serving,
            rolled_back_image=dep.rolled_back_image,
            rolled_back_generation=dep.rolled_back_generation,
        )
        _apply_deployment_if_changed(p, dep, desired)
    rolled_back = get_condition(p.conditions, str(ConditionType.ROLLED_BACK))
    if rolled_back is None or rolled_back.get("status") != "True":
        # Known only from the Deployment's annotation (the status patch was lost): restate it.
        p.condition(ConditionType.ROLLED_BACK, True, "RolledBack", f"{target} was rolled back")
        rolled_back = get_condition(p.conditions, str(ConditionType.ROLLED_BACK))
    detail = str((rolled_back or {}).get("message"))
    message = f"{detail}. {target} is not retried until spec.image names a different image"
    if p.last_good is None:
        p.condition(ConditionType.PROGRESSING, False, "RolloutFailed", message)
        return _finish(
            p, observed, Phase.FAILED, serving=serving, requeue=IDLE_POLL, message=message
        )
    p.condition(ConditionType.PROGRESSING, False, "RolledBack", message)
    return _finish(
        p, observed, Phase.ROLLED_BACK, serving=serving, requeue=IDLE_POLL, message=message
    )


def _track_target_rollout(p: _Pass, observed: Observed, dep: DeploymentObservation) -> Plan:
    """The Deployment runs spec.image: keep it converged and report how the rollout goes."""
    spec, target = p.cr.spec, p.cr.spec.image
    _apply_deployment_if_changed(p, dep, build_deployment(p.cr.owner, spec, image=target))
    job = migration_job_name(p.cr.owner.name, target)
    p.condition(
        ConditionType.MIGRATION_SUCCEEDED,
        True,
        "Migrated",
        f"schema migrated for {target} (Job {job})",
    )
    if p.failed_image != target:
        p.condition(
            ConditionType.ROLLED_BACK, False, "NotRolledBack", f"{target} was not rolled back"
        )
    if p.last_good == target and dep.rollout_complete:
        message = f"{target}: {dep.ready_replicas}/{spec.replicas} replicas ready"
        p.condition(ConditionType.PROGRESSING, False, "RolloutComplete", message)
        return _finish(
            p, observed, Phase.AVAILABLE, serving=target, requeue=IDLE_POLL, message=message
        )
    if p.last_good == target:
        # A proven image that lost pods (node loss, a template-only change, scaling): report, do
        # not roll back — the image itself has been good.
        failure = _rollout_failure(p, observed, dep, target)
        if failure is not None:
            message = failure.describe(target)
            if p.prior_reason(ConditionType.PROGRESSING) != failure.kind.value:
                p.event("Warning", failure.kind.value, message)
            p.condition(ConditionType.PROGRESSING, False, failure.kind.value, message)
            return _finish(
                p, observed, Phase.DEGRADED, serving=target, requeue=MIGRATION_POLL, message=message
            )
    if p.failed_image == target:
        # First rollout ever failed and there is no good image to return to.
        detail = next(
            (str(e.get("message")) for e in reversed(p.history) if e.get("image") == target), ""
        )
        message = f"{detail}. {target} is not retried until spec.image names a different image"
        p.condition(ConditionType.PROGRESSING, False, "RolloutFailed", message)
        return _finish(
            p, observed, Phase.FAILED, serving=target, requeue=IDLE_POLL, message=message
        )
    message = (
        f"rolling out {target}: {dep.updated_replicas} updated, "
        f"{dep.ready_replicas}/{spec.replicas} ready"
    )
    p.condition(ConditionType.PROGRESSING, True, "RollingOut", message)
    if p.last_good != target:
        p.revision(target, outcome=Outcome.ROLLING_OUT)
    return _finish(
        p, observed, Phase.ROLLING_OUT, serving=target, requeue=ROLLOUT_POLL, message=message
    )


def _migrate_then_deploy(
    p: _Pass, observed: Observed, dep: DeploymentObservation | None, serving: str | None
) -> Plan:
    """spec.image is not deployed yet: run its migration, and deploy it once that succeeded."""
    spec, owner, target = p.cr.spec, p.cr.owner, p.cr.spec.image
    job_name = migration_job_name(owner.name, target)
    job = next((j for j in observed.jobs if j.name == job_name), None)
    others = [j for j in observed.jobs if j.state is JobState.ACTIVE and j.name != job_name]
    if p.rolled_back is None:
        p.condition(
            ConditionType.ROLLED_BACK, False, "NotRolledBack", f"{target} was not rolled back"
        )

    if job is not None and job.state is JobState.SUCCEEDED:
        p.actions.append(Apply(build_deployment(owner, spec, image=target)))
        p.condition(
            ConditionType.MIGRATION_SUCCEEDED,
            True,
            "Migrated",
            f"schema migrated for {target} (Job {job_name})",
        )
        message = f"migration Job {job_name} succeeded; rolling out {target}"
        p.condition(ConditionType.PROGRESSING, True, "RollingOut", message)
        p.revision(
            target,
            start_new=True,
            migrationJob=job_name,
            outcome=Outcome.ROLLING_OUT,
            migratedAt=timestamp(job.finished_at or p.now),
        )
        p.event("Normal", "RolloutStarted", message)
        p.migration_finished = job
        return _finish(
            p, observed, Phase.ROLLING_OUT, serving=target, requeue=ROLLOUT_POLL, message=message
        )

    # The running version keeps serving whatever happens below; keep its Deployment converged.
    if dep is not None and serving is not None and p.rolled_back is None:
        desired = build_deployment(
            owner,
            spec,
            image=serving,
            rolled_back_image=dep.rolled_back_image,
            rolled_back_generation=dep.rolled_back_generation,
        )
        _apply_deployment_if_changed(p, dep, desired)

    if job is not None and job.state is JobState.FAILED:
        message = (
            f"migration Job {job_name} for {target} failed ({job.reason or 'Failed'}"
            f"{': ' + detail if (detail := job.failure_note or job.message) else ''}); "
            "nothing was rolled out"
            f"{' and ' + serving + ' keeps serving' if serving else ''}. "
            f"Read kubectl logs job/{job_name}; delete that Job to retry, "
            "or set a different spec.image"
        )
        if (
            p.prior_reason(ConditionType.MIGRATION_SUCCEEDED) != "MigrationFailed"
            or p.cr.status.get("migrationJob") != job_name
        ):
            p.event("Warning", "MigrationFailed", message)
            p.migration_finished = job
        p.condition(ConditionType.MIGRATION_SUCCEEDED, False, "MigrationFailed", message)
        p.condition(ConditionType.PROGRESSING, False, "MigrationFailed", message)
        p.revision(
            target,
            start_new=True,
            migrationJob=job_name,
            outcome=Outcome.MIGRATION_FAILED,
            message=message,
        )
        return _finish(
            p,
            observed,
            Phase.FAILED,
            serving=serving,
            requeue=IDLE_POLL,
            message=message,
            migration_job=job_name,
        )

    if job is None and others:
        # Waiting, not deleting: MySQL DDL is not transactional, so killing a migration midway
        # can leave a half-applied revision. The old Job is bounded by its activeDeadlineSeconds.
        running = ", ".join(f"{j.name} ({j.image})" for j in others)
        message = (
            f"waiting for superseded migration Job {running} to finish before migrating {target}"
        )
        p.condition(ConditionType.MIGRATION_SUCCEEDED, None, "WaitingForPreviousMigration", message)
        p.condition(ConditionType.PROGRESSING, True, "WaitingForPreviousMigration", message)
        p.revision(target, start_new=True, outcome=Outcome.MIGRATING)
        return _finish(
            p, observed, Phase.MIGRATING, serving=serving, requeue=MIGRATION_POLL, message=message
        )

    if job is None:
        p.actions.append(CreateJob(build_migration_job(owner, spec, image=target)))
        p.event("Normal", "MigrationStarted", f"migration Job {job_name} started for {target}")
    message = f"migrating the schema for {target} (Job {job_name})"
    p.condition(ConditionType.MIGRATION_SUCCEEDED, None, "MigrationRunning", message)
    p.condition(ConditionType.PROGRESSING, True, "Migrating", message)
    p.revision(target, start_new=True, migrationJob=job_name, outcome=Outcome.MIGRATING)
    return _finish(
        p,
        observed,
        Phase.MIGRATING,
        serving=serving,
        requeue=MIGRATION_POLL,
        message=message,
        migration_job=job_name,
    )


def _finish(
    p: _Pass,
    observed: Observed,
    phase: Phase,
    *,
    serving: str | None,
    requeue: float,
    message: str | None = None,
    migration_job: str | None = None,
) -> Plan:
    """Fill the Ready condition and the flat status fields, and freeze the Plan."""
    spec, dep = p.cr.spec, observed.deployment
    ready = dep.ready_replicas if dep else 0
    if dep is None:
        p.condition(
            ConditionType.READY,
            False,
            "NoDeployment",
            "nothing serves yet: the first image is not rolled out",
        )
    elif ready >= spec.replicas:
        p.condition(
            ConditionType.READY, True, "AllReplicasReady", f"{ready}/{spec.replicas} replicas ready"
        )
    else:
        p.condition(
            ConditionType.READY,
            False,
            "ReplicasNotReady",
            f"{ready}/{spec.replicas} replicas ready",
        )
    if message is None:
        progressing = get_condition(p.conditions, str(ConditionType.PROGRESSING))
        message = str(progressing.get("message", "")) if progressing else ""

    status: dict[str, Any] = {
        "observedGeneration": p.cr.generation,
        "phase": str(phase),
        "message": message,
        "targetImage": spec.image,
        "readyReplicas": ready,
        "replicas": spec.replicas,
        "conditions": p.conditions,
        "history": p.history,
    }
    optional: dict[str, str | None] = {
        "currentImage": serving,
        "lastGoodImage": p.last_good,
        "failedImage": p.failed_image,
        "migrationJob": migration_job or p.cr.status.get("migrationJob"),
    }
    status.update({k: v for k, v in optional.items() if v is not None})
    return Plan(
        actions=tuple(p.actions),
        events=tuple(p.events),
        status=status,
        requeue_after=requeue,
        rolled_back=p.rolled_back,
        migration_finished=p.migration_finished,
    )
