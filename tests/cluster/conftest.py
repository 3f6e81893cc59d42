"""Fixtures for the cluster tests (pytest -m cluster; see hack/cluster/ci-smoke)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from tests.cluster.kube_support import KUBECTL, Kubectl, wait_until


@pytest.fixture(scope="module")
def kube() -> Iterator[Kubectl]:
    """A fresh namespace in the cluster named by KUBECONFIG, deleted afterwards."""
    if not os.environ.get("KUBECONFIG"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but KUBECONFIG is unset: run hack/cluster/ci-smoke")
        pytest.skip("KUBECONFIG unset: start a cluster with hack/local-cluster up")
    namespace = f"items-cluster-test-{secrets.token_hex(3)}"
    kube = Kubectl(namespace)
    kube.run("create", "namespace", namespace)
    try:
        wait_until(
            "the namespace's default ServiceAccount",
            lambda: kube.run("get", "serviceaccount", "default", check=False).returncode == 0,
            timeout=60,
        )
        yield kube
    finally:
        subprocess.run(
            [KUBECTL, "delete", "namespace", namespace, "--wait=false"],
            capture_output=True,
            timeout=60,
            check=False,
        )
