"""The rendered chart is valid against the Kubernetes schemas and our CRDs, offline, strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.delivery.conftest import (
    DEFAULT_ARGS,
    EVERYTHING_ARGS,
    ROOT,
    kubeconform_args,
    render_text,
    run,
)

CONFIGURATIONS = {
    "defaults": DEFAULT_ARGS,
    "everything": EVERYTHING_ARGS,
    "all-namespaces": ("--set", "allNamespaces=true", *EVERYTHING_ARGS),
}


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_rendered_chart_is_valid(
    helm: Path, kubeconform: Path, schema_dir: Path, tmp_path: Path, name: str
) -> None:
    manifests = tmp_path / f"{name}.yaml"
    manifests.write_text(render_text(helm, "--include-crds", *CONFIGURATIONS[name]))
    result = run([*kubeconform_args(kubeconform, schema_dir), manifests])
    assert result.returncode == 0, result.stdout + result.stderr
    # Nothing skipped for want of a schema: every kind was checked.
    assert "Skipped: 0" in result.stdout
    assert "Invalid: 0, Errors: 0" in result.stdout


@pytest.mark.parametrize(
    ("good", "bad", "kind"),
    [
        ("imagePullPolicy:", "imagePullPolicyy:", "Deployment"),
        ("      key: url", "      kee: url", "ItemService"),
        ("  scope: Namespaced", "  scoop: Namespaced", "CustomResourceDefinition"),
        ("scrapeTimeout:", "scrapeTimeot:", "ServiceMonitor"),
        ("- alert: ItemsHighErrorRatio", "- alrt: ItemsHighErrorRatio", "PrometheusRule"),
    ],
)
def test_schemas_are_strict(
    helm: Path, kubeconform: Path, schema_dir: Path, tmp_path: Path, good: str, bad: str, kind: str
) -> None:
    """A misspelt field is an error, so a clean run above means something."""
    text = render_text(helm, "--include-crds", *EVERYTHING_ARGS)
    assert good in text
    manifests = tmp_path / "broken.yaml"
    manifests.write_text(text.replace(good, bad, 1))
    result = run([*kubeconform_args(kubeconform, schema_dir), manifests])
    assert result.returncode != 0
    assert f"{kind} " in result.stdout, result.stdout
    assert "is invalid" in result.stdout, result.stdout


def test_repository_manifests_are_valid(kubeconform: Path, schema_dir: Path) -> None:
    """The raw manifests (kubectl apply users, the operator's docs) pass the same checks."""
    directories = [ROOT / "crds", ROOT / "operator" / "rbac", ROOT / "operator" / "deploy"]
    result = run([*kubeconform_args(kubeconform, schema_dir), *directories])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Skipped: 0" in result.stdout
