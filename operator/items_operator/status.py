"""Status helpers: conditions computed from the policy row, bounded history, merge patches."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from items_operator.policy import AVAILABLE_PHASES, Reason, Row


class ConditionType(enum.StrEnum):
    AVAILABLE = "Available"
    READY = "Ready"  # alias of Available, for tools that only read Ready
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    # True while a contract migration is refused by the rollback floor (docs/operations.md).
    MIGRATION_BLOCKED = "MigrationBlocked"


class Outcome(enum.StrEnum):
    MIGRATING = "Migrating"
    MIGRATION_FAILED = "MigrationFailed"
    MIGRATION_BLOCKED = "MigrationBlocked"
    ROLLING_OUT = "RollingOut"
    AVAILABLE = "Available"
    ROLLED_BACK = "RolledBack"
    ROLLOUT_FAILED = "RolloutFailed"
    SUPERSEDED = "Superseded"


IN_PROGRESS_OUTCOMES = frozenset({Outcome.MIGRATING, Outcome.ROLLING_OUT})


def timestamp(now: datetime) -> str:
    """RFC 3339 in UTC with second precision, as the API server writes it."""
    return now.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def set_condition(
    conditions: list[dict[str, Any]],
    *,
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """New list with `type_` set; lastTransitionTime moves only when the status value flips."""
    value = "Unknown" if status is None else ("True" if status else "False")
    previous = get_condition(conditions, type_)
    transitioned = previous is None or previous.get("status") != value
    updated = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": timestamp(now)
        if transitioned
        else previous.get("lastTransitionTime", timestamp(now)),  # type: ignore[union-attr]
        "observedGeneration": generation,
    }
    others = [c for c in conditions if c.get("type") != type_]
    return sorted([*others, updated], key=lambda c: str(c.get("type")))


def conditions_for(
    previous: list[dict[str, Any]],
    *,
    reason: Reason,
    row: Row,
    message: str,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Every condition of the status, from the situation's row; nothing else sets them."""
    available = row.phase in AVAILABLE_PHASES
    values: dict[ConditionType, bool] = {
        ConditionType.AVAILABLE: available,
        ConditionType.READY: available,
        ConditionType.PROGRESSING: row.progressing,
        ConditionType.RECONCILING: row.progressing,
        ConditionType.DEGRADED: row.degraded,
        ConditionType.STALLED: row.stalled,
        ConditionType.MIGRATION_BLOCKED: reason is Reason.MIGRATION_BLOCKED,
    }
    known = {str(t) for t in ConditionType}
    conditions = [c for c in previous if c.get("type") in known]
    for type_, value in values.items():
        conditions = set_condition(
            conditions,
            type_=str(type_),
            status=value,
            reason=str(reason),
            message=message,
            generation=generation,
            now=now,
        )
    return conditions


def record_revision(
    history: list[dict[str, Any]],
    *,
    revision: int,
    limit: int,
    start_new: bool = False,
    **changes: Any,
) -> list[dict[str, Any]]:
    """Update the newest entry for `revision`, or append one; keep at most `limit` entries.

    `start_new` appends a fresh entry unless the newest entry is already this revision (1 → 2 →
    1 makes three entries), and marks an unfinished predecessor Superseded.
    """
    entries = [dict(e) for e in history]
    index = next(
        (i for i in range(len(entries) - 1, -1, -1) if entries[i].get("revision") == revision),
        None,
    )
    if start_new and (not entries or entries[-1].get("revision") != revision):
        if entries and entries[-1].get("outcome") in IN_PROGRESS_OUTCOMES:
            entries[-1]["outcome"] = str(Outcome.SUPERSEDED)
        entries.append({"revision": revision})
        index = len(entries) - 1
    if index is None:
        return entries[-limit:]
    entries[index].update(
        {k: (str(v) if isinstance(v, enum.Enum) else v) for k, v in changes.items()}
    )
    return entries[-limit:]


def latest_entry(history: list[dict[str, Any]], release: str | None) -> dict[str, Any]:
    """The newest history entry of `release` ({} if none)."""
    return next((e for e in reversed(history) if e.get("release") == release), {})


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch turning `old` into `new` (removed keys become null)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif before != value or key not in old:
            patch[key] = value
    return patch
