"""Status helpers: conditions that keep lastTransitionTime, bounded history, merge patches."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any


class Phase(enum.StrEnum):
    PENDING = "Pending"
    MIGRATING = "Migrating"
    ROLLING_OUT = "RollingOut"
    AVAILABLE = "Available"
    DEGRADED = "Degraded"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


class ConditionType(enum.StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    MIGRATION_SUCCEEDED = "MigrationSucceeded"
    ROLLED_BACK = "RolledBack"


class Outcome(enum.StrEnum):
    MIGRATING = "Migrating"
    MIGRATION_FAILED = "MigrationFailed"
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


def record_revision(
    history: list[dict[str, Any]],
    *,
    image: str,
    limit: int,
    start_new: bool = False,
    **changes: Any,
) -> list[dict[str, Any]]:
    """Update the newest entry for `image`, or append one; keep at most `limit` entries.

    `start_new` appends a fresh entry unless the newest entry is already this image (A → B → A
    makes three entries), and marks an unfinished predecessor Superseded.
    """
    entries = [dict(e) for e in history]
    index = next((i for i in range(len(entries) - 1, -1, -1) if entries[i]["image"] == image), None)
    if start_new and (not entries or entries[-1]["image"] != image):
        if entries and entries[-1].get("outcome") in IN_PROGRESS_OUTCOMES:
            entries[-1]["outcome"] = str(Outcome.SUPERSEDED)
        entries.append({"image": image})
        index = len(entries) - 1
    if index is None:
        return entries[-limit:]
    entries[index].update(
        {k: (str(v) if isinstance(v, enum.Enum) else v) for k, v in changes.items()}
    )
    return entries[-limit:]


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
