"""reconcile_once under the fence and the preconditions, the API replaced by a recorder: no
write once the fence closes, the read resourceVersions on the Deployment's apply and on the
status patch, and a 409 re-decided rather than recorded or retried."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from items_operator import handlers, kube
from items_operator.fleet import UpgradeWave
from items_operator.leadership import NotLeaderError
from items_operator.observe import Observed, SecretState, observe_deployment
from items_operator.plan import Action, Apply, Event, Plan
from lightkube import ApiError

from tests.operator.unit.world import V1

ITEM_SERVICE = {
    "apiVersion": "items.platform.dev/v1alpha1",
    "kind": "ItemService",
    "metadata": {"name": "shop", "namespace": "items", "uid": "u1", "resourceVersion": "41"},
    "spec": {"image": V1, "database": {"secretRef": {"name": "db"}}},
    "status": {},
}


def _apply(kind: str) -> Apply:
    return Apply({"apiVersion": "v1", "kind": kind, "metadata": {"name": "shop"}})


PLAN = Plan(
    actions=(_apply("Deployment"), _apply("Service")),
    events=(Event("Normal", "RollingOut", "rolling out"),),
    status={"phase": "RollingOut"},
    requeue_after=2.0,
)


class Fence:
    """Open for `writes` checks, closed after."""

    def __init__(self, writes: int) -> None:
        self.left = writes

    def may_write(self) -> bool:
        return self.left > 0

    def check(self) -> None:
        if self.left <= 0:
            raise NotLeaderError("lost")
        self.left -= 1

    async def wait_for_leadership(self, within: float) -> bool:
        return self.may_write()


def _conflict() -> ApiError:
    error = ApiError.__new__(ApiError)
    error.status = SimpleNamespace(code=409, message="the object has been modified")  # type: ignore[assignment]
    return error


class Api:
    """What reconcile_once sent, in order; `refuse` names writes answered with 409."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, refuse: tuple[str, ...] = ()) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.refuse = refuse
        deployment = observe_deployment(
            {
                "metadata": {"name": "shop", "resourceVersion": "7"},
                "spec": {"template": {"spec": {"containers": [{"name": "items", "image": V1}]}}},
            }
        )
        observed = Observed(
            secret=SecretState.PRESENT,
            deployment=deployment,
            versions={("Deployment", "shop"): "7"},  # as kube.observe records what it read
        )

        async def read(*_: Any) -> dict[str, Any]:
            return ITEM_SERVICE

        async def observe(*_: Any, **__: Any) -> Any:
            return observed

        async def execute(_: Any, __: str, action: Action) -> None:
            self._send(action.kind, action)

        async def patch_status(*args: Any, resource_version: str | None = None) -> None:
            self._send("status", (args[3], resource_version))

        monkeypatch.setattr(kube, "read_item_service", read)
        monkeypatch.setattr(kube, "observe", observe)
        monkeypatch.setattr(kube, "execute", execute)
        monkeypatch.setattr(kube, "patch_status", patch_status)
        monkeypatch.setattr(handlers, "decide", lambda *_: PLAN)
        monkeypatch.setattr(kopf, "event", lambda *_, **kw: self.sent.append(("event", kw)))

    def _send(self, what: str, payload: Any) -> None:
        if what in self.refuse:
            raise _conflict()
        self.sent.append((what, payload))

    def what(self) -> list[str]:
        return [what for what, _ in self.sent]


class Clock:
    async def now(self, _: Any) -> Any:
        return None


def _pass(fence: Fence) -> float:
    logger: Any = SimpleNamespace(info=lambda *_: None, warning=lambda *_: None)
    body: Any = ITEM_SERVICE
    client: Any = None
    clock: Any = Clock()
    return asyncio.run(
        handlers.reconcile_once(
            client, clock, "shop", "items", body, logger, UpgradeWave(), fence=fence
        )
    )


def test_an_open_fence_writes_everything_with_the_read_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = Api(monkeypatch)
    assert _pass(Fence(writes=100)) == 2.0
    assert api.what() == ["Deployment", "Service", "status", "event"]
    deployment, service = api.sent[0][1], api.sent[1][1]
    assert deployment.obj["metadata"]["resourceVersion"] == "7"  # as read this pass
    assert "resourceVersion" not in service.obj["metadata"]
    assert api.sent[2][1] == ({"phase": "RollingOut"}, "41")


@pytest.mark.parametrize("open_for", [0, 1, 2, 3, 4])
def test_no_write_after_the_fence_closes(monkeypatch: pytest.MonkeyPatch, open_for: int) -> None:
    """Checks: the batch, the Deployment, the Service, the status, the events."""
    api = Api(monkeypatch)
    with pytest.raises(NotLeaderError):
        _pass(Fence(writes=open_for))
    assert api.what() == ["Deployment", "Service", "status"][: max(0, open_for - 1)]


@pytest.mark.parametrize("refused", ["Deployment", "status"])
def test_a_409_decides_the_pass_again_and_announces_nothing(
    monkeypatch: pytest.MonkeyPatch, refused: str
) -> None:
    api = Api(monkeypatch, refuse=(refused,))
    assert _pass(Fence(writes=100)) == handlers.CONFLICT_RETRY_SECONDS
    assert "event" not in api.what()
    assert api.what() == ([] if refused == "Deployment" else ["Deployment", "Service"])
