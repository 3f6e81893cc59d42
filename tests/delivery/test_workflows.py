"""The GitHub Actions workflows: actionlint-clean, actions pinned to commits, the pinned tools."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.delivery.conftest import ROOT, run

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
USES = re.compile(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", re.MULTILINE)
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+")


def test_the_three_workflows_exist() -> None:
    assert {path.name for path in WORKFLOWS} == {"ci.yml", "e2e.yml", "release.yml"}


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
