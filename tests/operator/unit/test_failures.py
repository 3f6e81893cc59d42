"""The failure classes: kubelet messages sorted by whether they heal, container terminations
and startup probes parsed from pods, and the classes' table in docs/operator.md."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from items_operator.containers import ServiceContainer, Termination, probe_budget
from items_operator.failure_messages import Healing, config_healing, pull_healing
from items_operator.failures import CLASSES, FailureKind, classify_pod, classify_waiting
from items_operator.observe import PodObservation, observe_pod

from .world import NOW, V2

IMAGE = "registry.example/items-service:503"  # a tag that looks like a status code


@pytest.mark.parametrize(
    ("reason", "message", "healing"),
    [
        (
            "ErrImagePull",
            f'failed to pull and unpack image "{IMAGE}": failed to resolve '
            f'reference "{IMAGE}": {IMAGE}: not found',
            Healing.PERMANENT,
        ),
        ("ErrImagePull", "rpc error: code = NotFound desc = manifest unknown", Healing.PERMANENT),
        (
            "ErrImagePull",
            "failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized",
            Healing.PERMANENT,
        ),
        (
            "ErrImagePull",
            "pull access denied, repository does not exist or may require authorization",
            Healing.PERMANENT,
        ),
        (
            "InvalidImageName",
            'Failed to apply default image tag "x": couldn\'t parse image '
            "reference: invalid reference format",
            Healing.PERMANENT,
        ),
        (
            "ErrImageNeverPull",
            "Container image is not present with pull policy of Never",
            Healing.PERMANENT,
        ),
        ("ErrImagePull", "no match for platform in manifest: not found", Healing.PERMANENT),
        (
            "ImagePullBackOff",
            f'Back-off pulling image "{IMAGE}": ErrImagePull: unexpected status '
            "code 429 Too Many Requests - Server message: toomanyrequests",
            Healing.TRANSIENT,
        ),
        (
            "ErrImagePull",
            "unexpected status from HEAD request to https://registry.example/v2/"
            "items-service/manifests/1.0: 503 Service Unavailable",
            Healing.TRANSIENT,
        ),
        (
            "ErrImagePull",
            "received unexpected HTTP status: 500 Internal Server Error",
            Healing.TRANSIENT,
        ),
        ("ErrImagePull", "dial tcp 10.0.0.5:443: i/o timeout", Healing.TRANSIENT),
        ("ErrImagePull", "dial tcp 10.0.0.5:443: connect: connection refused", Healing.TRANSIENT),
        (
            "ErrImagePull",
            "read tcp 10.0.0.9:41234->10.0.0.5:443: read: connection reset by peer",
            Healing.TRANSIENT,
        ),
        ("ErrImagePull", "net/http: TLS handshake timeout", Healing.TRANSIENT),
        # The registry rate-limits an anonymous pull and says "denied" too: it heals.
        ("ErrImagePull", "429 Too Many Requests: denied: rate limit exceeded", Healing.TRANSIENT),
        ("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"', Healing.UNKNOWN),
        ("ErrImagePull", "dial tcp: lookup registry.exmaple: no such host", Healing.UNKNOWN),
    ],
)
def test_pull_messages(reason: str, message: str, healing: Healing) -> None:
    assert pull_healing(reason, message, IMAGE) is healing


@pytest.mark.parametrize(
    ("message", "healing"),
    [
        ('secret "shop-extra" not found', Healing.MISSING_OBJECT),
        ('configmap "features" not found', Healing.MISSING_OBJECT),
        ("couldn't find key token in Secret items/shop-extra", Healing.PERMANENT),
        ("container has runAsNonRoot and image will run as root (pod: x)", Healing.PERMANENT),
        (
            "container has runAsNonRoot and image has non-numeric user (app), cannot verify user "
            "is non-root",
            Healing.PERMANENT,
        ),
        (
            'failed to create containerd task: OCI runtime create failed: exec: "items-servce": '
            "executable file not found in $PATH: unknown",
            Healing.PERMANENT,
        ),
        ("failed to sync secret cache: timed out waiting for the condition", Healing.TRANSIENT),
        ('failed to reserve container name "x": name "x" is reserved for "abc"', Healing.TRANSIENT),
        ("context deadline exceeded", Healing.TRANSIENT),
        ("something new the kubelet says", Healing.UNKNOWN),
    ],
)
def test_container_creation_messages(message: str, healing: Healing) -> None:
    assert config_healing(message) is healing


def _pod(**fields: Any) -> PodObservation:
    base = PodObservation(
        name="shop-v2-0",
        image=V2,
        created_at=NOW - timedelta(seconds=5),
        ready=False,
        deleting=False,
        release="v2",
    )
    return replace(base, **fields)


def _run(reason: str, code: int, started_ago: float, message: str = "") -> Termination:
    return Termination(
        reason,
        code,
        message,
        started_at=NOW - timedelta(seconds=started_ago),
        finished_at=NOW - timedelta(seconds=started_ago - 1),
    )


def test_terminations() -> None:
    twice = _pod(
        container=ServiceContainer(
            terminated=_run("Error", 3, 4), last_terminated=_run("Error", 3, 20)
        )
    )
    failure = classify_pod(twice, now=NOW)
    assert failure is not None
    assert failure.kind is FailureKind.REPEATED_EXIT
    assert failure.exit_code == 3
    different = _pod(
        container=ServiceContainer(
            terminated=_run("Error", 3, 4), last_terminated=_run("Error", 1, 20)
        )
    )
    assert classify_pod(different, now=NOW) is None  # the kubelet will back off: CrashLoop next
    oom = _pod(
        container=ServiceContainer(last_terminated=_run("OOMKilled", 137, 10)),
        started_at=NOW - timedelta(seconds=2),
        ready_changed_at=NOW - timedelta(seconds=30),
    )
    failure = classify_pod(oom, now=NOW)
    assert failure is not None
    assert failure.kind is FailureKind.OOM_AT_START
    # It was ready in that run (Ready changed after the run started): an OOM under load is no
    # certain failure at start; the window and the crash loop still judge it.
    ready_then_oom = replace(oom, ready_changed_at=NOW - timedelta(seconds=5))
    assert classify_pod(ready_then_oom, now=NOW) is None
    assert classify_pod(replace(oom, ready=True), now=NOW) is None
    no_exec = _pod(
        container=ServiceContainer(
            last_terminated=_run(
                "StartError", 128, 10, 'exec: "serve": executable file not found in $PATH'
            )
        )
    )
    failure = classify_pod(no_exec, now=NOW)
    assert failure is not None
    assert failure.kind is FailureKind.CONTAINER_CONFIG


REFUSED = '{"startFailure":"InvalidArguments","detail":"items-service serve: error:\\n  bad"}'


def test_the_service_s_own_start_report_counts_at_the_first_exit() -> None:
    """service/start_report.py: an invalid argument or setting fails every run alike."""
    pod = _pod(container=ServiceContainer(terminated=_run("Error", 2, 3, REFUSED)))
    failure = classify_pod(pod, now=NOW)
    assert failure is not None
    assert failure.kind is FailureKind.START_REFUSED
    assert failure.exit_code == 2
    assert (
        failure.detail
        == "exited with code 2 at start: InvalidArguments: items-service serve: error: bad"
    )
    # Only the service's own report: any other message, JSON or not, waits for a second run.
    for message in ("usage: items-service serve", '{"outcome": "failed"}', "{not json", "[1]"):
        other = _pod(container=ServiceContainer(terminated=_run("Error", 2, 3, message)))
        assert classify_pod(other, now=NOW) is None, message
    # A run that became ready is no start failure (whatever it wrote).
    ready_in_it = replace(pod, ready_changed_at=NOW - timedelta(seconds=2))
    assert classify_pod(ready_in_it, now=NOW) is None


def test_crash_loop_names_its_exit_code() -> None:
    pod = _pod(
        waiting_reasons=("CrashLoopBackOff",),
        waiting_message="back-off 10s",
        container=ServiceContainer(last_terminated=_run("Error", 3, 12)),
    )
    failure = classify_pod(pod, now=NOW)
    assert failure is not None
    assert failure.kind is FailureKind.CRASH_LOOP
    assert failure.exit_code == 3
    assert "last exit code 3" in failure.detail


def test_unknown_pull_counts_after_the_window_from_creation() -> None:
    pod = _pod(
        waiting_reasons=("ImagePullBackOff",), waiting_message=f'Back-off pulling image "{V2}"'
    )
    window = timedelta(seconds=20)
    assert classify_pod(pod, now=NOW, window=window) is None
    late = replace(pod, created_at=NOW - timedelta(seconds=21))
    failure = classify_pod(late, now=NOW, window=window)
    assert failure is not None
    assert failure.kind is FailureKind.IMAGE_PULL_STUCK
    assert classify_pod(late, now=NOW, window=window, floor=NOW) is None  # a hold: clock stopped


def test_container_errors_settle_unless_certain_or_transient() -> None:
    def kind(message: str, age: float) -> FailureKind | None:
        pod = _pod(
            waiting_reasons=("CreateContainerConfigError",),
            waiting_message=message,
            created_at=NOW - timedelta(seconds=age),
        )
        failure = classify_pod(pod, now=NOW)
        return failure.kind if failure else None

    assert kind("couldn't find key token in Secret items/x", 1) is FailureKind.CONTAINER_CONFIG
    assert kind('secret "x" not found', 1) is FailureKind.CONFIG_NOT_FOUND
    assert kind("failed to sync secret cache: timed out waiting for the condition", 600) is None
    assert kind("something new", 10) is None
    assert kind("something new", 31) is FailureKind.CONTAINER_ERROR


def test_schema_behind_counts_only_after_the_release_was_migrated() -> None:
    checks = {"database": "ok", "schema": "behind: database at 0001, this image needs 0002"}
    pod = _pod(started_at=NOW - timedelta(seconds=3), readiness_checks=checks)
    assert classify_pod(pod, now=NOW, migrated=False) is None
    failure = classify_pod(pod, now=NOW, migrated=True)
    assert failure is not None
    assert failure.kind is FailureKind.SCHEMA_BEHIND
    ok = replace(pod, readiness_checks={"database": "ok", "schema": "ok: at 0002"})
    assert classify_pod(ok, now=NOW, migrated=True) is None


def test_migration_pods_never_fail_for_the_environment() -> None:
    transient = _pod(
        waiting_reasons=("ErrImagePull",),
        waiting_message="i/o timeout",
        created_at=NOW - timedelta(seconds=900),
    )
    assert classify_waiting(transient, now=NOW) is None
    missing = _pod(
        waiting_reasons=("CreateContainerConfigError",), waiting_message='secret "db" not found'
    )
    assert classify_waiting(missing, now=NOW) is None
    gone = _pod(waiting_reasons=("ErrImagePull",), waiting_message="manifest unknown")
    assert classify_waiting(gone, now=NOW) is not None


def test_observe_pod_reads_terminations_and_the_startup_probe() -> None:
    body = {
        "metadata": {"name": "shop-1", "creationTimestamp": "2026-11-29T01:59:00Z"},
        "spec": {
            "containers": [
                {
                    "name": "items-service",
                    "image": V2,
                    "startupProbe": {
                        "httpGet": {"path": "/healthz"},
                        "periodSeconds": 5,
                        "failureThreshold": 18,
                    },
                }
            ]
        },
        "status": {
            "containerStatuses": [
                {
                    "name": "items-service",
                    "started": False,
                    "restartCount": 2,
                    "state": {
                        "terminated": {
                            "reason": "Error",
                            "exitCode": 3,
                            "startedAt": "2026-11-29T01:59:40Z",
                        }
                    },
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                }
            ]
        },
    }
    container = observe_pod(body).container
    assert container.terminated == Termination("Error", 3, "", NOW - timedelta(seconds=20))
    assert container.last_terminated is not None
    assert container.last_terminated.reason == "OOMKilled"
    assert container.startup_budget == timedelta(seconds=90)
    assert container.startup_pending
    assert probe_budget({}) == timedelta(seconds=30)  # the kubelet's defaults: 3 x 10 s
    assert not observe_pod({**body, "spec": {"containers": []}}).container.startup_pending


def test_the_documented_failure_classes_are_the_code() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "operator.md").read_text()
    block = doc.split("<!-- failure-classes:start -->")[1].split("<!-- failure-classes:end -->")[0]
    rows = [line.split(" | ") for line in block.strip().splitlines()[2:]]
    documented = {r[0].strip("| `"): (r[1], r[2].rstrip(" |")) for r in rows}
    assert documented == {k.value: (str(c.timing), c.seen_as) for k, c in CLASSES.items()}
    assert set(CLASSES) == set(FailureKind)
