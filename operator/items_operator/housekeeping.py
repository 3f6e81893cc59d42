"""Housekeeping of one pass, apart from the policy: supporting objects converge by desired hash,
finished migration Jobs and old ControllerRevisions are pruned, a migration whose pod cannot
start is ended early. Each adds at most one desired state per object to the Pass."""

from __future__ import annotations

from items_operator.constants import ANNOTATION_DESIRED_HASH
from items_operator.context import Pass
from items_operator.failures import DEFAULT_PULL_WINDOW, classify_waiting, waiting_deadline
from items_operator.observe import JobState
from items_operator.plan import Apply, Delete, FailJob
from items_operator.specs.common import migration_job_name
from items_operator.specs.pdb import build_pdb
from items_operator.specs.service import build_service
from items_operator.specs.serviceaccount import build_service_account


def converge_supporting_objects(p: Pass) -> None:
    owner, spec = p.cr.owner, p.cr.spec
    desired = [build_service_account(owner, spec), build_service(owner, spec)]
    pdb = build_pdb(owner, spec)
    if pdb is not None:
        desired.append(pdb)
    elif "PodDisruptionBudget" in p.observed.owned_hashes:
        p.desired.set(Delete("PodDisruptionBudget", owner.name))
    for obj in desired:
        if p.observed.owned_hashes.get(obj["kind"]) != hash_of(obj):
            p.desired.set(Apply(obj))


def hash_of(obj: dict[str, object]) -> str:
    return str(obj["metadata"]["annotations"][ANNOTATION_DESIRED_HASH])  # type: ignore[index]


def prune(p: Pass) -> None:
    """Keep the newest migration.historyLimit finished Jobs and revisionHistoryLimit revisions,
    always those of the spec's, the serving and the last good release."""
    target_job = migration_job_name(p.cr.owner.name, p.target.migration_key)
    finished = sorted(
        (j for j in p.observed.jobs if j.finished and j.name != target_job),
        key=lambda j: (j.finished_at.timestamp() if j.finished_at else 0.0, j.name),
        reverse=True,
    )
    keep = p.cr.spec.migration.history_limit - sum(
        1 for j in p.observed.jobs if j.finished and j.name == target_job
    )
    for job in finished[max(keep, 0) :]:
        p.desired.set(Delete("Job", job.name))
    protected = {p.target.hash, p.last_good, p.failed, p.serving.hash if p.serving else None}
    revisions = sorted(p.observed.revisions, key=lambda r: r.revision, reverse=True)
    for stored in revisions[p.cr.spec.revision_history_limit :]:
        if stored.release not in protected:
            p.desired.set(Delete("ControllerRevision", stored.name))


def fail_stuck_jobs(p: Pass) -> None:
    """Fail fast a running migration whose pod cannot start (image pull, missing config)."""
    for job in p.observed.jobs:
        if job.state is not JobState.ACTIVE:
            continue
        pods = [pod for pod in p.observed.job_pods if pod.job_name == job.name]
        failure = next(
            (f for pod in pods if (f := classify_waiting(pod, now=p.now)) is not None), None
        )
        if failure is not None:
            p.desired.set(FailJob(job.name, failure.describe(job.image)))
            continue
        for pod in pods:  # a kubelet retrying the same error reports no change: wake then
            deadline = waiting_deadline(pod, window=DEFAULT_PULL_WINDOW, floor=None)
            if deadline is not None and deadline > p.now:
                p.wake_by(deadline)
