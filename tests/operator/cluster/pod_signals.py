"""Signals to a pod's processes on this host (the local cluster's node is this machine): a
freeze (SIGSTOP, then SIGCONT) or a kill (SIGKILL, which the container cannot catch)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.kube_support import Kubectl
from tests.operator.cluster.e2e import CONTAINERD_SOCKET

CRICTL_GLOB = "/var/cache/items-platform/crictl/*/crictl"


def container_processes(kube: Kubectl, pod: str) -> list[int]:
    """Host pids of every process of the pod's first container (its pid namespace)."""
    crictl = sorted(Path("/").glob(CRICTL_GLOB.lstrip("/")))
    if not crictl:
        pytest.skip("signalling a pod needs the local cluster's crictl (hack/local-cluster)")
    container_id = kube.get("pod", pod)["status"]["containerStatuses"][0]["containerID"]
    inspected = subprocess.run(
        [
            str(crictl[-1]),
            "--runtime-endpoint",
            CONTAINERD_SOCKET,
            "inspect",
            container_id.split("://", 1)[-1],
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    root = int(json.loads(inspected)["info"]["pid"])
    namespace = os.readlink(f"/proc/{root}/ns/pid")
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "pid") == namespace:
                    pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def frozen(kube: Kubectl, pod: str) -> Iterator[None]:
    """SIGSTOP every process of the pod (a database that hangs: connections open, no answer),
    and SIGCONT them on the way out whatever happens."""
    pids = container_processes(kube, pod)
    assert pids, f"no process found for pod {pod}"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def kill(kube: Kubectl, pod: str) -> None:
    """SIGKILL every process of the pod's container (a crash: no shutdown handler runs, nothing
    is released); the kubelet restarts the container in the same pod."""
    pids = container_processes(kube, pod)
    assert pids, f"no process found for pod {pod}"
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # gone with its pid 1 already
            os.kill(pid, signal.SIGKILL)
