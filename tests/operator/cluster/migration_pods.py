"""Watching an ItemService's migrations while something disrupts them: its migration pods, one
running mid-migration, and a sampler of how many ran at once and which Jobs existed."""

from __future__ import annotations

import subprocess
import threading
from collections import defaultdict
from typing import Any

from items_operator.constants import LABEL_MIGRATION_KEY

from tests.cluster.kube_support import wait_until
from tests.operator.cluster.e2e import Cluster

RUNNING_PHASES = ("Pending", "Running", "Unknown")


def migration_pods(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    return cluster.items(
        "pods", f"app.kubernetes.io/instance={name},app.kubernetes.io/component=migration"
    )


def running(pod: dict[str, Any]) -> bool:
    """Still running anything: not in a terminal phase (a terminating pod still runs)."""
    return pod.get("status", {}).get("phase", "Pending") in RUNNING_PHASES


def sleeping_pod(cluster: Cluster, name: str, *, besides: set[str]) -> str:
    """A migration pod whose container runs (so it is mid-migration), other than `besides`."""

    def found() -> str | None:
        for pod in migration_pods(cluster, name):
            statuses = pod.get("status", {}).get("containerStatuses") or []
            if (
                pod["metadata"]["name"] not in besides
                and "deletionTimestamp" not in pod["metadata"]
                and any("running" in (s.get("state") or {}) for s in statuses)
            ):
                return str(pod["metadata"]["name"])
        return None

    return wait_until("a running migration pod", found, 90, lambda: cluster.describe(name))


class Sampler:
    """Counts running migration pods in a thread, as often as the API answers, and keeps the
    uid of every migration Job seen per migration key (a Job deleted and made again under its
    deterministic name is a second uid)."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster, self.name = cluster, name
        self.most, self.samples = 0, 0
        self.pods: set[str] = set()
        self.jobs: defaultdict[str, set[str]] = defaultdict(set)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        pods = migration_pods(self.cluster, self.name)
        self.pods.update(p["metadata"]["name"] for p in pods)
        self.most = max(self.most, len([p for p in pods if running(p)]))
        for job in self.cluster.jobs(self.name):
            key = (job["metadata"].get("labels") or {}).get(LABEL_MIGRATION_KEY, "")
            self.jobs[key].add(job["metadata"]["uid"])
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sample()
            except (AssertionError, subprocess.TimeoutExpired):
                continue  # one failed read is a sample lost, not the end of the sampling

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
