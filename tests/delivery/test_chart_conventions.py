"""What chart users expect from the ecosystem's charts: a `helm test` hook, a PDB and a topology
spread for the operator, extra args/env/volumes, Artifact Hub metadata, and a README whose values
table is generated from values.yaml (helm-docs) and never stale."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.delivery.conftest import CHART, EVERYTHING_ARGS, ROOT, Render, find, only, tool_path

SELECTOR = {"app.kubernetes.io/name": "items-operator", "app.kubernetes.io/instance": "items"}


def pod_spec(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = only(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def test_helm_test_hook_asks_the_metrics_service_for_the_operator_series(render: Render) -> None:
    pod = only(render(), "Pod")
    annotations = pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    script = pod["spec"]["containers"][0]["command"][-1]
    assert "http://items-operator-metrics.items-system.svc:9090/metrics" in script
    assert "# TYPE items_operator_" in script
    assert (
        pod["spec"]["containers"][0]["image"]
        == only(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    # Outside the operator's selector: the Service, the PDB and the spread must not count it.
    labels = pod["metadata"]["labels"]
    assert not SELECTOR.items() <= labels.items()


def test_helm_test_hook_passes_the_restricted_profile(render: Render) -> None:
    spec = only(render(), "Pod")["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    sc = spec["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]


def test_helm_test_hook_can_be_left_out(render: Render) -> None:
    assert not find(render("--set", "tests.enabled=false"), "Pod")


def test_pdb_covers_the_operator_pods(render: Render) -> None:
    pdb = only(render(), "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}
    pdb = only(render("--set", "podDisruptionBudget.minAvailable=1"), "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": SELECTOR}}
    assert not find(render("--set", "podDisruptionBudget.enabled=false"), "PodDisruptionBudget")


def test_operator_pods_spread_over_nodes_with_the_release_selector(render: Render) -> None:
    assert pod_spec(render())["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": SELECTOR},
        }
    ]
    zones = pod_spec(
        render(
            "--set",
            "topologySpreadConstraints[0].maxSkew=2",
            "--set",
            "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
            "--set",
            "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
            "--set",
            "topologySpreadConstraints[0].labelSelector.matchLabels.team=a",
        )
    )["topologySpreadConstraints"]
    assert zones == [
        {
            "maxSkew": 2,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"team": "a"}},
        }
    ]
    assert "topologySpreadConstraints" not in pod_spec(
        render("--set", "topologySpreadConstraints=null")
    )


def test_extra_args_env_and_volumes_reach_the_operator(render: Render) -> None:
    spec = pod_spec(render(*EVERYTHING_ARGS))
    container = spec["containers"][0]
    assert container["args"][-1] == "--verbose"
    assert container["env"][-1] == {"name": "TZ", "value": "UTC"}  # after POD_NAMESPACE, POD_NAME
    assert container["envFrom"] == [{"configMapRef": {"name": "operator-settings"}}]
    assert {"name": "ca", "mountPath": "/etc/items/ca", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # noqa: S108
    assert {"name": "ca", "configMap": {"name": "extra-ca"}} in spec["volumes"]
    defaults = pod_spec(render())["containers"][0]
    assert [e["name"] for e in defaults["env"]] == ["POD_NAMESPACE", "POD_NAME"]
    assert "envFrom" not in defaults


def test_artifact_hub_annotations_parse_and_name_the_crd() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    annotations = chart["annotations"]
    assert annotations["artifacthub.io/license"] == "Apache-2.0"
    assert annotations["artifacthub.io/operator"] == "true"
    crds = yaml.safe_load(annotations["artifacthub.io/crds"])
    assert [crd["kind"] for crd in crds] == ["ItemService"]
    examples = yaml.safe_load(annotations["artifacthub.io/crdsExamples"])
    assert examples[0]["kind"] == "ItemService"
    images = {image["name"] for image in yaml.safe_load(annotations["artifacthub.io/images"])}
    assert images == {"items-operator", "items-service"}


def test_readme_values_table_is_generated_from_values_yaml() -> None:
    """hack/chart-docs --check prints what helm-docs would write; it must be the README."""
    tool_path("helm-docs")  # skip (locally) or fail (CI) without it
    result = subprocess.run(
        [str(ROOT / "hack" / "chart-docs"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    generated = result.stdout
    committed = (CHART / "README.md").read_text()
    assert generated.strip() == committed.strip(), (
        "charts/items/README.md is stale: run hack/chart-docs"
    )


def test_readme_table_lists_every_documented_value() -> None:
    """Each `# --` comment in values.yaml shows up as a row (so the generator saw them all)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    readme = (CHART / "README.md").read_text()
    documented = 0
    for i, line in enumerate(lines):
        if line.lstrip().startswith("# --"):
            key = (
                next(n for n in lines[i + 1 :] if n.strip() and not n.lstrip().startswith("#"))
                .split(":")[0]
                .strip()
            )
            assert f"{key} |" in readme or f".{key} |" in readme, key
            documented += 1
    assert documented >= 30


def test_readme_template_is_not_packaged() -> None:
    assert Path(CHART / "README.md.gotmpl").is_file()
    assert "README.md.gotmpl" in (CHART / ".helmignore").read_text()
