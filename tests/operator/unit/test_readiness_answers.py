"""What the operator keeps of its /readyz reads (kube_proxy.py): the pod's own answer tells a
server that is up from one that is not (verdict: a learned window judges only the former);
the API server's proxy error is no answer; a container's first answer is kept per run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from items_operator.kube_proxy import ReadinessAnswer, attach_answers, readiness_answer
from items_operator.observe import PodObservation

T0 = datetime(2026, 12, 3, 20, 0, tzinfo=UTC)
# What a 1.34 API server answered for pods/proxy to a pod that refused the connection.
PROXY_ERROR = json.dumps(
    {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "error trying to reach service: dial tcp 10.244.0.246:8000: "
        "connect: connection refused",
        "reason": "ServiceUnavailable",
        "code": 503,
    }
)


def _pod(name: str = "shop-a", *, uid: str = "u1", started: datetime | None = T0) -> PodObservation:
    return PodObservation(name, "i", T0, ready=False, deleting=False, uid=uid, started_at=started)


def test_the_pod_s_own_answer_counts_whatever_it_says() -> None:
    report = {"status": "unavailable", "checks": {"database": "unreachable: OperationalError"}}
    assert readiness_answer(json.dumps(report), 503) == ReadinessAnswer(
        {"database": "unreachable: OperationalError"}
    )
    problem = {"title": "injected fault", "status": 503}  # no report, but the server is up
    assert readiness_answer(json.dumps(problem), 503) == ReadinessAnswer({})
    assert readiness_answer("<html>503</html>", 503) == ReadinessAnswer({})
    ready = {"status": "ok", "checks": {"database": "ok"}}
    assert readiness_answer(json.dumps(ready), 200) == ReadinessAnswer({"database": "ok"}, True)
    assert readiness_answer("ok", 200) == ReadinessAnswer({}, ready=True)


def test_the_api_server_s_proxy_error_is_no_answer() -> None:
    assert readiness_answer(PROXY_ERROR, 503) is None


def test_the_first_answer_is_kept_per_container_run() -> None:
    pod = _pod()
    pods, kept = attach_answers([pod], {"shop-a": None}, {}, T0 + timedelta(seconds=2))
    assert pods[0].answered_at is None
    assert kept == {}
    later = T0 + timedelta(seconds=9)
    pods, kept = attach_answers([pod], {"shop-a": ReadinessAnswer({"a": "b"})}, kept, later)
    assert pods[0].answered_at == later
    assert pods[0].readiness_checks == {"a": "b"}
    # Not read again (or not answering now): the first answer stands.
    pods, kept = attach_answers([pod], {}, kept, later + timedelta(seconds=30))
    assert pods[0].answered_at == later
    pods, kept = attach_answers([pod], {"shop-a": None}, kept, later + timedelta(seconds=32))
    assert pods[0].answered_at == later


def test_a_restart_or_a_new_pod_is_a_new_run_and_gone_pods_are_forgotten() -> None:
    pod = _pod()
    _, kept = attach_answers([pod], {"shop-a": ReadinessAnswer({})}, {}, T0)
    restarted = _pod(started=T0 + timedelta(seconds=40))
    pods, kept = attach_answers([restarted], {"shop-a": None}, kept, T0 + timedelta(seconds=41))
    assert pods[0].answered_at is None
    assert kept == {}
    same_name = _pod(uid="u2")  # a StatefulSet-like re-creation under the same name
    _, kept = attach_answers([pod], {"shop-a": ReadinessAnswer({})}, {}, T0)
    pods, kept = attach_answers([same_name], {}, kept, T0 + timedelta(seconds=1))
    assert pods[0].answered_at is None
    assert kept == {}


def test_a_pod_not_started_has_no_answer_to_keep() -> None:
    pods, kept = attach_answers(
        [_pod(started=None)], {"shop-a": ReadinessAnswer({})}, {}, T0 + timedelta(seconds=1)
    )
    assert pods[0].answered_at is None
    assert kept == {}


def test_the_first_ready_answer_is_kept_beside_the_first_answer() -> None:
    pod = _pod()
    starting = ReadinessAnswer({"database": "ok", "schema": "behind"})
    first = T0 + timedelta(seconds=3)
    pods, kept = attach_answers([pod], {"shop-a": starting}, {}, first)
    assert (pods[0].answered_at, pods[0].ready_answered_at) == (first, None)
    ready_at = T0 + timedelta(seconds=6)
    ready = ReadinessAnswer({"database": "ok"}, ready=True)
    pods, kept = attach_answers([pod], {"shop-a": ready}, kept, ready_at)
    assert (pods[0].answered_at, pods[0].ready_answered_at) == (first, ready_at)
    # A blip after it (503, then a proxy error, then nothing read): the first ready stands.
    blip = ReadinessAnswer({}, ready=False)
    for n, answer in enumerate([blip, None, None]):
        pods, kept = attach_answers(
            [pod], {"shop-a": answer}, kept, ready_at + timedelta(seconds=n + 1)
        )
        assert pods[0].ready_answered_at == ready_at
