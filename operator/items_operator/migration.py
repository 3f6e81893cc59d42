"""The migration half of step 7, on a Pass: what the migrator must protect, what it reported,
the bits it ran, and the rollback floor those reports imply (see schema_floor for the model)."""

from __future__ import annotations

import json
from typing import Any

from items_operator.constants import ANNOTATION_IMAGE_ID, ANNOTATION_MIGRATION_REPORT
from items_operator.context import Pass
from items_operator.observe import JobObservation, PodPhase, RevisionObservation
from items_operator.plan import AdoptJob
from items_operator.release import Release
from items_operator.schema_floor import (
    SERVES_SCHEMA,
    MigrationReport,
    parse_report,
    pinned_image,
    protect_digest,
    uses_json,
    with_image,
)


def protected(p: Pass) -> list[dict[str, Any]]:
    """What must keep working after the spec's migration: the rollback target (the last good
    release) and the serving release, each with the columns its image reads (None: unknown)."""
    entries: list[dict[str, Any]] = []
    candidates = (
        ("rollback target", p.last_good),
        ("serving", p.serving.hash if p.serving else None),
    )
    for role, release_hash in candidates:
        release = p.release(release_hash)
        if release is None or release.hash == p.target.hash:
            continue
        if any(e["release"] == release.hash for e in entries):
            continue
        stored = p.stored(release.hash)
        report = stored.report if stored is not None else None
        entries.append(
            {
                "release": release.hash,
                "image": release.image,
                "role": role,
                "uses": uses_json(report.uses) if report is not None else None,
            }
        )
    return entries


def current_protect_digest(p: Pass) -> str:
    return protect_digest(protected(p), p.cr.allow_contract)


def job_outcome(p: Pass, job: JobObservation) -> tuple[str, MigrationReport | None]:
    """The image ID and report of a finished Job: on the Job once adopted, else on its pod."""
    if job.adopted:
        return job.image_id, job.report
    pods = sorted(
        (pod for pod in p.observed.job_pods if pod.job_name == job.name),
        key=lambda pod: pod.created_at.timestamp() if pod.created_at else 0.0,
    )
    if not pods:
        return "", None
    return pods[-1].image_id, parse_report(pods[-1].termination_message)


# The migrator's outcome when it could not reach the database (service.rollback_floor).
UNREACHABLE = "unreachable"


def unreachable_note(p: Pass, job_name: str) -> str:
    """What the person on call needs while a Job re-runs a migrator that could not reach the
    database (exit 75, ignored by its podFailurePolicy): the environment, said in the message."""
    runs = sorted(
        (
            pod
            for pod in p.observed.job_pods
            if pod.job_name == job_name and pod.phase is PodPhase.FAILED
        ),
        key=lambda pod: pod.created_at.timestamp() if pod.created_at else 0.0,
    )
    report = parse_report(runs[-1].termination_message) if runs else None
    if report is None or report.outcome != UNREACHABLE:
        return ""
    try:
        error = str(json.loads(report.raw).get("error") or "")
    except (ValueError, AttributeError):
        error = ""
    detail = f": {error[:300]}" if error else ""
    return (
        f"; run {len(runs)} could not reach the database{detail} (the Job runs it again; "
        "the release is not blamed)"
    )


def adopt_finished_jobs(p: Pass) -> None:
    """One write per finished Job: our ownerReference, no orphan TTL, its pod's outcome kept."""
    for job in p.observed.jobs:
        if job.adopted or not job.finished:
            continue
        image_id, report = job_outcome(p, job)
        annotations = {ANNOTATION_IMAGE_ID: image_id} if image_id else {}
        if report is not None:
            annotations[ANNOTATION_MIGRATION_REPORT] = report.raw
        p.desired.set(AdoptJob(job.name, p.cr.owner.owner_reference(), annotations))


def migrated_template(release: Release, image_id: str) -> dict[str, Any]:
    """The release's template with the image pinned to what migrated (unchanged when the
    runtime reported no repository digest: the tag stays)."""
    pinned = pinned_image(release.image, image_id)
    if pinned is None or pinned == release.image:
        return release.template
    return with_image(release.template, pinned)


def _newest_first(p: Pass) -> list[RevisionObservation]:
    return sorted(p.observed.revisions, key=lambda r: r.revision, reverse=True)


def _database_schema(newest_first: list[RevisionObservation]) -> MigrationReport | None:
    """The newest report of a migrator that saw the database's whole chain."""
    return next(
        (r.report for r in newest_first if r.report and r.report.outcome in SERVES_SCHEMA), None
    )


def rollback_floor(p: Pass) -> dict[str, Any] | None:
    """The oldest stored release the database, as last migrated, still serves (going back from
    the newest, stopping at the first that cannot or whose needs are unknown)."""
    revisions = _newest_first(p)
    latest = _database_schema(revisions)
    if latest is None:
        return None
    floor = None
    for stored in revisions:
        if stored.report is None or latest.blocks(stored.report.uses) is not None:
            break
        floor = stored
    if floor is None:
        return None
    return {
        "revision": floor.revision,
        "release": floor.release,
        "image": floor.image,
        "schemaHead": latest.head or "",
    }


def below_floor(p: Pass, release: Release) -> str | None:
    """Why the database, as last migrated, cannot serve this stored release (None: it can, or
    nothing proves otherwise)."""
    stored, latest = p.stored(release.hash), _database_schema(_newest_first(p))
    if latest is None or stored is None or stored.report is None:
        return None
    return latest.blocks(stored.report.uses)
