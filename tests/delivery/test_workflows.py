"""The GitHub Actions workflows: actionlint- and zizmor-clean, actions pinned to commits, the
pinned tools; the release signs, attests and labels what it publishes; Dependabot's config."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.conftest import ROOT, run

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
USES = re.compile(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", re.MULTILINE)
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+")


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    return document


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = job["steps"]
    return result


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in steps(job) if step.get("uses", "").startswith(action + "@")]


def scripts(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


def test_the_workflows_exist() -> None:
    assert {path.name for path in WORKFLOWS} == {"ci.yml", "e2e.yml", "release.yml", "pins.yml"}


def test_actionlint_is_clean(actionlint: Path) -> None:
    args: list[str | Path] = [actionlint, "-no-color"]
    shellcheck = shutil.which("shellcheck")
    # actionlint checks run: scripts with shellcheck when it finds it; say so explicitly.
    args += ["-shellcheck", shellcheck] if shellcheck else ["-shellcheck="]
    result = run([*args, *WORKFLOWS])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_commits_with_a_version_comment(workflow: Path) -> None:
    found = USES.findall(workflow.read_text())
    assert found, f"{workflow.name} uses no action?"
    for action, rest in found:
        if action.startswith("./"):
            continue
        assert PINNED.match(action), f"{workflow.name}: {action} is not pinned to a commit SHA"
        assert VERSION_COMMENT.search(rest), f"{workflow.name}: {action} lacks a '# vX.Y.Z' comment"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_default_to_read_only_token(workflow: Path) -> None:
    document = yaml.safe_load(workflow.read_text())
    assert document["permissions"] == {"contents": "read"}


def test_ci_runs_the_delivery_tests_with_the_pinned_tools() -> None:
    text = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "hack/tools install" in text
    assert "tests/delivery" in text
    assert "mysql:8.4" in text
    assert "ITEMS_TEST_MYSQL_URL: mysql+pymysql://root:root@127.0.0.1:3306/mysql" in text


def test_e2e_kind_node_images_are_pinned_by_digest() -> None:
    document = yaml.safe_load((ROOT / ".github" / "workflows" / "e2e.yml").read_text())
    matrix = document["jobs"]["kind"]["strategy"]["matrix"]["include"]
    assert len(matrix) >= 2
    for entry in matrix:
        assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", entry["node-image"])


def test_zizmor_is_clean() -> None:
    """zizmor's offline audits (template injection, credentials, permissions, pinning...)."""
    zizmor = Path(sys.executable).with_name("zizmor")
    assert zizmor.exists(), "zizmor is in the dev group: uv sync"
    result = subprocess.run(
        [
            str(zizmor),
            "--offline",
            "--no-progress",
            "--min-severity",
            "low",
            str(ROOT / ".github" / "workflows"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_pins_the_images_python() -> None:
    assert (ROOT / ".python-version").read_text().strip() == "3.11"
    for name in ("ci.yml", "e2e.yml"):
        assert load(name)["env"]["UV_PYTHON"] == "3.11", name


def test_release_waits_for_ci_and_e2e_on_the_tag() -> None:
    release = load("release.yml")
    jobs = release["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs["e2e"]["uses"] == "./.github/workflows/e2e.yml"
    assert {"ci", "e2e"} <= set(jobs["images"]["needs"])
    assert "images" in jobs["chart"]["needs"]
    for called in ("ci.yml", "e2e.yml"):
        triggers = yaml.safe_load((ROOT / ".github" / "workflows" / called).read_text())[True]
        assert "workflow_call" in triggers, called  # YAML 1.1 reads the key `on` as True


def test_release_builds_multi_arch_with_provenance_sbom_and_oci_labels() -> None:
    job = load("release.yml")["jobs"]["images"]
    images = {entry["image"] for entry in job["strategy"]["matrix"]["include"]}
    assert images == {"items-service", "items-operator"}
    assert uses(job, "docker/setup-qemu-action")
    assert uses(job, "docker/setup-buildx-action")
    (build,) = uses(job, "docker/build-push-action")
    options = build["with"]
    assert set(options["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert options["provenance"] == "mode=max"
    assert options["sbom"] is True
    assert options["labels"] == "${{ steps.meta.outputs.labels }}"
    # docker/metadata-action sets org.opencontainers.image.source, .revision and .version.
    (meta,) = uses(job, "docker/metadata-action")
    assert meta["id"] == "meta"
    assert "type=semver,pattern={{version}}" in meta["with"]["tags"]


def test_release_signs_images_and_chart_keyless() -> None:
    jobs = load("release.yml")["jobs"]
    for name in ("images", "chart"):
        job = jobs[name]
        assert job["permissions"]["id-token"] == "write", name
        assert uses(job, "sigstore/cosign-installer"), name
        text = scripts(job)
        assert "cosign sign --yes" in text, name
        assert "cosign verify" in text, name
        assert "--key" not in text, f"{name}: keyless signing takes no key"
    assert '"$IMAGE@$DIGEST"' in scripts(jobs["images"])
    assert '"$REPO/charts/items@$DIGEST"' in scripts(jobs["chart"])


def test_release_version_reaches_the_package_and_the_chart() -> None:
    jobs = load("release.yml")["jobs"]
    assert 'uv version --frozen "$VERSION"' in scripts(jobs["images"])
    assert "service.__version__" in scripts(jobs["images"])
    assert '--version "$VERSION" --app-version "$VERSION"' in scripts(jobs["chart"])


def test_e2e_runs_the_operator_cluster_docker_and_helm_tests() -> None:
    jobs = load("e2e.yml")["jobs"]
    kind = scripts(jobs["kind"])
    assert "helm test items" in kind
    assert "tests/operator/cluster tests/e2e" in kind
    assert "KUBECONFIG=" in kind
    assert "-m docker" in scripts(jobs["docker"])
    assert "tests/docker" in scripts(jobs["docker"])


def test_dependabot_covers_actions_uv_go_modules_and_docker() -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    assert config["version"] == 2
    by_ecosystem = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(by_ecosystem) == {"github-actions", "uv", "gomod", "docker"}
    assert by_ecosystem["docker"]["directory"] == "/"  # Dockerfile, Dockerfile.operator
    for update in config["updates"]:
        assert update["schedule"]["interval"] in {"daily", "weekly", "monthly"}
        for folder in update.get("directories", [update.get("directory")]):
            assert (ROOT / folder.lstrip("/")).is_dir(), folder
    for folder in by_ecosystem["gomod"]["directories"]:
        assert (ROOT / folder.lstrip("/") / "go.mod").is_file(), folder
    assert (ROOT / "uv.lock").is_file()


def test_check_pins_covers_every_tool_pin() -> None:
    script = (ROOT / "hack" / "check-pins").read_text()
    assert "tools.versions" in script
    assert "versions.env" in script
    assert "hack/check-pins" in (ROOT / ".github" / "workflows" / "pins.yml").read_text()


DOCKERFILES = [ROOT / "Dockerfile", ROOT / "Dockerfile.operator"]


def test_dockerfiles_name_one_base_that_dependabot_can_bump() -> None:
    """Every FROM line is written out (Dependabot does not follow an ARG in FROM) and names one
    Debian point-release tag, the one hack/base-image reads from Dockerfile's builder stage."""
    froms = [
        line.split()[1]
        for path in DOCKERFILES
        for line in path.read_text().splitlines()
        if line.startswith("FROM ")
    ]
    assert len(froms) == 4
    assert len(set(froms)) == 1, froms
    assert re.fullmatch(r"debian:12\.\d+-slim", froms[0]), froms[0]
    assert "$" not in froms[0]
    assert "FROM_IMAGE" in (ROOT / "hack" / "base-image").read_text()
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    docker = next(rule for rule in config["updates"] if rule["package-ecosystem"] == "docker")
    assert docker["ignore"] == [
        {"dependency-name": "debian", "update-types": ["version-update:semver-major"]}
    ]
