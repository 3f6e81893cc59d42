"""Smoke test of the local Kubernetes cluster (hack/local-cluster) with the service image.

Proves, against a real cluster: a two-replica Deployment of the service becomes Ready through
its readiness probe; its ClusterIP Service answers by DNS name from another pod; a Job runs to
completion; names outside the cluster do not resolve; kubectl logs, exec and port-forward work.

Needs KUBECONFIG. Without it the tests skip, except under CI=true, where they fail: CI brings
the cluster up first (hack/cluster/ci-smoke). Every wait has a deadline; nothing sleeps blindly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cluster.kube_support import (
    VOLUMES,
    Kubectl,
    cluster_setting,
    describe,
    port_forward,
    service_container,
    wait_until,
)

pytestmark = pytest.mark.cluster
NET_ADDR_SET = "3"  # /sys/class/net/*/addr_assign_type of an address set by hand

APP = "items-smoke"
PORT = 8000


@pytest.fixture(scope="module")
def service(kube: Kubectl) -> str:
    """The service image as a two-replica Deployment behind a ClusterIP Service, once Ready.
    Returns the Service's DNS name."""
    container = service_container()
    container["ports"] = [{"name": "http", "containerPort": PORT}]
    container["livenessProbe"] = {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 10,
        "failureThreshold": 6,
    }
    container["readinessProbe"] = {
        "httpGet": {"path": "/readyz", "port": "http"},
        "periodSeconds": 2,
    }
    labels = {"app": APP}
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": APP, "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [container], "volumes": VOLUMES},
                },
            },
        }
    )
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": APP, "labels": labels},
            "spec": {
                "type": "ClusterIP",
                "selector": labels,
                "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
            },
        }
    )

    def ready() -> bool:
        status = kube.get("deployment", APP).get("status", {})
        return bool(status.get("readyReplicas") == 2 and status.get("updatedReplicas") == 2)

    wait_until(
        "2 Ready replicas of the service", ready, timeout=180, describe=lambda: describe(kube)
    )
    return f"{APP}.{kube.namespace}.svc.cluster.local"


# Run inside a pod: GET the Service by DNS name (a few tries: the endpoints may lag the probe),
# then check that a name outside the cluster does not resolve (CoreDNS forwards nothing).
_PROBE_SCRIPT = """
import socket, sys, time, urllib.request
url = sys.argv[1]
for attempt in range(30):
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            print("service answered", response.status, response.read()[:200].decode())
            break
    except OSError as exc:
        print("attempt", attempt, "failed:", exc)
        time.sleep(1)
else:
    sys.exit("service never answered")
try:
    socket.getaddrinfo("example.com", 80)
except socket.gaierror as exc:
    print("outside name does not resolve:", exc)
else:
    sys.exit("example.com resolved: DNS must not leave the cluster")
"""


def test_deployment_becomes_ready_through_probes(kube: Kubectl, service: str) -> None:
    pods = json.loads(kube.run("get", "pods", "-l", f"app={APP}", "-o", "json").stdout)["items"]
    ready = [
        pod
        for pod in pods
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod["status"].get("conditions", [])
        )
    ]
    assert len(ready) >= 2, describe(kube)
    for pod in ready:
        assert pod["status"]["podIP"].startswith("10.244."), pod["status"]


def test_job_reaches_service_by_dns_name(kube: Kubectl, service: str) -> None:
    job = "dns-probe"
    kube.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": job},
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": 120,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            service_container(
                                args=[
                                    "python3",
                                    "-c",
                                    _PROBE_SCRIPT,
                                    f"http://{service}:{PORT}/healthz",
                                ]
                            )
                        ],
                        "volumes": VOLUMES,
                    }
                },
            },
        }
    )

    def finished() -> str | None:
        status = kube.get("job", job).get("status", {})
        if status.get("succeeded"):
            return "succeeded"
        if status.get("failed"):
            return "failed"
        return None

    outcome = wait_until(
        "the Job to finish", finished, timeout=150, describe=lambda: describe(kube)
    )
    logs = kube.run("logs", f"job/{job}", check=False)
    assert outcome == "succeeded", f"{logs.stdout}\n{logs.stderr}\n{describe(kube)}"
    assert "service answered 200" in logs.stdout
    assert "outside name does not resolve" in logs.stdout


def test_logs_and_exec(kube: Kubectl, service: str) -> None:
    logs = kube.run("logs", f"deployment/{APP}", "--tail=50")
    assert logs.stdout.strip(), "the service wrote no logs"
    out = kube.run(
        "exec",
        f"deployment/{APP}",
        "--",
        "python3",
        "-c",
        "import os; print('exec ok', os.getcwd())",
    )
    assert "exec ok /var/lib/items" in out.stdout


def test_port_forward_to_loopback(kube: Kubectl, service: str) -> None:
    with port_forward(kube, f"service/{APP}", PORT) as client:
        wait_until(
            "GET /healthz through port-forward",
            lambda: client.get("/healthz", timeout=3).status_code == 200,
            timeout=30,
        )


def _lib_value(name: str) -> str:
    value = cluster_setting("lib.sh", name)
    assert value, f"{name} is not set in hack/cluster/lib.sh"
    return value


def test_gateway_mac_is_pinned(service: str) -> None:
    """The pods' gateway (the bridge, the way to every Service address) keeps one MAC while
    pods come and go: unpinned, the kernel gives it the lowest port's, and each change leaves
    every pod's ARP entry for it stale until re-probed (~40 changes in one cluster-suite run)."""
    link = Path("/sys/class/net") / _lib_value("BRIDGE")
    assert (link / "addr_assign_type").read_text().strip() == NET_ADDR_SET
    assert (link / "address").read_text().strip() == _lib_value("BRIDGE_MAC")
    assert any((link / "brif").iterdir()), "no pod is attached to the bridge"


def _cpu_cgroup(pid: int) -> str:
    """PID's cgroup in the hierarchy that holds the cpu controller (v1), else the v2 one."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return path
    return next(
        path for _, controllers, path in (ln.split(":", 2) for ln in lines) if not controllers
    )


def _pids(*, program: str | None = None, cmdline_has: str | None = None) -> list[int]:
    """PIDs of a program (by its executable's name) or with a command line containing a text."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit():
                continue
            if program is not None and os.path.basename(os.readlink(proc / "exe")) != program:
                continue
            cmdline = (proc / "cmdline").read_text().replace("\0", " ")
            if cmdline_has is None or cmdline_has in cmdline:
                pids.append(int(proc.name))
        except OSError:  # gone meanwhile, or a kernel thread
            continue
    return pids


def test_daemons_share_one_cpu_cgroup(service: str) -> None:
    """The cluster's daemons sit in one CPU cgroup beside the pods, as a node's sit in
    system.slice: in the root cgroup every runnable thread of theirs would weigh as much as
    all pods together (cgroup v1), and a busy API server starved every pod at once."""
    group = f"/{_lib_value('SYSTEM_CGROUP')}"
    v2_controllers = Path("/sys/fs/cgroup/cgroup.subtree_control")
    if not Path("/sys/fs/cgroup/cpu").is_dir() and not (
        v2_controllers.exists() and "cpu" in v2_controllers.read_text().split()
    ):
        pytest.skip("this host has no CPU cgroup controller: the daemons share the root's")
    for daemon in ("etcd", "kube-apiserver", "kubelet", "containerd"):
        # The cluster's own (Docker runs a containerd of its own): its paths are on the line.
        pids = _pids(program=daemon, cmdline_has="items-local-cluster")
        assert pids, f"{daemon} is not running"
        for pid in pids:
            assert _cpu_cgroup(pid) == group, f"{daemon} (pid {pid}) is in {_cpu_cgroup(pid)}"
    # The service's own processes are the pods', not the daemons'.
    servers = _pids(cmdline_has="items-service serve")
    assert servers, "no process of the service's pods found"
    assert all("kubepods" in _cpu_cgroup(p) for p in servers)
    v1 = Path("/sys/fs/cgroup/cpu") / group.lstrip("/") / "cpu.shares"
    v2 = Path("/sys/fs/cgroup") / group.lstrip("/") / "cpu.weight"
    if v1.exists():
        assert v1.read_text().strip() == _lib_value("SYSTEM_CPU_SHARES")
    else:
        assert v2.read_text().strip() == _lib_value("SYSTEM_CPU_WEIGHT")
