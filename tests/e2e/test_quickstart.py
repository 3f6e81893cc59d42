"""The quickstart (docs/quickstart.md) is hack/quickstart; this runs it, unchanged, on the test
cluster: images loaded, a database with its grants, the chart and `helm test`, an ItemService
Available, an item POSTed and read back through kubectl port-forward. Then `hack/quickstart
down`. Own namespaces and release, so it shares the cluster with the other stories."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time

import pytest

from tests.cluster.kube_support import DB_IMAGE, KUBECTL
from tests.e2e.conftest import _require_cluster
from tests.e2e.platform import REPO, helm_binary
from tests.mariadb import free_port
from tests.operator.cluster.e2e import OPERATOR_IMAGE, V1

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

SCRIPT = REPO / "hack" / "quickstart"


def test_the_quickstart_script_ends_with_an_item_served() -> None:
    _require_cluster()
    suffix = secrets.token_hex(3)
    env = {
        **os.environ,
        "SERVICE_IMAGE": V1,
        "OPERATOR_IMAGE": OPERATOR_IMAGE,
        "DB_IMAGE": DB_IMAGE,
        "NAMESPACE": f"qs-{suffix}",
        "OPERATOR_NAMESPACE": f"qs-operator-{suffix}",
        "RELEASE": f"qs-{suffix}",
        "PORT": str(free_port()),
        "KUBECTL": KUBECTL,
        "HELM": helm_binary(),
        "TIMEOUT": "120",
    }
    started = time.monotonic()
    try:
        result = subprocess.run(
            [str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        took = time.monotonic() - started
        output = result.stdout + result.stderr
        print(f"\nhack/quickstart up: exit {result.returncode} after {took:.0f}s\n{output[-3000:]}")
        assert result.returncode == 0, output[-6000:]
        # The GET of step 6 lists the item that step 6 POSTed.
        pages = [
            json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"data"')
        ]
        assert pages, result.stdout
        assert [item["name"] for item in pages[-1]["data"]] == ["first item"], result.stdout
        assert "ready in" in result.stderr
    finally:
        down = subprocess.run(
            [str(SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=150, check=False
        )
        print(down.stdout[-1000:], down.stderr[-1000:])
