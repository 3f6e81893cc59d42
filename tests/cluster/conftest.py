"""Fixtures for the cluster tests (pytest -m cluster; see hack/cluster/ci-smoke)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.cluster.kube_support import Kubectl, delete_namespace, wait_for_default_service_account


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
        wait_for_default_service_account(kube)
        yield kube
    finally:
        delete_namespace(namespace)
