"""The in-cluster REST client of every episode: the end-to-end tests' client pod
(tests/e2e/platform.py) against the workload's Service by DNS name (kube-proxy, real endpoints),
creating its own item, 10 requests a second on a fixed schedule (fewer only while an answer
takes longer than 0.1 s); its per-second buckets put failures on the episode's timeline."""

from __future__ import annotations

from typing import Any

from tests.cluster.kube_support import Kubectl
from tests.e2e.platform import ClientLoop, client_pod

REQUEST_INTERVAL = 0.1
# What the scheduler reserves per client (it uses ~2m at 10 req/s): 20 workloads' clients, pods
# and surge pods must fit a 2-core node's requests, or a class measures capacity (Pending).
CLIENT_CPU_REQUEST = "5m"


def client(kube: Kubectl, workload: str, image: str, deadline: float) -> ClientLoop:
    name = f"client-{workload}"
    url = f"http://{workload}.{kube.namespace}.svc.cluster.local:80"
    pod = client_pod(name, image, url, deadline, interval=REQUEST_INTERVAL, paced=True)
    pod["metadata"]["labels"] = {"app": "bench-client"}
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = CLIENT_CPU_REQUEST
    return ClientLoop(kube, name, pod)


def failures_between(result: dict[str, Any], start: float, end: float) -> tuple[int, int]:
    """(failed, total) requests the client counted in [start, end] (whole seconds)."""
    failed = total = 0
    for second, (ok, bad) in result.get("buckets", {}).items():
        if int(start) <= int(second) <= int(end):
            failed += bad
            total += ok + bad
    return failed, total
