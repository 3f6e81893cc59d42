"""The chart carries the same CRDs and RBAC rules as the repository's raw manifests.

crds/ and operator/rbac/ are what `kubectl apply` users and the operator's own tests use; the
chart cannot read files outside itself, so it holds copies, and these tests keep them equal.
The templated CRDs (crds.templated) are rendered from the chart's crds/ files, so they equal the
repository's too, apart from the metadata the release adds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.conftest import CHART, ROOT, Render, find, only

REPO_CRDS = sorted((ROOT / "crds").glob("*.yaml"))
KEEP = {"helm.sh/resource-policy": "keep"}


def test_chart_has_exactly_the_repository_crds() -> None:
    assert [p.name for p in sorted((CHART / "crds").glob("*"))] == [p.name for p in REPO_CRDS]


@pytest.mark.parametrize("source", REPO_CRDS, ids=lambda p: p.name)
def test_chart_crd_is_a_byte_identical_copy(source: Path) -> None:
    copy = CHART / "crds" / source.name
    assert copy.read_bytes() == source.read_bytes(), (
        f"charts/items/crds/{source.name} differs from crds/{source.name}: "
        f"run `cp crds/{source.name} charts/items/crds/`"
    )


@pytest.mark.parametrize("source", REPO_CRDS, ids=lambda p: p.name)
def test_templated_crd_is_the_repository_crd_plus_release_metadata(
    render: Render, source: Path
) -> None:
    want = yaml.safe_load(source.read_text())
    name = want["metadata"]["name"]
    got = only(render("--set", "crds.templated=true"), "CustomResourceDefinition", name)
    metadata = got["metadata"]
    labels = metadata.pop("labels")
    annotations = metadata.pop("annotations")
    want_metadata = want["metadata"]
    assert labels | want_metadata.pop("labels", {}) == labels
    assert annotations == {**want_metadata.pop("annotations", {}), **KEEP}
    assert got == want
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert labels["app.kubernetes.io/instance"] == "items"


def test_chart_templates_every_chart_crd(render: Render) -> None:
    templated = find(render("--set", "crds.templated=true"), "CustomResourceDefinition")
    with_crds_dir = find(render("--include-crds"), "CustomResourceDefinition")
    assert sorted(crd["metadata"]["name"] for crd in templated) == sorted(
        crd["metadata"]["name"] for crd in with_crds_dir
    )


def _raw_cluster_roles() -> dict[str, list[dict[str, Any]]]:
    roles: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((ROOT / "operator" / "rbac").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "ClusterRole":
                roles[doc["metadata"]["name"]] = doc["rules"]
    return roles


@pytest.mark.parametrize(
    ("raw_name", "chart_name"),
    [
        ("items-operator", "items-operator"),
        ("items-operator-workloads", "items-operator-workloads"),
    ],
)
def test_chart_rbac_rules_equal_operator_rbac(
    render: Render, raw_name: str, chart_name: str
) -> None:
    chart_rules = only(render(), "ClusterRole", chart_name)["rules"]
    assert chart_rules == _raw_cluster_roles()[raw_name], (
        f"ClusterRole {chart_name} in charts/items/templates differs from operator/rbac: "
        "copy the rules over (same order)"
    )


def test_chart_grants_no_other_roles(render: Render) -> None:
    manifests = render()
    roles = {m["metadata"]["name"] for m in manifests if m["kind"] == "Role"}
    assert roles == {"items-operator-leader-election"}
    roles = {m["metadata"]["name"] for m in manifests if m["kind"] == "ClusterRole"}
    assert roles == {"items-operator", "items-operator-workloads"}


def test_chart_lease_role_equals_operator_rbac(render: Render) -> None:
    raw = yaml.safe_load_all((ROOT / "operator" / "rbac" / "leader-election.yaml").read_text())
    [raw_role] = [doc for doc in raw if doc and doc["kind"] == "Role"]
    chart_role = only(render(), "Role", "items-operator-leader-election")
    assert chart_role["rules"] == raw_role["rules"], (
        "Role items-operator-leader-election in charts/items/templates differs from "
        "operator/rbac/leader-election.yaml: copy the rules over (same order)"
    )


def test_chart_deployment_has_the_reference_shape(render: Render) -> None:
    """operator/deploy/operator.yaml is the operator engineer's reference Deployment: the chart's
    defaults must keep its ports, probe, resources, volumes and (at least) its security."""
    reference = yaml.safe_load((ROOT / "operator" / "deploy" / "operator.yaml").read_text())
    ref_pod = reference["spec"]["template"]["spec"]
    pod = only(render(), "Deployment")["spec"]["template"]["spec"]
    [ref_container] = ref_pod["containers"]
    [container] = pod["containers"]

    def ports(c: dict[str, Any]) -> dict[str, int]:
        return {p["name"]: p["containerPort"] for p in c["ports"]}

    assert ports(container) == ports(ref_container)
    assert container["livenessProbe"] == ref_container["livenessProbe"]
    assert container["resources"] == ref_container["resources"]
    assert container["volumeMounts"] == ref_container["volumeMounts"]
    assert pod["volumes"] == ref_pod["volumes"]
    assert pod["securityContext"] | ref_pod["securityContext"] == pod["securityContext"]
    assert (
        container["securityContext"] | ref_container["securityContext"]
        == container["securityContext"]
    )
    # The reference's flags (with their values) are all passed; the chart adds --peering etc.
    ref_args = ref_container["args"]
    args = container["args"]
    for flag, value in zip(ref_args[::2], ref_args[1::2], strict=True):
        assert args[args.index(flag) + 1] == value, flag
