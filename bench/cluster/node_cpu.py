"""Where the node's CPU goes while the episodes run, sampled once a second: the whole node
(/proc/stat), the pods (the kubelet's `kubepods` cgroup), the cluster's daemons (the
`items-local-cluster` cgroup hack/local-cluster starts them in) and the rest (this benchmark,
Docker, the shell), with the kernel's CPU pressure (the share of time some runnable task
waited). The local cluster's only node is this machine, so these are the node's own counters.

A client's failed requests are put beside the second they happened in: a request that timed
out while every core was taken is the node's capacity, not the delivery mechanism's doing.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.cluster.kube_support import cluster_setting

CPUACCT = Path("/sys/fs/cgroup/cpuacct")  # cgroup v1; under v2 the groups' share is not taken
PODS_CGROUP = "kubepods"
# The cgroup hack/local-cluster starts the daemons in, named in one place (hack/cluster/lib.sh).
DAEMONS_CGROUP = cluster_setting("lib.sh", "SYSTEM_CGROUP")
PRESSURE = Path("/proc/pressure/cpu")
TICKS = os.sysconf("SC_CLK_TCK")
BUSY_PRESSURE = 90.0  # % of the last 10 s some task waited for a CPU: the node is full


@dataclass(frozen=True)
class Sample:
    t: float
    busy: float  # CPU-seconds used on the node so far
    pods: float | None
    daemons: float | None
    pressure: float | None  # CPU "some" avg10, %


def _busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS  # all but idle and iowait


def _cgroup_seconds(name: str | None) -> float | None:
    if not name:
        return None
    try:
        return int((CPUACCT / name / "cpuacct.usage").read_text()) / 1e9
    except (OSError, ValueError):
        return None


def _pressure() -> float | None:
    try:
        some = PRESSURE.read_text().split("\n", 1)[0]
        return float(some.split()[1].removeprefix("avg10="))
    except (OSError, IndexError, ValueError):
        return None


def sample() -> Sample:
    return Sample(
        time.time(),
        _busy_seconds(),
        _cgroup_seconds(PODS_CGROUP),
        _cgroup_seconds(DAEMONS_CGROUP),
        _pressure(),
    )


class NodeCpu:
    """A sampling thread for the length of a `with` block, bounded by `limit` seconds."""

    def __init__(self, limit: float = 4 * 3600.0, interval: float = 1.0) -> None:
        self.samples: list[Sample] = []
        self._limit, self._interval = limit, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-cpu", daemon=True)

    def __enter__(self) -> NodeCpu:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        end = time.monotonic() + self._limit
        while not self._stop.is_set() and time.monotonic() < end:
            self.samples.append(sample())
            self._stop.wait(self._interval)

    def summary(self, start: float, end: float) -> dict[str, Any] | None:
        return summarize([s for s in self.samples if start <= s.t <= end])

    def at(self, when: float) -> Sample | None:
        """The sample closing the second `when` fell in."""
        return next((s for s in self.samples if s.t >= when), None)


def _share(first: Sample, last: Sample, attr: str, busy: float) -> float | None:
    a, b = getattr(first, attr), getattr(last, attr)
    return None if a is None or b is None or busy <= 0 else round(100 * (b - a) / busy, 1)


def summarize(samples: list[Sample]) -> dict[str, Any] | None:
    """The node's busy share of its cores, each side's share of that, and the pressure."""
    if len(samples) < 2:
        return None
    first, last = samples[0], samples[-1]
    elapsed, busy = last.t - first.t, last.busy - first.busy
    pressures = [s.pressure for s in samples if s.pressure is not None]
    return {
        "seconds": round(elapsed),
        "busy_percent": round(100 * busy / (elapsed * (os.cpu_count() or 1)), 1),
        "pods_percent": _share(first, last, "pods", busy),
        "daemons_percent": _share(first, last, "daemons", busy),
        "pressure_mean": round(statistics.fmean(pressures), 1) if pressures else None,
        "pressure_max": max(pressures, default=None),
        "seconds_full": sum(1 for p in pressures if p >= BUSY_PRESSURE),
    }


def class_cpu(cpu: NodeCpu, episodes: list[Any]) -> dict[str, Any] | None:
    """The node's CPU from a class's first episode's start to its last one's end."""
    ends = [e.ended for e in episodes if e.ended is not None]
    if not episodes or not ends:
        return None
    return cpu.summary(min(e.started for e in episodes), max(ends))


def failures_in_context(
    cpu: NodeCpu, errors: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Each client's recorded failure with the node's CPU pressure of that second."""
    placed = []
    for client, recorded in errors.items():
        for error in recorded:
            at = cpu.at(float(error["t"]))
            placed.append(
                {
                    **error,
                    "client": client,
                    "pressure": None if at is None else at.pressure,
                }
            )
    return sorted(placed, key=lambda e: float(e["t"]))


def as_dicts(samples: list[Sample]) -> list[dict[str, Any]]:
    return [asdict(s) for s in samples]
