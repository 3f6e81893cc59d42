"""The readiness window: the spec's, or learned from how fast this service became ready before.

When `spec.rollout.readinessTimeoutSeconds` is not set, the window is WINDOW_FACTOR x the
time-to-ready the service has now: the previous good release's, or the (low) median of the last
RECENT_RELEASES good releases' when that is slower (`timeToReadySeconds` of their
`status.history` entries, recorded when each became Available), clamped to
[WINDOW_FLOOR, WINDOW_CEILING]. An old outlier (a first install on a busy node, next to a whole
fleet migrating) does not stretch every later window; a newest release that is slower than the
ones before it is believed at once (the service got slower: a false rollback costs more than
a few seconds of waiting), and so is a run of slow ones.

A learned window is the operator's promise of a verdict within 3 x the service's
time-to-ready: it is the time by which the rollback has started, so the verdict is taken
LEARNED_WINDOW_LEAD before its end (the pass and its writes take a fraction of a second, and
the container's start it counts from is a whole-second stamp); a pod gets at least the window
less 2.5 s (the stamp's truncation and the ±0.5 s of the server clock's reading on top), at
the floor 17.5 s against a time-to-ready of at most 6 s. The spec's window is what the person
granted each pod: judged at its end, never before.

Without such history the window is the ceiling, the window this operator always had. The
ceiling is the old default on purpose: learning only ever shortens the wait for a service known
to start fast; a slow starter keeps today's window, and one slower than that sets the field
or a startup probe (whose budget comes on top, verdict.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

WINDOW_FACTOR = 3
RECENT_RELEASES = 3
WINDOW_FLOOR = timedelta(seconds=20)
WINDOW_CEILING = timedelta(seconds=120)
DEFAULT_WINDOW = WINDOW_CEILING
LEARNED_WINDOW_LEAD = timedelta(seconds=1)


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
    typical = max(recent[-1], statistics.median_low(recent))
    learned = timedelta(seconds=WINDOW_FACTOR * typical)
    return min(max(learned, WINDOW_FLOOR), WINDOW_CEILING)


def verdict_lead(spec_seconds: int | None) -> timedelta:
    """How long before a readiness window's end the verdict is taken (see the module's doc)."""
    return timedelta(0) if spec_seconds is not None else LEARNED_WINDOW_LEAD
