"""What `helm template` produces: the right objects, least privilege, the restricted profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.conftest import (
    CHART,
    EVERYTHING_ARGS,
    MONITORING_API,
    Manifest,
    Render,
    find,
    only,
    run,
)

APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]


def kinds(manifests: list[Manifest]) -> list[str]:
    return sorted(m["kind"] for m in manifests)


def container(manifests: list[Manifest]) -> dict[str, Any]:
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    result: dict[str, Any] = pod["containers"][0]
    return result


def test_defaults_install_the_operator_and_nothing_optional(render: Render) -> None:
    assert kinds(render()) == sorted(
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Pod",  # the helm test hook
            "PodDisruptionBudget",
            "Role",  # the Lease
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    )


def test_crds_are_rendered_only_with_include_crds(render: Render) -> None:
    crds = find(render("--include-crds"), "CustomResourceDefinition")
    names = {crd["metadata"]["name"] for crd in crds}
    assert names == {"itemservices.items.platform.dev", "clusterkopfpeerings.kopf.dev"}


@pytest.mark.parametrize(
    ("values", "annotations"),
    [
        ((), None),
        (("--set", "crds.templated=true"), {"helm.sh/resource-policy": "keep"}),
        (("--set", "crds.templated=true", "--set", "crds.keep=false"), None),
    ],
    ids=["off", "templated-kept", "templated-not-kept"],
)
def test_crds_are_templates_only_with_crds_templated(
    render: Render, values: tuple[str, ...], annotations: dict[str, str] | None
) -> None:
    """Off (the default), the CRDs come from crds/ only; on, they are objects of the release,
    kept on uninstall unless crds.keep=false. Either way the rest of the chart is the same."""
    crds = find(render(*values), "CustomResourceDefinition")
    assert len(crds) == (2 if values else 0)
    for crd in crds:
        assert crd["metadata"].get("annotations") == annotations
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    rest = [m for m in render(*values) if m["kind"] != "CustomResourceDefinition"]
    assert rest == render()


def test_operator_image_defaults_to_app_version_and_if_not_present(render: Render) -> None:
    c = container(render())
    assert c["image"] == f"items-operator:{APP_VERSION}"
    assert c["imagePullPolicy"] == "IfNotPresent"


def test_image_digest_wins_over_tag(render: Render) -> None:
    digest = "sha256:" + "a" * 64
    c = container(render("--set", f"image.digest={digest}", "--set", "image.tag=1.2.3"))
    assert c["image"] == f"items-operator@{digest}"


def test_defaults_pass_the_restricted_pod_security_profile(render: Render) -> None:
    """The checks of the "restricted" Pod Security Standard that a pod template can fail."""
    pod = only(render(), "Deployment")["spec"]["template"]["spec"]
    pod_sc = pod.get("securityContext", {})
    assert not any(pod.get(key) for key in ("hostNetwork", "hostPID", "hostIPC"))
    assert all("hostPath" not in volume for volume in pod.get("volumes", []))
    assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c.get("securityContext", {})
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True
        assert sc.get("runAsUser", pod_sc.get("runAsUser")) != 0
        assert sc.get("allowPrivilegeEscalation") is False
        assert sc.get("privileged", False) is False
        assert sc.get("capabilities", {}).get("drop") == ["ALL"]
        assert not sc.get("capabilities", {}).get("add")
        assert sc.get("readOnlyRootFilesystem") is True
        assert all("hostPort" not in port for port in c.get("ports", []))
        assert "limits" in c["resources"]
        assert "requests" in c["resources"]


def test_default_serves_the_release_namespace_only(render: Render) -> None:
    manifests = render(namespace="items-system")
    binding = only(manifests, "RoleBinding", "items-operator-workloads")
    assert binding["metadata"]["namespace"] == "items-system"
    assert binding["roleRef"]["name"] == "items-operator-workloads"
    args = container(manifests)["args"]
    assert args[args.index("--namespace") + 1] == "items-system"


def _env(manifests: list[Manifest]) -> dict[str, Any]:
    return {e["name"]: e.get("valueFrom", e.get("value")) for e in container(manifests)["env"]}


def test_the_lease_is_on_by_default_in_the_release_namespace(render: Render) -> None:
    manifests = render("--set", "extraEnv[0].name=X", "--set-string", "extraEnv[0].value=1")
    args = container(manifests)["args"]
    assert args[args.index("--lease-name") + 1] == "items-operator"
    timings = {
        flag: args[args.index(flag) + 1] for flag in ("--lease-duration", "--renew-deadline")
    }
    assert timings == {"--lease-duration": "15", "--renew-deadline": "10"}
    assert "--peering" not in args
    assert not find(manifests, "ClusterKopfPeering")
    env = _env(manifests)
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["X"] == "1"  # extraEnv still reaches the container
    role = only(manifests, "Role", "items-operator-leader-election")
    assert role["metadata"]["namespace"] == "items-system"
    binding = only(manifests, "RoleBinding", "items-operator-leader-election")
    assert binding["roleRef"] == {
        **binding["roleRef"],
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"][0]["name"] == only(manifests, "ServiceAccount")["metadata"]["name"]


def test_without_the_lease_kopf_peering_keeps_one_replica_active(render: Render) -> None:
    manifests = render("--set", "leaderElection.enabled=false")
    args = container(manifests)["args"]
    assert "--no-leader-election" in args
    assert args[args.index("--peering") + 1] == "items-operator"
    assert only(manifests, "ClusterKopfPeering")["metadata"]["name"] == "items-operator"
    assert not find(manifests, "Role")


def test_watch_namespaces_get_one_role_binding_each(render: Render) -> None:
    manifests = render("--set", "watchNamespaces={items,shop}")
    bindings = find(manifests, "RoleBinding", "items-operator-workloads")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["items", "shop"]
    assert not find(manifests, "ClusterRoleBinding", "items-operator-workloads")
    args = container(manifests)["args"]
    served = [args[i + 1] for i, arg in enumerate(args) if arg == "--namespace"]
    assert served == ["items", "shop"]


def test_all_namespaces_binds_the_workload_role_cluster_wide(render: Render) -> None:
    manifests = render("--set", "allNamespaces=true", "--set", "watchNamespaces={items}")
    assert not find(manifests, "RoleBinding", "items-operator-workloads")
    assert only(manifests, "ClusterRoleBinding", "items-operator-workloads")
    assert "--namespace" not in container(manifests)["args"]


def test_monitoring_objects_need_the_values_and_the_api_or_an_explicit_choice(
    render: Render, helm: Path
) -> None:
    enabled = (
        "--set",
        "monitoring.serviceMonitor.enabled=true",
        "--set",
        "monitoring.prometheusRule.enabled=true",
    )
    api_only = kinds(render("--api-versions", MONITORING_API))
    assert "ServiceMonitor" not in api_only
    assert "PrometheusRule" not in api_only
    both = render(*enabled, "--api-versions", MONITORING_API)
    assert len(find(both, "ServiceMonitor")) == 2
    assert len(find(both, "PrometheusRule")) == 1
    # Enabled without the API: never a silent skip unless asked for.
    refused = run([helm, "template", "items", CHART, *enabled])
    assert refused.returncode != 0
    assert "--api-versions monitoring.coreos.com/v1" in refused.stderr
    assert "monitoring.ifApiMissing=render" in refused.stderr
    rendered = render(*enabled, "--set", "monitoring.ifApiMissing=render")
    assert len(find(rendered, "ServiceMonitor")) == 2
    assert len(find(rendered, "PrometheusRule")) == 1
    skipped = kinds(render(*enabled, "--set", "monitoring.ifApiMissing=skip"))
    assert "ServiceMonitor" not in skipped
    assert "PrometheusRule" not in skipped


def test_everything_renders_the_item_service_with_its_secret(render: Render) -> None:
    manifests = render(*EVERYTHING_ARGS)
    item_service = only(manifests, "ItemService")
    assert item_service["metadata"] == {**item_service["metadata"], "namespace": "items"}
    spec = item_service["spec"]
    assert spec["image"] == "items-service:0.1.0"
    assert spec["replicas"] == 3
    assert spec["database"] == {"secretRef": {"name": "shop-db", "key": "url"}}
    assert spec["rollout"]["readinessTimeoutSeconds"] == 90
    secret = only(manifests, "Secret", "shop-db")
    assert secret["metadata"]["namespace"] == "items"
    assert set(secret["stringData"]) == {"url"}


def test_item_service_with_an_existing_secret_creates_no_secret(render: Render) -> None:
    manifests = render(
        "--set", "itemService.enabled=true", "--set", "itemService.database.secretName=prod-db"
    )
    assert not find(manifests, "Secret")
    assert only(manifests, "ItemService")["spec"]["database"]["secretRef"]["name"] == "prod-db"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "replicaCuont=2"], "replicaCuont"),
        (["--set", "image.tag=latest"], "/image/tag"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "monitoring.prometheusRule.errorRatio=2"], "errorRatio"),
        (["--set", "itemService.enabled=true"], "secretName"),
        (["--set", "crds.templated=yes"], "templated"),
    ],
    ids=[
        "unknown-key",
        "latest-tag",
        "pull-policy",
        "ratio-above-1",
        "no-database",
        "crds-templated-not-boolean",
    ],
)
def test_invalid_values_are_refused(helm: Path, args: list[str], message: str) -> None:
    result = run([helm, "template", "items", CHART, *args])
    assert result.returncode != 0
    assert message in result.stderr
