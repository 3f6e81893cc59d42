"""A frozen watch against the real API server: with --cache-reads on the operator's view comes
only from its watches, so a watch that goes silent (a proxy that stops forwarding, TCP open)
is a stale view; --watch-timeout must bound it.

The operator runs in this process (KopfRunner, standalone, --cache-reads on, one namespace of
its own) and reaches the API server through silent_proxy.SilentProxy; kubectl here talks to
the API server directly. A steady ItemService's Service is touched (so the Service watch's
last event is known to be recent), the proxy goes silent, the Service is deleted: the operator
must not re-create it before that watch's timer can have fired (the freeze was real), and must
within the watch timeout and a margin (the timeout bounds the staleness).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from items_operator.kopf_settings import DEFAULT_WATCH_TIMEOUT

from tests.cluster.kube_support import (
    KUBECTL,
    Kubectl,
    delete_namespace,
    restricted_namespace,
    wait_until,
)
from tests.operator.cluster.e2e import item_service, secret
from tests.operator.cluster.in_process import counter_total, wait_settled
from tests.operator.cluster.silent_proxy import SilentProxy, through_proxy, upstream_of

pytestmark = pytest.mark.cluster

NS = "items-frozen-test"
IMAGE = os.environ.get("ITEMS_E2E_SERVICE_IMAGE", "items-service:dev")
WATCH_TIMEOUT = 20.0
# Reconnect (0.1 s), the event's wake-up (0.1 s), one pass, one create, our 0.5 s poll.
MARGIN = 10.0
# The migration Job needs no database server: SQLite on its own emptyDir.
DATABASE_URL = "sqlite:////var/lib/items/frozen.db"
WATCH_LOGGER = "items_operator.informers"  # the cached kinds' watches


class DirectKubectl(Kubectl):
    """kubectl to the API server itself, whatever KUBECONFIG the operator is given."""

    def __init__(self, namespace: str, kubeconfig: str) -> None:
        super().__init__(namespace)
        self.kubeconfig = kubeconfig

    def args(self, *args: str) -> list[str]:
        return [KUBECTL, "--kubeconfig", self.kubeconfig, "--namespace", self.namespace, *args]


class Inactive(logging.Handler):
    """The informers' line for a watch its inactivity timer ended, with our clock."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "is inactive" in message:
            self.seen.append((time.monotonic(), message))


@pytest.fixture(scope="module")
def real_kubeconfig() -> str:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("KUBECONFIG unset: start a cluster with hack/local-cluster up")
    return os.environ["KUBECONFIG"]


@pytest.fixture(scope="module")
def kube(crds: None, real_kubeconfig: str) -> Iterator[Kubectl]:
    kube = DirectKubectl(NS, real_kubeconfig)
    kube.run("apply", "-f", "-", stdin=json.dumps(restricted_namespace(NS)))
    yield kube
    delete_namespace(NS)


@pytest.fixture(scope="module")
def proxy(real_kubeconfig: str) -> Iterator[SilentProxy]:
    with SilentProxy(*upstream_of(Path(real_kubeconfig))) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def inactive() -> Iterator[Inactive]:
    handler, logger = Inactive(), logging.getLogger(WATCH_LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)  # propagated too: Kopf's handler prints at its own level
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture(scope="module")
def operator(
    kube: Kubectl,
    proxy: SilentProxy,
    inactive: Inactive,
    real_kubeconfig: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    from items_operator import handlers
    from kopf.testing import KopfRunner

    config = through_proxy(
        Path(real_kubeconfig), proxy.port, tmp_path_factory.mktemp("proxy") / "kubeconfig"
    )
    # Kopf's login and lightkube's client both read KUBECONFIG; kubectl here is told its own.
    os.environ["KUBECONFIG"] = str(config)
    handlers.set_watch_timeout(WATCH_TIMEOUT)
    handlers.read_from_caches(resync=600.0, concurrency=8, startup_rate=50.0, namespaces=[NS])
    args = ["run", "--standalone", "--namespace", NS, "-m", "items_operator.handlers"]
    try:
        with KopfRunner(args, timeout=60) as runner:
            yield
            # The finalizer goes while the operator still runs.
            kube.run("delete", "itemservice", "--all", "--timeout=60s", check=False)
    finally:
        os.environ["KUBECONFIG"] = real_kubeconfig
        handlers.set_watch_timeout(DEFAULT_WATCH_TIMEOUT)
        handlers.read_from_api()
    assert runner.exception is None, runner.output


def _status(kube: Kubectl) -> dict[str, Any]:
    found: dict[str, Any] = kube.get("itemservice", "shop").get("status") or {}
    return found


def _service_exists(kube: Kubectl) -> bool:
    return kube.run("get", "service", "shop", check=False).returncode == 0


def test_a_silent_watch_is_resumed_within_the_watch_timeout(
    kube: Kubectl, proxy: SilentProxy, inactive: Inactive, operator: None
) -> None:
    from items_operator import metrics

    kube.apply(secret("shop-db", DATABASE_URL))
    kube.apply(item_service("shop", IMAGE, "shop-db", replicas=0))
    wait_until(
        "shop to be scaled to zero on its first release",
        lambda: _status(kube).get("phase") == "ScaledToZero",
        120,
        lambda: str(_status(kube)) + kube.run("get", "jobs,pods,events", check=False).stdout,
    )
    wait_settled(metrics)

    # The Service watch's last event is no older than this: its timer fires no sooner than
    # WATCH_TIMEOUT after it, and a reconnect is the only way the operator learns more.
    touched = time.monotonic()
    passes = counter_total(metrics.RECONCILES)
    kube.run("annotate", "--overwrite", "service", "shop", f"test.invalid/touched={touched}")
    wait_until(
        "a pass woken by the Service event", lambda: counter_total(metrics.RECONCILES) > passes, 10
    )

    frozen = proxy.silence()
    silenced = time.monotonic()
    before = len(inactive.seen)
    kube.run("delete", "service", "shop")
    deleted = time.monotonic()
    wait_until(
        "the operator to re-create the Service after its watch was resumed",
        lambda: _service_exists(kube),
        silenced + WATCH_TIMEOUT + MARGIN - time.monotonic(),
        lambda: f"{inactive.seen[before:]}\n" + kube.run("get", "events", check=False).stdout,
    )
    back = time.monotonic()

    withheld = sum(c.withheld for c in proxy.connections if c.frozen)
    opened = proxy.opened_since(silenced)
    resumed = [(round(t - silenced, 1), m) for t, m in inactive.seen[before:]]
    figures = (
        f"\nfrozen watch: {frozen} connections frozen, {withheld} bytes withheld from them; "
        f"Service re-created {back - silenced:.1f} s after the freeze "
        f"({back - deleted:.1f} s after its deletion, {back - touched:.1f} s after the "
        f"Service watch's last event at the latest), watch timeout {WATCH_TIMEOUT:g} s; "
        f"{len(opened)} new connections since; watches ended as inactive (s after freeze): "
        f"{resumed}; healthy watches ended as inactive before the freeze: {before}\n"
    )
    os.write(1, figures.encode())  # KopfRunner (click) holds sys.stdout
    # The freeze was real: nothing reached the operator until a watch timer could fire.
    assert back - touched >= WATCH_TIMEOUT - 1, figures
    assert withheld > 0, figures  # the server did send (the DELETED event) into the silence
    assert any("services" in m for _, m in resumed), figures
    assert back - silenced <= WATCH_TIMEOUT + MARGIN, figures
    # A short timeout does not churn: the server ends each healthy request before its timer.
    assert before == 0, inactive.seen
