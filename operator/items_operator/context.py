"""One pass's working state: what was observed, resolved into releases, and what is decided.

`Pass` resolves the observation once (which release the spec asks for, which one serves, the
last good one, the blocked one) and collects the decisions: one desired state per owned object
(plan.Desired), history entries, events. decide.py reads it like a context object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from items_operator.constants import ANNOTATION_DATABASE_TARGET
from items_operator.failures import Failure
from items_operator.model import ItemService
from items_operator.observe import DeploymentObservation, JobObservation, Observed, parse_time
from items_operator.plan import Apply, Desired, Event
from items_operator.policy import EventType
from items_operator.release import Release, spec_release, with_release_label
from items_operator.specs.deployment import build_deployment
from items_operator.status import record_revision

LEGACY_RELEASE = "legacy"  # a Deployment written before releases existed (no release label)


@dataclass
class Pass:
    cr: ItemService
    observed: Observed
    now: datetime
    target: Release
    serving: Release | None
    last_good: str | None
    failed: str | None
    window_floor: datetime | None
    paused_at: str | None
    history: list[dict[str, Any]]
    desired: Desired = field(default_factory=Desired)
    events: list[Event] = field(default_factory=list)
    rolled_back: Failure | None = None
    migration_finished: JobObservation | None = None
    migration_job: str | None = None
    wake_at: datetime | None = None

    @classmethod
    def start(cls, cr: ItemService, observed: Observed, now: datetime) -> Pass:
        status, dep = cr.status, observed.deployment
        verdict = dict(status.get("verdict") or {})
        p = cls(
            cr=cr,
            observed=observed,
            now=now,
            target=spec_release(cr, observed.secret_digest),  # numbered below
            serving=None,
            last_good=status.get("lastGoodRelease"),
            failed=status.get("failedRelease") or (dep.rolled_back_release if dep else None),
            window_floor=parse_time(verdict.get("windowFloor")),
            paused_at=verdict.get("pausedAt"),
            history=list(status.get("history") or []),
        )
        serving_hash = (dep.release or LEGACY_RELEASE) if dep else status.get("currentRelease")
        p.serving = p.release(serving_hash) if serving_hash else None
        if observed.secret_digest is None and p.serving is not None:
            # The Secret is unreadable: the database target is the one last seen serving, so
            # a vanished Secret never looks like a new release.
            annotations = p.serving.template.get("metadata", {}).get("annotations") or {}
            p.target = spec_release(cr, annotations.get(ANNOTATION_DATABASE_TARGET))
        by_hash = {r.release: r.revision for r in observed.revisions}
        if p.target.hash in by_hash:
            p.target = p.target.numbered(by_hash[p.target.hash])
        elif status.get("targetRelease") == p.target.hash and status.get("targetRevision"):
            p.target = p.target.numbered(int(status["targetRevision"]))
        else:
            p.target = p.target.numbered(max(by_hash.values(), default=0) + 1)
        if p.serving is not None and p.serving.hash == p.target.hash:
            p.serving = p.target
        if p.failed != p.target.hash:
            p.failed = None  # the spec names another release: the block is lifted
        if dep is not None and dep.release is None and status.get("lastGoodImage") == dep.image:
            p.last_good = LEGACY_RELEASE  # an operator upgrade: what served before was good
        return p

    # -- releases -------------------------------------------------------------------------------

    def release(self, release_hash: str | None) -> Release | None:
        """The stored release with this hash (the spec's own counts as stored)."""
        if release_hash is None:
            return None
        if release_hash == self.target.hash:
            return self.target
        dep = self.observed.deployment
        if release_hash == LEGACY_RELEASE and dep is not None and dep.release is None:
            template = with_release_label(dep.template, LEGACY_RELEASE)
            return Release(LEGACY_RELEASE, dep.image, "", template, None)
        for stored in self.observed.revisions:
            if stored.release == release_hash:
                return Release(
                    stored.release,
                    stored.image,
                    stored.migration_key,
                    stored.template,
                    stored.revision,
                )
        return None

    def by_revision(self, number: int) -> Release | None:
        match = next((r for r in self.observed.revisions if r.revision == number), None)
        return self.release(match.release) if match else None

    @property
    def deployment(self) -> DeploymentObservation | None:
        return self.observed.deployment

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.cr.spec.rollout.readiness_timeout_seconds)

    # -- decisions ------------------------------------------------------------------------------

    def serve(self, release: Release, *, rolled_back: str | None = None) -> None:
        """The Deployment should run `release` (replaces any earlier decision of this pass)."""
        desired = build_deployment(
            self.cr.owner,
            self.cr.spec,
            template=release.template,
            paused=self.cr.spec.paused,
            rolled_back_release=rolled_back,
        )
        self.desired.set(Apply(desired))

    def keep_serving(self) -> None:
        """Converge (or re-create) the Deployment on the release it should run already."""
        dep = self.deployment
        if self.serving is None:
            return
        if dep is not None and dep.release is None and not self.cr.spec.paused:
            return  # legacy template: rewriting it would restart the pods for nothing
        self.serve(self.serving, rolled_back=dep.rolled_back_release if dep else self.failed)

    def record(self, release: Release, *, start_new: bool = False, **changes: Any) -> None:
        if release.revision is None:
            return
        self.history = record_revision(
            self.history,
            revision=release.revision,
            limit=self.cr.spec.revision_history_limit,
            start_new=start_new,
            **({"release": release.hash, "image": release.image} | changes),
        )

    def event(self, type_: EventType, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def wake_by(self, when: datetime | None) -> None:
        if when is not None and (self.wake_at is None or when < self.wake_at):
            self.wake_at = when
