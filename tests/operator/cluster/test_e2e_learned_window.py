"""The learned readiness window on real pods (issue #14): an ItemService without
`readinessTimeoutSeconds` is judged on 3 x its last good time-to-ready (floor 20 s) when its
new server is up and says it is not ready, and is not rolled back when its server has not
answered yet (it listens only 12 s after that window's end): the window then counts from the
first answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from items_operator.window import readiness_window

from tests.cluster.kube_support import Kubectl, wait_until
from tests.operator.cluster.e2e import (
    E2E,
    ROLLOUT_NAMESPACE,
    V1,
    Cluster,
    item_service,
    parse_time,
    runs,
    secret,
)

pytestmark = pytest.mark.cluster

NAME = "learner"
SILENT_AFTER_WINDOW = 12  # the slow starter listens this long after its learned window ends


@pytest.fixture(scope="module")
def learner(e2e: E2E) -> Iterator[Cluster]:
    """ItemService `learner` at v1, Available, no readiness window in its spec."""
    kube = Kubectl(ROLLOUT_NAMESPACE)
    cluster = Cluster(kube)
    kube.apply(secret("learner-db", e2e.database.create("e2e_learner")))
    manifest = item_service(NAME, V1, "learner-db", rollout={})
    # Liveness must not restart the slow starter while it sleeps (10 s x 9, not x 3).
    manifest["spec"]["probes"]["liveness"] = {"failureThreshold": 9}
    kube.apply(manifest)
    cluster.wait_phase(NAME, "Available", 150, image=V1)
    yield cluster
    kube.run("delete", "itemservice", NAME, "--ignore-not-found", "--timeout=60s", check=False)


def _started_at(cluster: Cluster, image: str) -> datetime | None:
    for pod in cluster.server_pods(NAME):
        status = (pod.get("status") or {}).get("containerStatuses") or [{}]
        running = (status[0].get("state") or {}).get("running") or {}
        if runs(pod["spec"]["containers"][0]["image"], image) and running.get("startedAt"):
            return parse_time(running["startedAt"])
    return None


def _learned(cluster: Cluster) -> int:
    return int(readiness_window(None, cluster.status(NAME)["history"]).total_seconds())


def test_the_window_is_learned_from_the_first_release(learner: Cluster) -> None:
    history = learner.status(NAME)["history"]
    assert history[-1]["outcome"] == "Available"
    # At most a 60 s window: the slow starter's liveness budget (90 s) covers its silence.
    assert 0 <= history[-1]["timeToReadySeconds"] <= 20, history[-1]
    print(
        f"\nv1 ready {history[-1]['timeToReadySeconds']}s after start: window {_learned(learner)}s"
    )


def test_a_server_that_answers_not_ready_is_judged_by_the_learned_window(
    learner: Cluster, e2e: E2E
) -> None:
    bad, learned = e2e.images.never_ready, _learned(learner)  # /readyz answers 503 at once
    learner.set_image(NAME, bad)
    started = wait_until(
        "the never-ready container to start",
        lambda: _started_at(learner, bad),
        120,
        lambda: learner.describe(NAME),
    )
    wait_until(
        "the Deployment back on v1",
        lambda: runs(learner.deployment_image(NAME), V1),
        learned + 30,
        lambda: learner.describe(NAME),
    )
    waited = (datetime.now(UTC) - started).total_seconds()
    status = learner.wait_phase(NAME, "RolledBack", 30, image=bad)
    entry = status["history"][-1]
    assert entry["reason"] == "ReadinessTimeout"
    said = f"not ready within its {learned}s window; /readyz says database: unreachable"
    assert said in entry["message"]
    print(f"\nnever-ready judged {waited:.1f}s after its container started (learned window)")
    assert learned - 3 <= waited <= learned + 10  # the stamp truncates; a pass and a poll


def test_a_server_not_yet_listening_is_not_judged_by_the_learned_window(
    learner: Cluster, e2e: E2E
) -> None:
    slow, learned = e2e.images.slow_start, _learned(learner)
    silent = learned + SILENT_AFTER_WINDOW
    env = [
        {"name": "ITEMS_WORKERS", "value": "1"},
        {"name": "BENCH_SLOW_START_SECONDS", "value": str(silent)},
    ]
    patch = {"spec": {"image": slow, "env": env}}
    learner.kube.run("patch", "itemservice", NAME, "--type=merge", "-p", json.dumps(patch))
    rolled_back: list[str] = []

    def watch() -> None:
        status = learner.status(NAME)
        if status.get("phase") == "RolledBack" and status.get("targetImage") == slow:
            rolled_back.append(status.get("message", ""))

    status = learner.wait_phase(NAME, "Available", silent + 150, image=slow, also=watch)
    assert not rolled_back, rolled_back[0]
    entry = status["history"][-1]
    assert entry["outcome"] == "Available"
    # Ready well past the learned window from its start: the old rule would have rolled it back.
    assert entry["timeToReadySeconds"] >= silent - 1 > learned, entry
