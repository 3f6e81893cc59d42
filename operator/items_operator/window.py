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

The learned window judges a server that is up and says it is not ready: a pod whose /readyz
has not answered at all by the window's end (not listening yet, or too starved of CPU to
answer: a node busy starting many pods at once) is still starting. It gets the window again
from its first answer, and at most the ceiling from its start (unready_due): history
measured on a quiet node does not roll back a good release on a busy one.

Under either window, a pod whose /readyz answered the operator's read ready (200) once has
been ready, whether or not the kubelet's probe saw it (a blip can fall between two probes): it
gets a fresh window from that answer, as a pod the kubelet saw ready and then lost does
(verdict.window_start). Only an answer within the window the pod had counts: a server that
says ready to the operator and never to the kubelet is judged a window after its first ready
answer, at most two windows after its start.

Without such history the window is the ceiling, the window this operator always had. The
ceiling is the old default on purpose: learning only ever shortens the wait for a service known
to start fast; a slow starter keeps today's window, and one slower than that sets the field
or a startup probe (whose budget comes on top, verdict.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from items_operator.observe import PodObservation

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


def silent_window(spec_seconds: int | None) -> timedelta | None:
    """How long a pod whose server has not answered /readyz yet may take from its start under
    a learned window (the ceiling); None under the spec's window, which every pod gets alike."""
    return None if spec_seconds is not None else WINDOW_CEILING


def verdict_lead(spec_seconds: int | None) -> timedelta:
    """How long before a readiness window's end the verdict is taken (see the module's doc)."""
    return timedelta(0) if spec_seconds is not None else LEARNED_WINDOW_LEAD


def unready_due(
    pod: PodObservation,
    start: datetime,
    window: timedelta,
    silent_window: timedelta | None,
    lead: timedelta,
) -> tuple[datetime, str]:
    """When an unready pod's window ends, and the failure's detail if it does.

    With `silent_window` (a learned window), a pod whose server had not answered /readyz by
    its window's end is still starting, not refusing: it gets the window again from its first
    answer, but never more than `silent_window` from its start (the ceiling a service without
    history gets). Only a server that is up and says it is not ready is judged by what the
    service's history promises; a node too busy to start it in time is not the release's fault.
    """
    due = start + window - lead
    seconds = int(window.total_seconds())
    detail = f"not ready within its {seconds}s window"
    from_ready_answer = start == pod.ready_answered_at
    if from_ready_answer:
        detail += " from its first ready answer to the operator's /readyz read"
    if silent_window is not None and not pod.answered_by(due):
        ceiling = start + silent_window - lead
        later = pod.answered_at + window - lead if pod.answered_at is not None else ceiling
        due = min(later, ceiling)
        silent = int(silent_window.total_seconds())
        detail = (
            f"no answer from /readyz within {silent}s of its start (its learned {seconds}s "
            "window counts once it answers)"
            if pod.answered_at is None
            else f"not ready within its {seconds}s window from its first /readyz answer "
            f"(at most {silent}s from its start)"
        )
    if (budget := pod.container.startup_budget) is not None and not from_ready_answer:
        detail += f" after its startup probe's {int(budget.total_seconds())}s budget"
    if pod.readiness_checks:  # what the service says is wrong: the on-call's first clue
        said = ", ".join(f"{k}: {v}" for k, v in sorted(pod.readiness_checks.items()))
        detail += f"; /readyz says {said}"
    return due, detail
