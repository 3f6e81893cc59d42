"""The readiness window: the spec's, or learned from how fast this service became ready before.

When `spec.rollout.readinessTimeoutSeconds` is not set, the window is WINDOW_FACTOR x the slowest
time-to-ready of the last RECENT_RELEASES good releases (`timeToReadySeconds` of their
`status.history` entries, recorded when each became Available), clamped to
[WINDOW_FLOOR, WINDOW_CEILING]. Without such history it is the ceiling, the window this operator
always had. The ceiling is the old default on purpose: learning only ever shortens the wait
for a service known to start fast; a slow starter keeps today's window, and one slower than
that sets the field or a startup probe (whose budget comes on top, verdict.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

WINDOW_FACTOR = 3
RECENT_RELEASES = 3
WINDOW_FLOOR = timedelta(seconds=20)
WINDOW_CEILING = timedelta(seconds=120)
DEFAULT_WINDOW = WINDOW_CEILING


def recent_times_to_ready(history: Iterable[dict[str, Any]]) -> list[int]:
    """Time-to-ready of the newest good releases, newest last."""
    seconds = [
        int(entry["timeToReadySeconds"])
        for entry in history
        if entry.get("outcome") == "Available"
        and isinstance(entry.get("timeToReadySeconds"), int)
        and entry["timeToReadySeconds"] >= 0
    ]
    return seconds[-RECENT_RELEASES:]


def readiness_window(spec_seconds: int | None, history: Iterable[dict[str, Any]]) -> timedelta:
    if spec_seconds is not None:
        return timedelta(seconds=spec_seconds)
    recent = recent_times_to_ready(history)
    if not recent:
        return DEFAULT_WINDOW
    learned = timedelta(seconds=WINDOW_FACTOR * max(recent))
    return min(max(learned, WINDOW_FLOOR), WINDOW_CEILING)
