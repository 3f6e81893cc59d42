"""helm lint is clean, plain and --strict, with the default values and with everything on.

helm lint has no --api-versions: values-everything.yaml sets monitoring.ifApiMissing=render, so
the monitoring objects are linted too (and checked by test_chart_kubeconform, test_alert_rules).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.delivery.conftest import CHART, EVERYTHING_VALUES, run


@pytest.mark.parametrize("strict", [False, True], ids=["plain", "strict"])
@pytest.mark.parametrize(
    "values", [(), ("-f", str(EVERYTHING_VALUES))], ids=["defaults", "everything"]
)
def test_helm_lint_is_clean(helm: Path, strict: bool, values: tuple[str, ...]) -> None:
    args: list[str | Path] = [helm, "lint", CHART, *values, *(["--strict"] if strict else [])]
    result = run(args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "[WARNING]" not in output, output
    assert "[ERROR]" not in output, output
    assert "1 chart(s) linted, 0 chart(s) failed" in output


def test_helm_lint_at_the_oldest_supported_kubernetes(helm: Path) -> None:
    result = run([helm, "lint", CHART, "--strict", "--kube-version", "1.31.0"])
    assert result.returncode == 0, result.stdout + result.stderr
