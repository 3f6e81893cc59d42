"""The RBAC manifests grant what the operator's calls need, and nothing cluster-wide beyond it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

RBAC = Path(__file__).resolve().parents[3] / "operator" / "rbac"

# (apiGroup, resource, verb) per role, from the calls in kube.py and Kopf's own needs.
CLUSTER_WIDE = {
    ("items.platform.dev", "itemservices", v) for v in ("get", "list", "watch", "patch")
} | {
    ("items.platform.dev", "itemservices/status", "patch"),
    ("items.platform.dev", "itemservices/finalizers", "update"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("kopf.dev", "clusterkopfpeerings", "patch"),
    ("kopf.dev", "clusterkopfpeerings", "watch"),
    ("", "events", "create"),
}
NAMESPACED = {
    ("apps", "deployments", "get"),
    ("apps", "deployments", "create"),
    ("apps", "deployments", "patch"),
    ("batch", "jobs", "list"),
    ("batch", "jobs", "create"),
    ("batch", "jobs", "patch"),
    ("batch", "jobs", "delete"),
    ("", "services", "patch"),
    ("", "serviceaccounts", "patch"),
    ("policy", "poddisruptionbudgets", "patch"),
    ("policy", "poddisruptionbudgets", "delete"),
    ("", "pods", "list"),
    ("", "secrets", "get"),
}


# The Lease (leadership.py): read, created once, renewed and taken over by update.
LEADER_ELECTION = {
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"),
}


def _roles(kind: str = "ClusterRole") -> dict[str, set[tuple[str, str, str]]]:
    roles: dict[str, set[tuple[str, str, str]]] = {}
    for path in RBAC.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == kind:
                rules: list[dict[str, Any]] = doc["rules"]
                roles[doc["metadata"]["name"]] = {
                    (group, resource, verb)
                    for rule in rules
                    for group in rule["apiGroups"]
                    for resource in rule["resources"]
                    for verb in rule["verbs"]
                }
    return roles


@pytest.mark.parametrize(
    ("role", "needed"),
    [("items-operator", CLUSTER_WIDE), ("items-operator-workloads", NAMESPACED)],
)
def test_role_grants_what_the_operator_uses(role: str, needed: set[tuple[str, str, str]]) -> None:
    assert needed - _roles()[role] == set()


def test_the_lease_is_granted_in_the_operator_namespace_only() -> None:
    assert _roles("Role")["items-operator-leader-election"] == LEADER_ELECTION
    leases = {r for grants in _roles().values() for _, r, _ in grants if r == "leases"}
    assert leases == set()  # nothing cluster-wide
    docs = [d for p in RBAC.glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d]
    [role] = [d for d in docs if d["kind"] == "Role"]
    named = [rule for rule in role["rules"] if "resourceNames" in rule]
    assert named == [{**named[0], "resourceNames": ["items-operator"], "verbs": ["get", "update"]}]
    assert role["metadata"]["namespace"] == "items-system"


def test_cluster_wide_role_has_no_workload_or_secret_access() -> None:
    resources = {resource for _, resource, _ in _roles()["items-operator"]}
    assert resources.isdisjoint({"secrets", "pods", "deployments", "jobs", "services"})


def test_no_wildcards_and_secrets_are_read_only() -> None:
    for grants in _roles().values():
        assert all("*" not in part for grant in grants for part in grant)
    secret_verbs = {
        verb for _, resource, verb in _roles()["items-operator-workloads"] if resource == "secrets"
    }
    assert secret_verbs == {"get"}


def test_workload_role_is_bound_per_namespace_not_cluster_wide() -> None:
    for path in RBAC.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "ClusterRoleBinding":
                assert doc["roleRef"]["name"] != "items-operator-workloads"
