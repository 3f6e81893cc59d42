"""`--cache-reads auto` asks the API server whether it may feed its caches (access.py): against
the real API server and its RBAC, with the suite's admin identity and with a ServiceAccount
whose role is the older one (`get` on Secrets only, no list/watch)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from items_operator.access import missing_secret_access
from lightkube import Client, KubeConfig

from tests.cluster.kube_support import Kubectl, fresh_namespace

pytestmark = pytest.mark.cluster

NAMESPACE = "items-access-test"
ACCOUNT = "older-role"


@pytest.fixture(scope="module")
def namespace() -> Iterator[Kubectl]:
    with fresh_namespace(NAMESPACE) as kube:
        yield kube


def _client_as(kube: Kubectl, account: str) -> Client:
    """A client with the ServiceAccount's own short-lived token, at the suite's API server."""
    token = kube.run("create", "token", account, "--duration=10m").stdout.strip()
    admin = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    context = {"cluster": admin["clusters"][0]["name"], "user": account}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"][:1],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": context}],
        "current-context": account,
    }
    return Client(config=KubeConfig.from_dict(config))


def test_the_admin_may_feed_the_caches(namespace: Kubectl) -> None:
    assert missing_secret_access([NAMESPACE]) is None
    assert missing_secret_access([]) is None  # cluster-wide


def test_the_older_role_turns_the_caches_off_naming_what_it_lacks(namespace: Kubectl) -> None:
    namespace.run("create", "serviceaccount", ACCOUNT)
    namespace.run("create", "role", "get-secrets", "--verb=get", "--resource=secrets")
    namespace.run(
        "create", "rolebinding", "get-secrets", "--role=get-secrets",
        f"--serviceaccount={NAMESPACE}:{ACCOUNT}",
    )  # fmt: skip
    client = _client_as(namespace, ACCOUNT)
    assert missing_secret_access([NAMESPACE], client) == f"list secrets in {NAMESPACE}"
    namespace.run(
        "create", "role", "list-secrets", "--verb=list", "--resource=secrets"
    )  # fmt: skip
    namespace.run(
        "create", "rolebinding", "list-secrets", "--role=list-secrets",
        f"--serviceaccount={NAMESPACE}:{ACCOUNT}",
    )  # fmt: skip
    assert missing_secret_access([NAMESPACE], client) == f"watch secrets in {NAMESPACE}"
    assert missing_secret_access([], client) == "list secrets in all namespaces"
