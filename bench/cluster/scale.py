"""What the operator costs: API requests and writes per ItemService in a steady period, RSS and
CPU at each level of ItemServices (default 1, 50 and 200; replicas 0, so no server pods; each
still gets its migration Job), and how long the largest level, newly applied at once, takes to
reach its first steady phase, with the node's CPU and the operator's share of it.

Process figures come from /proc/1 inside the operator's container (its only process), request
counts from its Prometheus counters (the Lease's own requests apart), the node's CPU from this
machine's /proc/stat (the local cluster's only node is this machine). Before each measurement
the operator pod is replaced, so each level is measured on a fresh process that picked the
ItemServices up at start.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from bench.cluster.platform import OPERATOR_NAMESPACE, SCALE, Platform
from bench.cluster.workloads import item_service, service_spec
from tests.cluster.kube_support import Kubectl, wait_until
from tests.operator.cluster.e2e import secret

# A first steady phase: nothing left in progress (Failed and Degraded count, and are reported).
TRANSIENT_PHASES = ("", "Pending", "Migrating", "RollingOut")
SETTLE_TIMEOUT = 2400.0
APPLY_CHUNK = 100  # 1,000 migration pods on a 2-core node take a while
PROBE = r"""
import json, os, urllib.request
status = dict(line.split(":", 1) for line in open("/proc/1/status"))
stat = open("/proc/1/stat").read().rsplit(")", 1)[1].split()
ticks = os.sysconf("SC_CLK_TCK")
metrics = urllib.request.urlopen("http://127.0.0.1:9090/metrics", timeout=10).read().decode()
print(json.dumps({
    "rss_kib": int(status["VmRSS"].split()[0]), "hwm_kib": int(status["VmHWM"].split()[0]),
    "cpu_seconds": (int(stat[11]) + int(stat[12])) / ticks, "metrics": metrics,
}))
"""


@dataclass(frozen=True)
class Sample:
    at: float
    rss_mib: float
    hwm_mib: float
    cpu_seconds: float
    reconciles: float
    reads: float
    writes: float
    lease_requests: float
    watch_requests: float  # the informers' list pages and watch requests
    node_busy_seconds: float


def node_busy_seconds() -> float:
    """CPU seconds this machine (the cluster's node) spent busy since boot, all cores."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _counter(metrics: str, name: str, labels: str = "") -> float:
    pattern = re.compile(rf"^{name}(\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return sum(float(m.group(2)) for m in pattern.finditer(metrics) if labels in (m.group(1) or ""))


class Operator:
    def __init__(self, platform: Platform) -> None:
        self.kube = Kubectl(OPERATOR_NAMESPACE)
        self.selector = platform.operator_selector()

    def pod(self) -> str | None:
        pods = json.loads(self.kube.run("get", "pods", "-l", self.selector, "-o", "json").stdout)
        for pod in pods["items"]:
            statuses = pod.get("status", {}).get("containerStatuses") or []
            if (
                "deletionTimestamp" not in pod["metadata"]
                and statuses
                and all(s.get("ready") for s in statuses)
            ):
                return str(pod["metadata"]["name"])
        return None

    def sample(self) -> Sample:
        pod = wait_until("a ready operator pod", self.pod, 120)
        out = self.kube.run("exec", pod, "--", "/opt/venv/bin/python", "-c", PROBE).stdout
        data = json.loads(out)
        metrics = data["metrics"]
        return Sample(
            at=time.time(),
            rss_mib=data["rss_kib"] / 1024,
            hwm_mib=data["hwm_kib"] / 1024,
            cpu_seconds=data["cpu_seconds"],
            reconciles=_counter(metrics, "items_operator_reconciles_total", 'result="ok"'),
            reads=_counter(metrics, "items_operator_reads_total"),
            writes=_counter(metrics, "items_operator_writes_total"),
            lease_requests=_counter(metrics, "items_operator_lease_requests_total"),
            watch_requests=_counter(metrics, "items_operator_watch_requests_total"),
            node_busy_seconds=node_busy_seconds(),
        )

    def terminations(self) -> list[str]:
        """Why the operator's containers last ended (OOMKilled, ...), for a failed level."""
        pods = json.loads(self.kube.run("get", "pods", "-l", self.selector, "-o", "json").stdout)
        return [
            f"{pod['metadata']['name']}: {ended.get('reason')} (exit {ended.get('exitCode')}), "
            f"{status.get('restartCount', 0)} restarts"
            for pod in pods["items"]
            for status in pod.get("status", {}).get("containerStatuses") or []
            if (ended := (status.get("lastState") or {}).get("terminated"))
        ]

    def restart(self) -> None:
        old = self.pod()
        self.kube.run("delete", "pod", "-l", self.selector, "--wait=false")
        wait_until("a new operator pod", lambda: (p := self.pod()) is not None and p != old, 180)


def _phases(kube: Kubectl, names: set[str]) -> dict[str, int] | None:
    """Phase counts once every named ItemService has left the transient phases, else None."""
    listed = json.loads(kube.run("get", "itemservices", "-o", "json", timeout=120).stdout)
    counts: dict[str, int] = {}
    for item in listed["items"]:
        if item["metadata"]["name"] not in names:
            continue
        status = item.get("status") or {}
        if (
            status.get("phase", "") in TRANSIENT_PHASES
            or status.get("observedGeneration") != item["metadata"]["generation"]
        ):
            return None
        counts[status["phase"]] = counts.get(status["phase"], 0) + 1
    return counts if sum(counts.values()) == len(names) else None


def _not_available(kube: Kubectl) -> dict[str, str]:
    """name -> status message of every ItemService that settled in another phase than
    Available (so a failure at scale is reported with its reason)."""
    listed = json.loads(kube.run("get", "itemservices", "-o", "json", timeout=120).stdout)
    return {
        item["metadata"]["name"]: f"{status.get('phase')}: {status.get('message', '')}"
        for item in listed["items"]
        if (status := item.get("status") or {}).get("phase") != "Available"
    }


def _apply(platform: Platform, names: list[str]) -> None:
    """Secrets, then ItemServices, as Lists of APPLY_CHUNK, as a GitOps sync would: one List
    of 1,000 ItemServices outlasted kubectl's 300 s on a node busy with the first ones'
    migrations (2026-12-02 16:35)."""
    kube, db = Kubectl(SCALE), platform.database
    url = f"mysql+pymysql://root:{db.password}@{db.host}:3306/"
    secrets = [secret(f"{n}-db", url + n.replace("-", "_")) for n in names]
    services = [
        item_service(n, service_spec(platform.images.v1, f"{n}-db", replicas=0)) for n in names
    ]
    for objects in (secrets, services):
        for start in range(0, len(objects), APPLY_CHUNK):
            items = objects[start : start + APPLY_CHUNK]
            kube.run(
                "apply",
                "-f",
                "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
                timeout=300,
            )


def measure(operator: Operator, count: int, window: float) -> dict[str, Any]:
    """Fresh operator process with `count` ItemServices: wait until it has reconciled each
    once, then sample twice, `window` seconds apart."""
    operator.restart()
    wait_until(
        f"the new operator to reconcile {count} ItemServices",
        lambda: operator.sample().reconciles >= count,
        300,
    )
    first = operator.sample()
    # A measurement window: the operator is left alone to show its idle cost.
    time.sleep(window)
    last = operator.sample()
    reconciles = last.reconciles - first.reconciles
    return {
        "item_services": count,
        "rss_mib": round(last.rss_mib, 1),
        "peak_rss_mib": round(last.hwm_mib, 1),
        "cpu_percent": round(
            100 * (last.cpu_seconds - first.cpu_seconds) / (last.at - first.at), 2
        ),
        "window_seconds": round(last.at - first.at, 1),
        "reconciles": reconciles,
        "reads": last.reads - first.reads,
        "writes": last.writes - first.writes,
        "reads_per_item_service": round((last.reads - first.reads) / count, 3),
        "writes_per_item_service": round((last.writes - first.writes) / count, 3),
        "lease_requests": last.lease_requests - first.lease_requests,
        "watch_requests": last.watch_requests - first.watch_requests,
        "reads_per_reconcile": round((last.reads - first.reads) / reconciles, 2)
        if reconciles
        else None,
        "writes_per_reconcile": round((last.writes - first.writes) / reconciles, 3)
        if reconciles
        else None,
    }


def _measured(operator: Operator, count: int, window: float) -> dict[str, Any]:
    """measure(), or what went wrong at this level (an OOM-killed operator is a result too)."""
    try:
        return measure(operator, count, window)
    except Exception as error:  # the other levels' figures must survive
        return {
            "item_services": count,
            "failed": str(error)[:300],
            "operator_terminations": operator.terminations(),
        }


def run(
    platform: Platform, levels: list[int], window: float, results: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Fills `results` as it goes (levels, then the settle), so a failure keeps what was
    measured before it."""
    kube, operator = Kubectl(SCALE), Operator(platform)
    largest = max(levels)
    names = [f"scale-{i:03d}" for i in range(1, largest + 1)]
    platform.database.sql("; ".join(f"CREATE DATABASE `{n.replace('-', '_')}`" for n in names))
    results = results if results is not None else {}
    results.setdefault("levels", [])
    applied = 0
    for level in sorted(levels)[:-1]:
        _apply(platform, names[applied:level])
        applied = level
        wait_until(
            f"{level} ItemServices steady",
            partial(_phases, kube, set(names[:level])),
            SETTLE_TIMEOUT,
        )
        results["levels"].append(_measured(operator, level, window))

    # The largest level is applied all at once on an empty namespace: the settle figure.
    kube.run("delete", "itemservices", "--all", "--timeout=300s", timeout=320)
    kube.run("delete", "jobs", "--all", "--timeout=300s", timeout=320)
    before = operator.sample()
    started = time.time()
    _apply(platform, names)
    applied_in = time.time() - started
    phases = wait_until(
        f"{largest} ItemServices steady", partial(_phases, kube, set(names)), SETTLE_TIMEOUT
    )
    settled = operator.sample()
    results["settle"] = {
        "item_services": largest,
        "apply_seconds": round(applied_in, 1),
        "seconds_to_steady": round(settled.at - started, 1),
        "operator_cpu_seconds": round(settled.cpu_seconds - before.cpu_seconds, 1),
        "node_cpu_seconds": round(settled.node_busy_seconds - before.node_busy_seconds, 1),
        "node_cores": os.cpu_count(),
        "writes": settled.writes - before.writes,
        "reads": settled.reads - before.reads,
        "peak_rss_mib": round(settled.hwm_mib, 1),
        "phases": phases,
        "not_available": _not_available(kube),
    }
    results["levels"].append(_measured(operator, largest, window))
    return results
