"""The operator's replicas and its Lease, for the tests that run two of them (issue #13); the
`two_operators` fixture (conftest.py) scales the operator Deployment for them."""

from __future__ import annotations

from typing import Any

from tests.cluster.kube_support import Kubectl, port_forward
from tests.operator.cluster.e2e import E2E, OPERATOR_NAMESPACE, metric_total

LEASE = "items-operator"
LEASE_DURATION = 15  # the operator's default (operator/deploy/operator.yaml passes none)
RETRY_PERIOD = 2


def operator_kube() -> Kubectl:
    return Kubectl(OPERATOR_NAMESPACE)


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return (
        "deletionTimestamp" not in pod["metadata"]
        and status.get("phase") == "Running"
        and all(c.get("ready") for c in status.get("containerStatuses") or [{}])
    )


def ready_operator_pods(e2e: E2E) -> list[str]:
    return [p["metadata"]["name"] for p in e2e.operator_pods() if _ready(p)]


def holder() -> str:
    """The Lease's holderIdentity: the pod's name + "-" + a suffix drawn at each start, so a
    restarted container is a new holder ("" when nobody holds it)."""
    lease = operator_kube().get("lease", LEASE)
    return str(lease["spec"].get("holderIdentity") or "")


def pod_of(identity: str) -> str:
    return identity.rsplit("-", 1)[0]


def holder_pod() -> str:
    return pod_of(holder())


def restarts(pod: str) -> int:
    statuses = operator_kube().get("pod", pod)["status"].get("containerStatuses") or [{}]
    return int(statuses[0].get("restartCount", 0))


def counters(pod: str) -> dict[str, float]:
    """The pod's own view: its passes, its writes, its fenced passes, and whether it leads."""
    with port_forward(operator_kube(), f"pod/{pod}", 9090) as metrics:
        text = metrics.get("/metrics").text
    names = ("reconciles_total", "writes_total", "fenced_total", "leader")
    return {name: metric_total(text, f"items_operator_{name}") for name in names}
