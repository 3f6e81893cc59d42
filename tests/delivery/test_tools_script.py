"""hack/tools: one pin per tool, exact versions, a clear answer for what is not there."""

from __future__ import annotations

import re
from pathlib import Path

from tests.delivery.conftest import ROOT, run

TOOLS = ROOT / "hack" / "tools"
VERSIONS = ROOT / "hack" / "tools.versions"


def pins() -> dict[str, tuple[str, str]]:
    result: dict[str, tuple[str, str]] = {}
    for line in VERSIONS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, package, version, *_ = line.split()
            assert name not in result, f"{name} is pinned twice"
            result[name] = (package, version)
    return result


def test_every_tool_is_pinned_once_to_an_exact_version() -> None:
    found = pins()
    assert set(found) >= {"helm", "kubeconform", "promtool", "actionlint", "kubernetes-openapi"}
    for name, (_, version) in found.items():
        assert re.fullmatch(r"v\d+\.\d+\.\d+", version), f"{name}: {version} is not exact"


def test_list_names_every_pinned_tool() -> None:
    result = run([TOOLS, "list"])
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert listed == {name: version for name, (_, version) in pins().items()}


def test_path_of_an_unknown_tool_is_a_usage_error() -> None:
    result = run([TOOLS, "path", "no-such-tool"])
    assert result.returncode == 2
    assert "unknown tool" in result.stderr


def test_path_is_under_the_cache_keyed_by_version(tmp_path: Path) -> None:
    """With an empty cache nothing is installed, and the message says how to install it."""
    result = run(["env", f"ITEMS_CACHE_DIR={tmp_path}", TOOLS, "path", "helm"])
    assert result.returncode == 1
    assert "hack/tools install helm" in result.stderr
    fake = tmp_path / "tools" / "helm" / pins()["helm"][1] / "helm"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    result = run(["env", f"ITEMS_CACHE_DIR={tmp_path}", TOOLS, "path", "helm"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(fake)
