"""What one pass decided: the actions on owned objects, the events, the status, the next wake-up.

A Plan holds at most one desired state per owned object: `Desired` is keyed by (kind, name), and
a later decision for the same object replaces the earlier one, so two writes to one object in a
pass cannot be expressed. Actions run in `Plan.actions` order: the Deployment (a rollback, the
one write that protects users) first, then everything else, each independently (kube.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from items_operator.failures import Failure
from items_operator.observe import JobObservation


@dataclass(frozen=True)
class _ObjectAction:
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


@dataclass(frozen=True)
class Apply(_ObjectAction):
    """Server-side apply of a desired object (the plan only holds it when it differs)."""

    def on_version(self, resource_version: str) -> Apply:
        """The same apply, accepted only by the object at that resourceVersion (409 else):
        server-side apply honours metadata.resourceVersion as a precondition."""
        metadata = {**self.obj["metadata"], "resourceVersion": resource_version}
        return replace(self, obj={**self.obj, "metadata": metadata})


@dataclass(frozen=True)
class Create(_ObjectAction):
    """Create once; "already exists" counts as done when it is ours (Jobs and
    ControllerRevisions are immutable)."""


@dataclass(frozen=True)
class FailJob:
    """End a migration Job now (activeDeadlineSeconds -> 1) because its pod cannot start.

    Without this an unpullable image would sit in "Migrating" for the whole deadline; the failed
    Job then stays as the record, with `note` saying why.
    """

    name: str
    note: str

    kind: Literal["Job"] = "Job"


@dataclass(frozen=True)
class AdoptJob:
    """Make a finished migration Job ours: set the ownerReference it was created without (so
    the ItemService's deletion collects it again), drop its orphan TTL, and keep what its pod
    reported (image ID, the migrator's report) on the Job, so later passes need not read pods."""

    name: str
    owner_reference: dict[str, Any]
    annotations: dict[str, str]

    kind: Literal["Job"] = "Job"


@dataclass(frozen=True)
class Delete:
    kind: str
    name: str
    # Background: the Job's pods go too, without blocking this pass on their termination.
    propagation: Literal["Background", "Foreground"] = "Background"


Action = Apply | Create | FailJob | AdoptJob | Delete

# Execution order by kind: the Deployment first, so a refused supporting object never stands
# between the users and a rollback.
_ORDER = ("Deployment", "ControllerRevision", "Job", "ServiceAccount", "Service")


def _rank(action: Action) -> int:
    return _ORDER.index(action.kind) if action.kind in _ORDER else len(_ORDER)


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Desired:
    """The pass's desired writes, one per (kind, name)."""

    by_object: dict[tuple[str, str], Action] = field(default_factory=dict)

    def set(self, action: Action) -> None:
        self.by_object[(action.kind, action.name)] = action

    def drop(self, kind: str, name: str) -> None:
        self.by_object.pop((kind, name), None)

    def get(self, kind: str, name: str) -> Action | None:
        return self.by_object.get((kind, name))

    def ordered(self) -> tuple[Action, ...]:
        return tuple(sorted(self.by_object.values(), key=_rank))


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    events: tuple[Event, ...]
    status: dict[str, Any]
    requeue_after: float
    # Seconds until the earliest deadline the decision named (a readiness window's end, a
    # blip's grace), if any; and whether every input of this pass comes through a watch
    # (policy.Row.watched, and no unready pod whose /readyz had to be read): with the caches a
    # pass in motion then sleeps until that deadline or an event (pacing.next_sleep).
    wake_after: float | None = None
    watched: bool = False
    # For metrics: the failure that caused a rollback this pass, if any.
    rolled_back: Failure | None = None
    migration_finished: JobObservation | None = None
    # "started" when this pass started (or continued) a rollout the spec did not ask for (an
    # operator upgrade re-rendered the template); "queued" while it waits for a slot (fleet.py).
    operator_upgrade: str | None = None
