"""The service container's own record, beyond its waiting reason: how its runs ended, and
whether a startup probe still holds it back.

The kubelet keeps two terminations per container (`state.terminated`, the run that just ended,
and `lastState.terminated`, the one before), which is enough to see the same exit code twice or
an OOM kill before the container was ever ready. `started` is false while a startup probe has
not passed; the probe's budget (initialDelaySeconds + failureThreshold x periodSeconds, the
kubelet's defaults when unset) bounds how long that may last before the kubelet restarts it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from items_operator.constants import CONTAINER_NAME

# The kubelet's defaults for a probe's fields left unset.
PROBE_PERIOD_DEFAULT = 10
PROBE_FAILURE_THRESHOLD_DEFAULT = 3


def parse_time(value: str | None) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, `Z` for UTC), or None when unset."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True)
class Termination:
    """One ended run of the container, as the kubelet recorded it."""

    reason: str  # Error, OOMKilled, Completed, StartError, ContainerCannotRun, ...
    exit_code: int
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def start_failure(self) -> str | None:
        """The service's own report that this run could not start, for a reason no restart
        heals (service/start_report.py: an invalid argument or setting); None otherwise."""
        if not self.message.startswith("{"):
            return None
        try:
            report = json.loads(self.message)
        except ValueError:
            return None
        reason = report.get("startFailure") if isinstance(report, dict) else None
        if not isinstance(reason, str):
            return None
        detail = " ".join(str(report.get("detail") or "").split())  # one line, for a condition
        return f"{reason}: {detail}" if detail else reason


@dataclass(frozen=True)
class ServiceContainer:
    terminated: Termination | None = None  # state.terminated: the run that just ended
    last_terminated: Termination | None = None  # lastState.terminated: the run before
    # containerStatus.started: False while a startup probe has not passed (None: unknown).
    started: bool | None = None
    # The pod spec's startup probe budget; None without a startup probe.
    startup_budget: timedelta | None = None

    @property
    def terminations(self) -> tuple[Termination, ...]:
        return tuple(t for t in (self.terminated, self.last_terminated) if t is not None)

    @property
    def startup_pending(self) -> bool:
        """A startup probe has not passed yet: the readiness probe does not even run."""
        return self.startup_budget is not None and self.started is not True


def _termination(state: dict[str, Any] | None) -> Termination | None:
    terminated = (state or {}).get("terminated")
    if not isinstance(terminated, dict):
        return None
    return Termination(
        reason=str(terminated.get("reason") or ""),
        exit_code=int(terminated.get("exitCode") or 0),
        message=str(terminated.get("message") or ""),
        started_at=parse_time(terminated.get("startedAt")),
        finished_at=parse_time(terminated.get("finishedAt")),
    )


def probe_budget(probe: dict[str, Any] | None) -> timedelta | None:
    """The longest a probe may fail before the kubelet acts: initial delay + threshold x period."""
    if not isinstance(probe, dict):
        return None
    period = int(probe.get("periodSeconds") or PROBE_PERIOD_DEFAULT)
    threshold = int(probe.get("failureThreshold") or PROBE_FAILURE_THRESHOLD_DEFAULT)
    return timedelta(seconds=int(probe.get("initialDelaySeconds") or 0) + threshold * period)


def observe_service_container(spec: dict[str, Any], status: dict[str, Any]) -> ServiceContainer:
    container: dict[str, Any] = next(
        (c for c in spec.get("containers") or [] if c.get("name") == CONTAINER_NAME), {}
    )
    state: dict[str, Any] = next(
        (s for s in status.get("containerStatuses") or [] if s.get("name") == CONTAINER_NAME), {}
    )
    started = state.get("started")
    return ServiceContainer(
        terminated=_termination(state.get("state")),
        last_terminated=_termination(state.get("lastState")),
        started=bool(started) if started is not None else None,
        startup_budget=probe_budget(container.get("startupProbe")),
    )
