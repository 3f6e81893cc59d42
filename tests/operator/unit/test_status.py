"""Conditions keep lastTransitionTime, history stays bounded, merge patches null removed keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from items_operator.status import merge_patch, record_revision, set_condition, timestamp

from .world import NOW, V1, V2


def _set(
    conditions: list[dict[str, Any]], status: bool | None, reason: str, at: int
) -> list[dict[str, Any]]:
    return set_condition(
        conditions,
        type_="Ready",
        status=status,
        reason=reason,
        message=reason,
        generation=1,
        now=NOW + timedelta(seconds=at),
    )


def test_set_condition_keeps_transition_time_while_status_holds() -> None:
    first = _set([], True, "AllReplicasReady", 0)
    same = _set(first, True, "StillReady", 60)
    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"] == "2026-11-29T02:00:00Z"
    assert same[0]["reason"] == "StillReady"


def test_set_condition_moves_transition_time_on_flip() -> None:
    first = _set([], True, "AllReplicasReady", 0)
    flipped = _set(first, False, "ReplicasNotReady", 60)
    assert flipped[0]["status"] == "False"
    assert flipped[0]["lastTransitionTime"] == "2026-11-29T02:01:00Z"
    unknown = _set(flipped, None, "Checking", 90)
    assert unknown[0]["status"] == "Unknown"


def test_set_condition_replaces_only_its_type_and_sorts() -> None:
    conditions = [{"type": "Progressing", "status": "True", "lastTransitionTime": "x"}]
    updated = _set(conditions, True, "AllReplicasReady", 0)
    assert [c["type"] for c in updated] == ["Progressing", "Ready"]
    assert updated[0] == conditions[0]


def test_timestamp_is_utc_seconds() -> None:
    assert timestamp(NOW.replace(microsecond=123456)) == "2026-11-29T02:00:00Z"


def test_history_appends_new_images_and_marks_unfinished_superseded() -> None:
    history = record_revision([], revision=1, limit=10, start_new=True, outcome="Migrating")
    history = record_revision(history, revision=2, limit=10, start_new=True, outcome="Migrating")
    assert [e["revision"] for e in history] == [1, 2]
    assert history[0]["outcome"] == "Superseded"


def test_history_updates_the_newest_entry_for_a_revision() -> None:
    history = record_revision([], revision=1, limit=10, start_new=True, outcome="Migrating")
    history = record_revision(history, revision=1, limit=10, start_new=True, outcome="RollingOut")
    history = record_revision(history, revision=1, limit=10, outcome="Available", rolledOutAt="t")
    assert history == [{"revision": 1, "outcome": "Available", "rolledOutAt": "t"}]


def test_history_is_bounded_newest_last() -> None:
    history: list[dict[str, Any]] = []
    for i in range(15):
        history = record_revision(
            history, revision=i, limit=10, start_new=True, outcome="Available"
        )
    assert len(history) == 10
    assert history[-1]["revision"] == 14
    assert history[0]["revision"] == 5


def test_history_a_b_a_makes_three_entries() -> None:
    history: list[dict[str, Any]] = []
    for revision in (1, 2, 1):
        history = record_revision(
            history, revision=revision, limit=10, start_new=True, outcome="Available"
        )
    assert [e["revision"] for e in history] == [1, 2, 1]


def test_history_update_of_unknown_revision_changes_nothing() -> None:
    history = record_revision([], revision=1, limit=10, start_new=True, outcome="Available")
    assert record_revision(history, revision=3, limit=10, outcome="RolledBack") == history


def test_merge_patch() -> None:
    old = {"phase": "Failed", "failedImage": V2, "nested": {"a": 1, "b": 2}, "same": [1]}
    new = {"phase": "Available", "nested": {"a": 1, "b": 3}, "same": [1], "lastGoodImage": V1}
    assert merge_patch(old, new) == {
        "phase": "Available",
        "failedImage": None,
        "nested": {"b": 3},
        "lastGoodImage": V1,
    }
    assert merge_patch(new, new) == {}
