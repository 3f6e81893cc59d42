"""The decision layer: (ItemService, what the cluster shows, now) -> Plan. Pure; no I/O.

A pass is a guard chain (cloudnative-pg style): each step either names the situation the pass
ends in (a policy.Reason) or passes; the first situation wins. The policy for a situation
(phase, conditions, wake-up, event) is its row in policy.TABLE. Order matters and is the policy:

1. paused             the Deployment is paused too; nothing starts; the verdict clock stops
2. requested rollback a person named a stored revision (annotation rollback-to): serve it
3. verdict            the serving release, if unproven: promote, roll back, or hold (a fault of
                      the environment, capacity); runs before anything that could fail
4. conflicts, Secret  reported; the serving release keeps serving (re-created if deleted)
5. blocked release    the spec's release was rolled back: hold until the spec changes
6. target serving     the spec's release runs: rolling out, available, scaled to zero, degraded
7. migrate, deploy    migrate when image or database changed, then roll the release out

Writes: one desired state per owned object (plan.Desired); the Deployment defaults to the
release it serves (so a deleted one comes back), and a step may replace that decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from items_operator.canary import EVENT_ENDED, EVENT_INCONCLUSIVE, INCONCLUSIVE
from items_operator.constants import ANNOTATION_ALLOW_CONTRACT, LABEL_RELEASE
from items_operator.context import Pass
from items_operator.fleet import TRIGGER_OPERATOR
from items_operator.housekeeping import converge_supporting_objects, fail_stuck_jobs, hash_of, prune
from items_operator.migration import (
    adopt_finished_jobs,
    below_floor,
    current_protect_digest,
    job_outcome,
    migrated_template,
    protected,
    rollback_floor,
    unreachable_note,
)
from items_operator.model import ItemService
from items_operator.observe import (
    JobObservation,
    JobState,
    Observed,
    SecretState,
    container_image,
)
from items_operator.plan import Apply, Create, Delete, Plan
from items_operator.policy import TABLE, Reason
from items_operator.release import Release
from items_operator.specs.common import migration_job_name
from items_operator.specs.job import build_migration_job
from items_operator.specs.revision import build_controller_revision
from items_operator.status import Outcome, conditions_for, latest_entry, timestamp
from items_operator.verdict import HOLD_KINDS, Verdict, VerdictKind

NOT_RETRIED = "It is not retried until the spec names a different release"
# A pod of a proven release that lost readiness this recently is a blip, not a degradation.
BLIP_GRACE = timedelta(seconds=20)
# A pass woken for a deadline runs just after it (deadlines compare with >=), not half a
# second late: a 20 s window is judged at 20 s. "Again at once" still means half a second,
# time for the watches to report this pass's writes.
WAKE_MARGIN = 0.05
SOONEST_WAKE = 0.5


@dataclass(frozen=True)
class Situation:
    reason: Reason
    message: str


def decide(cr: ItemService, observed: Observed, now: datetime) -> Plan:
    p = Pass.start(cr, observed, now)
    p.keep_serving()
    converge_supporting_objects(p)
    adopt_finished_jobs(p)
    if not cr.spec.paused:
        prune(p)
        fail_stuck_jobs(p)
    situation = (
        _paused(p)
        or _requested_rollback(p)
        or _verdict(p)
        or _conflict(p)
        or _secret_unusable(p)
        or _blocked(p)
        or _target_serving(p)
        or _migrate_then_deploy(p)
    )
    return _finish(p, situation)


# -- steps, in order ----------------------------------------------------------------------------


def _paused(p: Pass) -> Situation | None:
    if not p.cr.spec.paused:
        if p.paused_at is not None:  # the clock restarts: time paused never counts
            p.window_floor, p.paused_at = p.now, None
        return None
    p.paused_at = p.paused_at or timestamp(p.now)
    serving = p.serving.label if p.serving else "nothing"
    return Situation(
        Reason.PAUSED,
        f"spec.paused is true: the rollout is paused (Deployment paused; {serving} serves); "
        "no migration, rollout or rollback starts until it is false",
    )


def _requested_rollback(p: Pass) -> Situation | None:
    number = p.cr.rollback_to
    if number is None:
        return None
    release = p.by_revision(number)
    if release is None:
        return Situation(
            Reason.REVISION_NOT_FOUND,
            f"annotation rollback-to names revision {number}, which is not stored: "
            "kubectl get controllerrevisions lists the stored ones; fix or remove the annotation",
        )
    if not _servable(p, release):
        return Situation(
            Reason.REVISION_NOT_SERVABLE,
            f"annotation rollback-to names {release.label}, which never served here and whose "
            "migration did not succeed: serving it could meet a schema it does not know; "
            "name a revision that was Available (status.history) or remove the annotation",
        )
    if (why := below_floor(p, release)) is not None:
        floor = rollback_floor(p)
        return Situation(
            Reason.REVISION_BELOW_FLOOR,
            f"annotation rollback-to names {release.label}, which the database as migrated no "
            f"longer serves: {why}; the oldest revision it serves is "
            f"{floor['revision'] if floor else 'none stored'} (status.rollbackFloor): name that "
            "or a newer one, or remove the annotation",
        )
    dep = p.deployment
    p.serve(release, rolled_back=dep.rolled_back_release if dep else None)
    message = (
        f"serving {release.label} as requested by the rollback-to annotation; remove it to roll "
        f"out the spec's revision {p.target.revision} again"
    )
    if dep is not None and dep.release == release.hash:
        verdict = p.judge(release.hash)
        if verdict.kind is VerdictKind.FAILED and verdict.failure is not None:
            # Reported, never acted on: a person chose this revision.
            return Situation(
                Reason.REQUESTED_REVISION_FAILING,
                f"{verdict.failure.describe(release.label)}; it serves because the rollback-to "
                "annotation asks for it: remove or change the annotation",
            )
    return Situation(Reason.ROLLBACK_REQUESTED, message)


def _servable(p: Pass, release: Release) -> bool:
    """A stored release may serve on request once it has served (proven here) or its schema
    is the serving release's or was migrated (a succeeded Job for its migration key)."""
    if release.hash in (p.last_good, p.serving.hash if p.serving else None):
        return True
    if any(e.get("release") == release.hash and e.get("rolledOutAt") for e in p.history):
        return True
    if p.serving is not None and p.serving.migration_key == release.migration_key:
        return True
    return any(
        j.migration_key == release.migration_key and j.state is JobState.SUCCEEDED
        for j in p.observed.jobs
    )


def _verdict(p: Pass) -> Situation | None:
    """Judge the release the Deployment serves, unless it is already proven."""
    dep, serving = p.deployment, p.serving
    if dep is None or serving is None or serving.hash == p.last_good or dep.paused:
        return None
    verdict = p.judge(serving.hash)
    is_target = serving.hash == p.target.hash
    if verdict.kind not in HOLD_KINDS:
        p.release_hold()
    match verdict.kind:
        case VerdictKind.PROVEN:
            p.last_good = serving.hash
            if p.failed == serving.hash:
                p.failed = None
            p.record(serving, outcome=Outcome.AVAILABLE, rolledOutAt=timestamp(p.now))
            if verdict.time_to_ready is not None:  # what the learned window reads (window.py)
                p.record(serving, timeToReadySeconds=verdict.time_to_ready)
            if verdict.analysis_outcome is not None:
                _end_analysis(p, serving, verdict.analysis_outcome)
            return None
        case VerdictKind.FAILED:
            return _roll_back(p, verdict)
        case VerdictKind.DEPENDENCY_UNAVAILABLE:
            p.hold()  # the clock stops; every window restarts when the dependency is back
            if not is_target:
                return None  # the spec moved on: its flow goes ahead, nothing is blamed
            return Situation(
                Reason.DEPENDENCY_UNAVAILABLE,
                f"rollout of {serving.label} holds since {p.held_since}: {verdict.detail}; the "
                "release is not blamed and is judged afresh once the dependency is back",
            )
        case VerdictKind.UNSCHEDULABLE:
            p.hold()
            if not is_target:
                return None
            return Situation(
                Reason.UNSCHEDULABLE,
                f"rollout of {serving.label} waits for capacity: {verdict.detail}",
            )
        case VerdictKind.IMAGE_PULL_TRANSIENT | VerdictKind.CONFIG_NOT_FOUND:
            p.hold()  # the kubelet retries (or a person creates the object): nothing is blamed
            if not is_target:
                return None
            return Situation(
                Reason(verdict.kind.value),
                f"rollout of {serving.label} holds since {p.held_since}: {verdict.detail}; the "
                "release is not blamed and is judged afresh once its pods can start",
            )
        case VerdictKind.WAITING:
            p.analysing_until = verdict.analysing_until
            p.analysis_awaiting = verdict.analysis_awaiting
            if verdict.analysis_outcome is not None:
                _end_analysis(p, serving, verdict.analysis_outcome)
    return None


def _end_analysis(p: Pass, serving: Release, outcome: str) -> None:
    """The canary passed (or had too little to judge): recorded, and the rest rolls out."""
    p.record(serving, analysis=outcome)
    p.keep_serving()  # re-applied without the canary's hold
    message = f"canary analysis of {serving.label} {outcome}"
    if outcome.startswith(INCONCLUSIVE):
        p.event("Warning", EVENT_INCONCLUSIVE, f"{message}; the rest rolls out unmeasured")
    else:
        p.event("Normal", EVENT_ENDED, message)


def _roll_back(p: Pass, verdict: Verdict) -> Situation | None:
    serving, failure = p.serving, verdict.failure
    assert serving is not None
    assert failure is not None
    last_good = p.release(p.last_good)
    p.failed = serving.hash
    if last_good is None:
        message = f"rollout of {failure.describe(serving.label)}; nothing earlier to roll back to"
        p.record(
            serving, outcome=Outcome.ROLLOUT_FAILED, reason=failure.kind.value, message=message
        )
        return Situation(Reason.ROLLOUT_FAILED, message) if serving.hash == p.target.hash else None
    message = f"rolled back from {failure.describe(serving.label)}; now serving {last_good.label}"
    p.serve(last_good, rolled_back=serving.hash)
    p.record(serving, outcome=Outcome.ROLLED_BACK, reason=failure.kind.value, message=message)
    p.rolled_back = failure
    return Situation(Reason.ROLLED_BACK, f"{message}. {NOT_RETRIED}")


def _conflict(p: Pass) -> Situation | None:
    """Never take over objects someone else created under our names; say what is in the way."""
    if not p.observed.conflicts:
        return None  # the conflicting objects themselves are dropped from every Plan (_finish)
    names = ", ".join(p.observed.conflicts)
    return Situation(
        Reason.OBJECT_CONFLICT,
        f"{names} already exist(s) and is not controlled by this ItemService: "
        "delete or rename it; the serving release is kept, nothing new starts until then",
    )


def _secret_unusable(p: Pass) -> Situation | None:
    ref, ns = p.cr.spec.database.secret_ref, p.cr.owner.namespace
    if p.observed.secret is SecretState.MISSING:
        return Situation(
            Reason.SECRET_NOT_FOUND,
            f"Secret {ns}/{ref.name} not found: create it with key {ref.key!r} holding the "
            "DATABASE_URL",
        )
    if p.observed.secret is SecretState.KEY_MISSING:
        return Situation(
            Reason.SECRET_KEY_MISSING,
            f"Secret {ns}/{ref.name} has no key {ref.key!r}: add the DATABASE_URL under that "
            "key or fix spec.database.secretRef.key",
        )
    return None


def _blocked(p: Pass) -> Situation | None:
    """The spec's release failed: keep serving the last good one until the spec changes."""
    target, serving = p.target, p.serving
    if p.failed != target.hash or (serving is not None and serving.hash == target.hash):
        return None
    message = _failure_message(p, f"{target.label} was rolled back")
    if p.last_good is None or serving is None:
        return Situation(Reason.ROLLOUT_FAILED, message)
    return Situation(Reason.ROLLED_BACK, message)


def _target_serving(p: Pass) -> Situation | None:
    dep, target = p.deployment, p.target
    if dep is None or p.serving is None or p.serving.hash != target.hash:
        return None
    p.serve(target)
    ready = f"{dep.ready_replicas}/{p.cr.spec.replicas} replicas ready"
    if p.cr.spec.replicas == 0:
        return Situation(
            Reason.SCALED_TO_ZERO,
            f"{target.label} is rolled out at 0 replicas; it is judged when scaled up",
        )
    if p.failed == target.hash:
        return _blocked_in_place(p)
    if p.last_good != target.hash:
        p.record(target, outcome=Outcome.ROLLING_OUT)
        return _rolling_out(p)
    scaled = dep.replicas == p.cr.spec.replicas  # the observation is of the current scale
    if scaled and dep.rollout_complete:
        return Situation(Reason.ROLLOUT_COMPLETE, f"{target.label}: {ready}")
    return _proven_health(p, ready)


def _rolling_out(p: Pass) -> Situation:
    """One wording from the pass that starts the rollout on, so the next pass rewrites nothing."""
    dep, spec = p.deployment, p.cr.spec
    if p.analysing_until is not None and p.analysis_awaiting is not None:
        return Situation(
            Reason.ANALYSING,
            f"analysing {p.target.label}: its duration is over, {p.analysis_awaiting}; the "
            f"first new pod serves beside the old pods until {timestamp(p.analysing_until)} "
            "at the latest, then the rest rolls out",
        )
    if p.analysing_until is not None:
        return Situation(
            Reason.ANALYSING,
            f"analysing {p.target.label}: its first new pod serves beside the old pods until "
            f"{timestamp(p.analysing_until)}, its /metrics against theirs; then the rest rolls out",
        )
    counts = (
        f"{dep.updated_replicas} updated, {dep.ready_replicas}/{spec.replicas} ready"
        if (dep is not None and dep.release == p.target.hash and dep.caught_up)
        else f"0 updated, 0/{spec.replicas} ready"
    )
    return Situation(Reason.ROLLING_OUT, f"rolling out {p.target.label}: {counts}")


def _proven_health(p: Pass, ready: str) -> Situation:
    """A proven release short of replicas: scaling, or degraded (node loss, eviction, a crash,
    an outage); reported, never rolled back: there is nothing better to go back to."""
    dep, target = p.deployment, p.target
    assert dep is not None
    verdict = p.judge(target.hash)
    live = [pod for pod in p.observed.pods if pod.counts and pod.release == target.hash]
    if verdict.kind is VerdictKind.FAILED and verdict.failure is not None:
        detail = verdict.failure.describe(target.label)
    elif verdict.kind in HOLD_KINDS:
        detail = f"{target.label}: {verdict.detail}"
    elif lost := [pod for pod in live if pod.lost_readiness]:
        if all(p.now - (pod.ready_changed_at or p.now) < BLIP_GRACE for pod in lost):
            # A readiness probe that failed once: not news yet (no event, no Degraded).
            p.wake_by(min((pod.ready_changed_at or p.now) for pod in lost) + BLIP_GRACE)
            return Situation(Reason.ROLLOUT_COMPLETE, f"{target.label}: {ready}")
        detail = f"{target.label}: {', '.join(pod.name for pod in lost)} lost readiness"
    else:
        return Situation(Reason.SCALING, f"scaling {target.label}: {ready}")
    return Situation(Reason.REPLICAS_UNAVAILABLE, f"{detail} ({ready})")


def _blocked_in_place(p: Pass) -> Situation:
    """The first release ever failed and nothing earlier exists: its pods stay, visible."""
    return Situation(Reason.ROLLOUT_FAILED, _failure_message(p, f"{p.target.label} failed"))


def _failure_message(p: Pass, fallback: str) -> str:
    """Why the spec's release is blocked, from its history entry, and what lifts the block."""
    entry = latest_entry(p.history, p.target.hash)
    return f"{entry.get('message') or fallback}. {NOT_RETRIED}"


def _operator_upgrade(p: Pass) -> bool:
    """The spec's release differs from the proven serving one only because this operator renders
    the pod template differently: same image and database, not started yet, and the spec's
    template inputs are the ones that chose the serving release (a history entry without them,
    from an operator before they were recorded: the spec's generation has not moved)."""
    serving, target = p.serving, p.target
    if serving is None or serving.hash != p.last_good or serving.hash == target.hash:
        return False
    if serving.migration_key != target.migration_key:
        return False
    newest = p.history[-1] if p.history else {}
    if newest.get("release") == target.hash:
        return False  # already started: it finishes whatever the wave does
    entry = latest_entry(p.history, serving.hash)
    if "inputs" in entry:
        return bool(entry["inputs"] == p.inputs)
    chosen_at = entry.get("generation", p.cr.status.get("observedGeneration"))
    return bool(chosen_at == p.cr.generation)


def _migrate_then_deploy(p: Pass) -> Situation:
    """The spec's release does not serve yet: migrate if it needs it, then roll it out."""
    target, serving, owner = p.target, p.serving, p.cr.owner
    assert target.revision is not None
    if _operator_upgrade(p):
        if not p.observed.upgrade_slot:
            p.operator_upgrade = "queued"
            return Situation(
                Reason.UPGRADE_HALTED if p.observed.upgrade_halted else Reason.UPGRADE_QUEUED,
                f"this operator version renders the pod template differently (no spec change): "
                f"{target.label} rolls out in a bounded wave; {p.observed.upgrade_wave}; "
                f"{serving.label if serving else 'nothing'} keeps serving",
            )
        p.operator_upgrade = "started"
    stored = p.stored(target.hash) is not None
    job_name = migration_job_name(owner.name, target.migration_key)
    job = next((j for j in p.observed.jobs if j.name == job_name), None)
    if _refused_as_foreign(p, "Job", job_name):
        return Situation(
            Reason.OBJECT_CONFLICT,
            f"Job/{job_name} already exists and is not controlled by this ItemService: "
            f"delete or rename it; {target.label} is migrated after",
        )
    same_schema = serving is not None and serving.migration_key == target.migration_key
    if same_schema or (job is not None and job.state is JobState.SUCCEEDED):
        if not stored:
            # Served only once stored (a release that cannot be rolled back to never goes live),
            # and stored pinned to the bits that migrated.
            _store_migrated(p, job if not same_schema else None)
            p.wake_by(p.now)
            return Situation(Reason.ROLLING_OUT, f"storing {target.label} before it rolls out")
        p.serve(target)
        stored_release = p.stored(target.hash)
        image_id = stored_release.image_id if stored_release else ""
        p.record(
            target,
            start_new=True,
            outcome=Outcome.ROLLING_OUT,
            generation=p.cr.generation,
            inputs=p.inputs,
            **({"trigger": TRIGGER_OPERATOR} if p.operator_upgrade else {}),
            **({"migrationJob": job_name} if job else {}),
            **({"imageID": image_id} if image_id else {}),
        )
        if job is not None:
            p.migration_job = job_name
            if _was_migrating(p):
                p.migration_finished = job
        return _rolling_out(p)

    keeps = f"; {serving.label} keeps serving" if serving else ""
    p.migration_job = job_name
    if (
        job is not None
        and job.state is JobState.FAILED
        and (blocked := _blocked_by_floor(p, job)) is not None
    ):
        return blocked
    if job is not None and job.state is JobState.FAILED:
        detail = job.failure_note or job.message
        p.record(target, start_new=True, migrationJob=job_name, outcome=Outcome.MIGRATION_FAILED)
        if _was_migrating(p):
            p.migration_finished = job
        return Situation(
            Reason.MIGRATION_FAILED,
            f"migration Job {job_name} for {target.label} failed ({job.reason or 'Failed'}"
            f"{': ' + detail if detail else ''}); nothing was rolled out{keeps}. Read kubectl "
            f"logs job/{job_name}; delete that Job to retry, or change the spec",
        )
    others = [j for j in p.observed.jobs if j.state is JobState.ACTIVE and j.name != job_name]
    if job is None and others:
        # Waiting, not deleting: MySQL DDL is not transactional, so killing a migration midway
        # can leave a half-applied revision. The old Job is bounded by its activeDeadlineSeconds.
        running = ", ".join(f"{j.name} ({j.image})" for j in others)
        p.record(target, start_new=True, outcome=Outcome.MIGRATING)
        return Situation(
            Reason.WAITING_FOR_PREVIOUS_MIGRATION,
            f"waiting for superseded migration Job {running} to finish before migrating "
            f"{target.label}{keeps}",
        )
    if job is None:
        p.desired.set(
            Create(
                build_migration_job(
                    owner,
                    p.cr.spec,
                    image=target.image,
                    migration_key=target.migration_key,
                    protect=protected(p),
                    allowed=p.cr.allow_contract,
                )
            )
        )
    p.record(
        target,
        start_new=True,
        migrationJob=job_name,
        outcome=Outcome.MIGRATING,
        generation=p.cr.generation,
        inputs=p.inputs,
    )
    note = unreachable_note(p, job_name)
    return Situation(
        Reason.MIGRATING, f"migrating the schema for {target.label} (Job {job_name}){note}{keeps}"
    )


def _store_migrated(p: Pass, job: JobObservation | None) -> None:
    """Store the spec's release: its image pinned to what its migration ran (or, sharing the
    serving release's schema, to what that one ran), the migrator's report beside it."""
    target = p.target
    assert target.revision is not None
    if job is not None:
        image_id, report = job_outcome(p, job)
    else:
        source = p.stored(p.serving.hash if p.serving else None)
        image_id, report = (source.image_id, source.report) if source else ("", None)
    template = migrated_template(target, image_id)
    p.desired.set(
        Create(
            build_controller_revision(
                p.cr.owner,
                revision=target.revision,
                release_hash=target.hash,
                template=template,
                image=target.image,
                migration_key=target.migration_key,
                image_id=image_id,
                migration_report=report.raw if report is not None else "",
            )
        )
    )


def _blocked_by_floor(p: Pass, job: JobObservation) -> Situation | None:
    """The migrator refused a contract revision (nothing ran): say which, and what lifts it."""
    _, report = job_outcome(p, job)
    if report is None or report.outcome != "blocked":
        return None
    target, serving = p.target, p.serving
    if job.protect_digest != current_protect_digest(p):
        # The rollback target or the allowed revisions changed since: ask the migrator again.
        p.desired.set(Delete("Job", job.name))
        p.wake_by(p.now + timedelta(seconds=1))
        return Situation(
            Reason.MIGRATING,
            f"retrying the migration for {target.label}: what it must protect changed since "
            f"Job {job.name} was refused",
        )
    p.record(target, start_new=True, migrationJob=job.name, outcome=Outcome.MIGRATION_BLOCKED)
    p.migration_job = job.name
    keeps = f"; {serving.label} keeps serving" if serving else ""
    revision = report.revision or "?"
    return Situation(
        Reason.MIGRATION_BLOCKED,
        f"migration for {target.label} refused by the rollback floor, nothing ran{keeps}: "
        f"{report.why or 'a contract revision removes what an older image reads'}. Release an "
        "image that no longer needs it first (it becomes the rollback target), then this one; "
        f"or accept the risk: kubectl annotate itemservice {p.cr.owner.name} "
        f"{ANNOTATION_ALLOW_CONTRACT}={revision}",
    )


def _refused_as_foreign(p: Pass, kind: str, name: str) -> bool:
    """The last pass's create of this object was refused: someone else's object has its name."""
    return any(
        r.get("object") == f"{kind}/{name}" and r.get("reason") == Reason.OBJECT_CONFLICT
        for r in p.cr.status.get("refusedWrites") or []
    )


def _was_migrating(p: Pass) -> bool:
    """The previous pass waited on a migration: this one sees it finish (counted once)."""
    return p.cr.status.get("reason") in (Reason.MIGRATING, Reason.WAITING_FOR_PREVIOUS_MIGRATION)


# -- the Plan -----------------------------------------------------------------------------------


def _read_unwatched(p: Pass) -> bool:
    """The pass read what no watch reports, whatever the situation: /readyz of unready pods,
    the canary's /metrics, or found a foreign object in the way (our watches select ours)."""
    pods = p.observed.pods
    return any(pod.readiness_polled or pod.requests is not None for pod in pods) or bool(
        p.observed.conflicts
    )


def _finish(p: Pass, situation: Situation) -> Plan:
    """Status computed once from the situation's row; writes that change nothing dropped."""
    cr, dep, row = p.cr, p.deployment, TABLE[situation.reason]
    for name in p.observed.conflicts:  # never take over someone else's object, in any step
        kind, _, obj = name.partition("/")
        p.desired.drop(kind, obj)
    deployment = p.desired.get("Deployment", cr.owner.name)
    if (
        isinstance(deployment, Apply)
        and dep is not None
        and (dep.desired_hash == hash_of(deployment.obj))
    ):
        p.desired.drop("Deployment", cr.owner.name)
    previous = cr.status
    transition = (previous.get("reason"), previous.get("targetRevision")) != (
        str(situation.reason),
        p.target.revision,
    )
    if transition:
        p.event(row.event, str(situation.reason), situation.message)
    serving = p.serving
    if isinstance(deployment, Apply):  # what will serve once the write lands
        template_labels = deployment.obj["spec"]["template"]["metadata"]["labels"]
        serving = p.release(template_labels.get(LABEL_RELEASE)) or serving
    last_good = p.release(p.last_good)
    failed = p.release(p.failed)
    status: dict[str, object] = {
        "observedGeneration": cr.generation,
        "phase": str(row.phase),
        "reason": str(situation.reason),
        "message": situation.message,
        "targetImage": p.target.image,
        "targetRevision": p.target.revision,
        "targetRelease": p.target.hash,
        "readyReplicas": dep.ready_replicas if dep else 0,
        "replicas": cr.spec.replicas,
        "conditions": conditions_for(
            list(previous.get("conditions") or []),
            reason=situation.reason,
            row=row,
            message=situation.message,
            generation=cr.generation,
            now=p.now,
        ),
        "history": p.history,
    }
    optional = {
        "currentImage": serving.image if serving else None,
        "currentRevision": serving.revision if serving else None,
        "currentRelease": serving.hash if serving else None,
        "lastGoodImage": last_good.image if last_good else previous.get("lastGoodImage"),
        "lastGoodRevision": last_good.revision if last_good else None,
        "lastGoodRelease": p.last_good,
        "failedImage": failed.image if failed else None,
        "failedRelease": p.failed,
        "migrationJob": p.migration_job or previous.get("migrationJob"),
        "servingImage": container_image(serving.template) if serving else None,
        "rollbackFloor": rollback_floor(p),
    }
    status.update({k: v for k, v in optional.items() if v is not None})
    verdict = {
        k: v
        for k, v in {
            "windowFloor": timestamp(p.window_floor) if p.window_floor else None,
            "heldSince": p.held_since,
            "pausedAt": p.paused_at,
        }.items()
        if v is not None
    }
    if verdict:
        status["verdict"] = verdict
    requeue, wake_after = row.requeue, None
    if p.observed.conflicts:  # no watch sees it go: looked at as often as ObjectConflict says
        requeue = min(requeue, TABLE[Reason.OBJECT_CONFLICT].requeue)
    if p.wake_at is not None:
        wake_after = max((p.wake_at - p.now).total_seconds() + WAKE_MARGIN, SOONEST_WAKE)
        requeue = min(requeue, wake_after)
    return Plan(
        actions=p.desired.ordered(),
        events=tuple(p.events),
        status=status,
        requeue_after=requeue,
        wake_after=wake_after,
        watched=row.watched and not _read_unwatched(p),
        rolled_back=p.rolled_back,
        migration_finished=p.migration_finished,
        operator_upgrade=p.operator_upgrade,
    )
