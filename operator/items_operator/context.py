"""One pass's working state: what was observed, resolved into releases, and what is decided.

`Pass` resolves the observation once (which release the spec asks for, which one serves, the
last good one, the blocked one) and collects the decisions: one desired state per owned object
(plan.Desired), history entries, events. decide.py reads it like a context object.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from items_operator.analysis import analysis_running
from items_operator.canary import hold_seconds
from items_operator.constants import ANNOTATION_DATABASE_TARGET
from items_operator.containers import parse_time
from items_operator.failures import Failure
from items_operator.model import AnalysisSpec, ItemService
from items_operator.observe import (
    DeploymentObservation,
    JobObservation,
    JobState,
    Observed,
    RevisionObservation,
)
from items_operator.plan import Apply, Create, Desired, Event
from items_operator.policy import EventType
from items_operator.release import (
    Release,
    inputs_digest,
    migration_key,
    spec_release,
    with_release_label,
)
from items_operator.specs.deployment import build_deployment, no_room_to_surge
from items_operator.specs.revision import build_controller_revision
from items_operator.status import record_revision, timestamp
from items_operator.verdict import Verdict, judge
from items_operator.window import readiness_window, silent_window, verdict_lead

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
    held_since: str | None  # a hold (environment, capacity) runs since then; the clock stops
    paused_at: str | None
    history: list[dict[str, Any]]
    desired: Desired = field(default_factory=Desired)
    events: list[Event] = field(default_factory=list)
    rolled_back: Failure | None = None
    migration_finished: JobObservation | None = None
    migration_job: str | None = None
    wake_at: datetime | None = None
    analysing_until: datetime | None = None  # the canary analysis of the serving release runs
    analysis_awaiting: str | None = None  # ... past its duration, for this evidence
    operator_upgrade: str | None = None  # see Plan.operator_upgrade
    inputs: str = ""  # release.inputs_digest of the spec (history entries record it)

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
            held_since=verdict.get("heldSince"),
            paused_at=verdict.get("pausedAt"),
            # Entries of an operator before releases have no revision: the CRD requires one.
            history=[e for e in status.get("history") or [] if e.get("revision")],
        )
        serving_hash = (dep.release or LEGACY_RELEASE) if dep else status.get("currentRelease")
        p.serving = p.release(serving_hash) if serving_hash else None
        if observed.secret_digest is None and p.serving is not None:
            # The Secret is unreadable: the database target is the one last seen serving, so
            # a vanished Secret never looks like a new release.
            annotations = p.serving.template.get("metadata", {}).get("annotations") or {}
            p.target = spec_release(cr, annotations.get(ANNOTATION_DATABASE_TARGET))
        p.inputs = inputs_digest(cr, observed.secret_digest)
        p.target = p.target.numbered(p._number_for(p.target.hash))
        if (stored := p.stored(p.target.hash)) is not None:
            # Stored once migrated, with the image pinned to the bits that migrated.
            p.target = replace(p.target, template=stored.template)
        if p.serving is not None and p.serving.hash == p.target.hash:
            p.serving = p.target
        if dep is not None and dep.release is None:
            p._adopt_legacy(dep)
        if (
            p.failed is None
            and not status.get("failedRelease")
            and (
                status.get("failedImage") == cr.spec.image
                and "failedImage" in status
                and p.serving is not None
                and p.serving.image != cr.spec.image
            )
        ):
            p.failed = p.target.hash  # an operator upgrade: the old one rolled this image back
        if p.failed != p.target.hash:
            p.failed = None  # the spec names another release: the block is lifted
        return p

    def _number_for(self, release_hash: str) -> int:
        """The stored number of a release, else the next one (never reused: history counts)."""
        stored = {r.release: r.revision for r in self.observed.revisions}
        if release_hash in stored:
            return stored[release_hash]
        status = self.cr.status
        if status.get("targetRelease") == release_hash and status.get("targetRevision"):
            return int(status["targetRevision"])
        used = [*stored.values(), *(int(e["revision"]) for e in self.history)]
        used.append(int(status.get("targetRevision") or 0))
        if (
            self.deployment is not None
            and self.deployment.release is None
            and (LEGACY_RELEASE not in stored)
        ):
            used.append(max(used, default=0) + 1)  # reserved for the legacy release
        return max(used, default=0) + 1

    def _adopt_legacy(self, dep: DeploymentObservation) -> None:
        """A Deployment of an operator before releases: store its template as a release (so it
        can be rolled back to), and count it good if the old status said its image was."""
        if self.cr.status.get("lastGoodImage") == dep.image and self.last_good is None:
            self.last_good = LEGACY_RELEASE
        if any(r.release == LEGACY_RELEASE for r in self.observed.revisions):
            return
        legacy = self.release(LEGACY_RELEASE)
        assert legacy is not None
        numbers = [r.revision for r in self.observed.revisions]
        self.desired.set(
            Create(
                build_controller_revision(
                    self.cr.owner,
                    revision=max([*numbers, 0]) + 1,
                    release_hash=LEGACY_RELEASE,
                    template=legacy.template,
                    image=legacy.image,
                    migration_key=legacy.migration_key,
                )
            )
        )

    # -- releases -------------------------------------------------------------------------------

    def release(self, release_hash: str | None) -> Release | None:
        """The stored release with this hash (the spec's own counts as stored)."""
        if release_hash is None:
            return None
        if release_hash == self.target.hash:
            return self.target
        for stored in self.observed.revisions:
            if stored.release == release_hash:
                return Release(
                    stored.release,
                    stored.image,
                    stored.migration_key,
                    stored.template,
                    stored.revision,
                )
        dep = self.observed.deployment
        if release_hash == LEGACY_RELEASE and dep is not None and dep.release is None:
            # Not stored yet (this pass stores it): the image it runs was migrated for the
            # database it uses, so it shares the spec's migration key when the image is equal.
            ref = self.cr.spec.database.secret_ref
            key = migration_key(dep.image, ref.name, ref.key, self.observed.secret_digest)
            template = with_release_label(dep.template, LEGACY_RELEASE)
            return Release(LEGACY_RELEASE, dep.image, key, template, None)
        return None

    def stored(self, release_hash: str | None) -> RevisionObservation | None:
        return next((r for r in self.observed.revisions if r.release == release_hash), None)

    def by_revision(self, number: int) -> Release | None:
        match = next((r for r in self.observed.revisions if r.revision == number), None)
        return self.release(match.release) if match else None

    @property
    def deployment(self) -> DeploymentObservation | None:
        return self.observed.deployment

    def judge(self, release_hash: str) -> Verdict:
        """The verdict on a release the Deployment serves, with this pass's window and floor.
        Its deadline is named for the pass's wake-up whatever the caller makes of it: a
        decision that changes by time alone must never wait for a watch event."""
        assert self.deployment is not None
        verdict = judge(
            release=release_hash,
            deployment=self.deployment,
            pods=self.observed.pods,
            now=self.now,
            window=self.window,
            floor=self.floor,
            migrated=self.schema_made_for(release_hash),
            held=self.held_since is not None,
            analysis=self.analysis_for(release_hash),
            comparable=self.canary_comparable,
            lead=verdict_lead(self.cr.spec.rollout.readiness_timeout_seconds),
            silent_window=silent_window(self.cr.spec.rollout.readiness_timeout_seconds),
        )
        self.wake_by(verdict.deadline)
        return verdict

    def analysis_for(self, release_hash: str | None) -> AnalysisSpec | None:
        """The spec's canary analysis, while it has not ended for an unproven release: the
        spec's, or the one still serving after the spec moved on (its hold stays until its
        analysis ends or the next release replaces it); never for a requested revision, and a
        rollback serves a proven release."""
        spec = self.cr.spec.rollout.analysis
        serving = self.deployment.release if self.deployment is not None else None
        if release_hash not in (self.target.hash, serving) or self.cr.rollback_to is not None:
            return None
        return spec if analysis_running(spec, release_hash, self.last_good, self.history) else None

    @property
    def canary_comparable(self) -> bool:
        """Old pods can serve beside a canary: a release served before, and the strategy keeps
        one (a surge, or more than one replica)."""
        spec = self.cr.spec
        return self.last_good is not None and not (no_room_to_surge(spec) and spec.replicas <= 1)

    def schema_made_for(self, release_hash: str) -> bool:
        """The release's schema is in place: its migration Job succeeded, or a proven release
        with the same migration key (image and database) served on it."""
        release = self.release(release_hash)
        if release is None:
            return False
        last_good = self.release(self.last_good)
        if last_good is not None and last_good.migration_key == release.migration_key:
            return True
        return any(
            j.migration_key == release.migration_key and j.state is JobState.SUCCEEDED
            for j in self.observed.jobs
        )

    @property
    def floor(self) -> datetime | None:
        """No window starts before this: while a hold runs, every window starts now."""
        return self.now if self.held_since is not None else self.window_floor

    @property
    def window(self) -> timedelta:
        """The spec's readiness timeout, or one learned from the history (window.py)."""
        return readiness_window(self.cr.spec.rollout.readiness_timeout_seconds, self.history)

    # -- decisions ------------------------------------------------------------------------------

    def serve(self, release: Release, *, rolled_back: str | None = None) -> None:
        """The Deployment should run `release` (replaces any earlier decision of this pass)."""
        analysis = self.analysis_for(release.hash)
        desired = build_deployment(
            self.cr.owner,
            self.cr.spec,
            template=release.template,
            paused=self.cr.spec.paused,
            rolled_back_release=rolled_back,
            canary_seconds=hold_seconds(analysis) if analysis else None,
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

    def hold(self) -> None:
        """The environment (not the release) holds the rollout: stop the verdict's clock."""
        self.held_since = self.held_since or timestamp(self.now)

    def release_hold(self) -> None:
        """The hold is over: every window starts afresh now."""
        if self.held_since is not None:
            self.window_floor, self.held_since = self.now, None

    def wake_by(self, when: datetime | None) -> None:
        if when is not None and (self.wake_at is None or when < self.wake_at):
            self.wake_at = when
