"""Fixtures for the delivery checks: the pinned tools (hack/tools), chart rendering, schemas.

A missing tool skips its tests with the command that installs it, except in CI (CI=true), where
it fails them: there `hack/test` has run `hack/tools install` first.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.jsonschemas import KUBECONFORM_TEMPLATE, write_schemas

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "items"
HERE = Path(__file__).resolve().parent
EVERYTHING_VALUES = HERE / "values-everything.yaml"
MONITORING_API = "monitoring.coreos.com/v1"
IN_CI = os.environ.get("CI") == "true"

# helm template arguments for the two configurations every check runs on.
DEFAULT_ARGS: tuple[str, ...] = ()
EVERYTHING_ARGS: tuple[str, ...] = ("-f", str(EVERYTHING_VALUES), "--api-versions", MONITORING_API)

Manifest = dict[str, Any]


def tool_path(name: str) -> Path:
    """Path of a pinned tool; skip (locally) or fail (CI) when it is not installed."""
    result = subprocess.run(
        [str(ROOT / "hack" / "tools"), "path", name], capture_output=True, text=True, check=False
    )
    if result.returncode == 0:
        return Path(result.stdout.strip())
    reason = f"{name} is not installed: run `hack/tools install {name}`"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def run(args: Sequence[str | Path], *, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool, returning its output; the caller asserts on returncode."""
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, check=False, cwd=cwd
    )


@pytest.fixture(scope="session")
def helm() -> Path:
    return tool_path("helm")


@pytest.fixture(scope="session")
def kubeconform() -> Path:
    return tool_path("kubeconform")


@pytest.fixture(scope="session")
def promtool() -> Path:
    return tool_path("promtool")


@pytest.fixture(scope="session")
def actionlint() -> Path:
    return tool_path("actionlint")


Render = Callable[..., list[Manifest]]


def render_text(helm: Path, *args: str, namespace: str = "items-system") -> str:
    result = run([helm, "template", "items", CHART, "--namespace", namespace, *args])
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """helm template → the list of manifests (empty documents dropped)."""

    def _render(*args: str, namespace: str = "items-system") -> list[Manifest]:
        text = render_text(helm, *args, namespace=namespace)
        return [doc for doc in yaml.safe_load_all(text) if doc]

    return _render


def find(manifests: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]


def only(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = find(manifests, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="session")
def schema_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubeconform schemas made offline: Kubernetes kinds, the chart's CRDs, monitoring subsets."""
    swagger = tool_path("kubernetes-openapi")
    target = tmp_path_factory.mktemp("schemas")
    write_schemas(
        target,
        swagger=swagger,
        crd_files=sorted((CHART / "crds").glob("*.yaml")),
        extra=sorted((HERE / "schemas").glob("*.json")),
    )
    return target


def kubeconform_args(kubeconform: Path, schema_dir: Path) -> list[str]:
    return [
        str(kubeconform),
        "-strict",
        "-summary",
        "-output",
        "text",
        "-schema-location",
        str(schema_dir / KUBECONFORM_TEMPLATE),
    ]
