"""The PrometheusRule's alerts: valid PromQL (promtool check) and behaving as meant (unit tests)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.conftest import EVERYTHING_ARGS, HERE, Render, only, run

RULES_TESTS = HERE / "rules-tests.yaml"


@pytest.fixture
def rules_dir(render: Render, tmp_path: Path) -> Path:
    """rules.yaml (the rendered PrometheusRule's groups) next to a copy of rules-tests.yaml."""
    rule = only(render(*EVERYTHING_ARGS), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    shutil.copy(RULES_TESTS, tmp_path / RULES_TESTS.name)
    return tmp_path


def alert_names(rules: dict[str, Any]) -> set[str]:
    return {
        rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule
    }


def test_rules_pass_promtool_check(promtool: Path, rules_dir: Path) -> None:
    result = run([promtool, "check", "rules", "--lint-fatal", rules_dir / "rules.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_their_unit_tests(promtool: Path, rules_dir: Path) -> None:
    result = run([promtool, "test", "rules", RULES_TESTS.name], cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test(rules_dir: Path) -> None:
    rules = yaml.safe_load((rules_dir / "rules.yaml").read_text())
    tests = yaml.safe_load(RULES_TESTS.read_text())
    tested = {
        case["alertname"] for test in tests["tests"] for case in test.get("alert_rule_test", [])
    }
    assert alert_names(rules) == tested
    assert alert_names(rules) >= {
        "ItemsHighErrorRatio",
        "ItemsHighLatencyP99",
        "ItemsDeploymentReplicasUnavailable",
        "ItemsPodNotReady",
        "ItemsRollbackHappened",
    }


def test_alerts_use_the_metric_names_the_code_exports() -> None:
    """The metric names in the template come from the service's and the operator's code."""
    root = HERE.parents[1]
    template = (root / "charts/items/templates/prometheusrule.yaml").read_text()
    service_metrics = (root / "service/core/metrics.py").read_text()
    operator_metrics = (root / "operator/items_operator/metrics.py").read_text()
    for name in ("items_http_requests_total", "items_http_request_duration_seconds"):
        assert f'"{name}"' in service_metrics
        assert name in template
    assert '"items_operator_rollbacks_total"' in operator_metrics
    assert "items_operator_rollbacks_total" in template
