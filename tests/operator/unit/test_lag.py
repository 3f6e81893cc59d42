"""A pass on a view that has not caught up with this process's own writes (a lagging cache,
Kopf's live body) writes nothing twice and posts no event twice (lag.py, handlers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from items_operator import handlers, kube
from items_operator.constants import KIND
from items_operator.fleet import UpgradeWave
from items_operator.lag import WriteMemory
from items_operator.leadership import Unfenced
from items_operator.model import ItemService
from items_operator.observe import Observed
from items_operator.plan import Action, Delete, Plan
from items_operator.reads import DictView
from lightkube import ApiError

from .world import OWNER, V2, World


def _conflict() -> ApiError:
    error = ApiError.__new__(ApiError)
    error.status = SimpleNamespace(code=409, message="the object has been modified")  # type: ignore[assignment]
    return error


def _apply_merge(old: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(old)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _apply_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class LaggingCluster:
    """World as the API server (every write lands at once, with a new resourceVersion), and a
    view of it that moves only when the test says so (`catch_up`), as a cache does."""

    world: World
    counter: int = 100
    versions: dict[tuple[str, str], str] = field(default_factory=dict)
    view: Observed | None = None
    body: dict[str, Any] = field(default_factory=dict)
    writes: list[Action] = field(default_factory=list)
    status_writes: int = 0
    events: list[str] = field(default_factory=list)

    def _bump(self) -> str:
        self.counter += 1
        return str(self.counter)

    def catch_up(self) -> None:
        self.view = replace(self.world.observed(), versions=dict(self.versions))
        cr = self.world.cr
        self.body = {
            "metadata": {
                "name": cr.owner.name,
                "namespace": cr.owner.namespace,
                "uid": cr.owner.uid,
                "generation": cr.generation,
                "resourceVersion": self.versions.setdefault((KIND, OWNER.name), self._bump()),
            },
            "spec": cr.spec.model_dump(by_alias=True, exclude_none=True),
            "status": dict(self.world.status),
        }

    async def observe(
        self, client: Any, cr: ItemService, *, cache: Any = None, now: Any = None
    ) -> Observed:
        assert self.view is not None
        return self.view

    async def execute(self, client: Any, namespace: str, action: Action) -> str | None:
        self.writes.append(action)
        self.world.apply(Plan((action,), (), {}, 1.0))
        key = (action.kind, action.name)
        if isinstance(action, Delete):
            self.versions.pop(key, None)
            return None
        self.versions[key] = self._bump()
        return self.versions[key]

    async def patch_status(
        self,
        client: Any,
        name: str,
        namespace: str,
        patch: dict[str, Any],
        resource_version: str | None = None,
    ) -> str | None:
        if resource_version is not None and resource_version != self.versions[(KIND, name)]:
            raise _conflict()  # the precondition of a stale view, as the API server refuses it
        self.status_writes += 1
        self.world.status = _apply_merge(self.world.status, patch)
        self.versions[(KIND, name)] = self._bump()
        return self.versions[(KIND, name)]


class _Clock:
    def __init__(self, world: World) -> None:
        self.world = world

    async def now(self, client: Any) -> datetime:
        return self.world.now


@contextlib.contextmanager
def lagging_cluster() -> Iterator[LaggingCluster]:
    found = LaggingCluster(World())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kube, "observe", found.observe)
        patch.setattr(kube, "execute", found.execute)
        patch.setattr(kube, "patch_status", found.patch_status)
        patch.setattr(kopf, "event", lambda _, **e: found.events.append(e["reason"]))
        patch.setattr(kopf, "warn", lambda _, **e: found.events.append(e["reason"]))
        yield found


def _pass(cluster: LaggingCluster, memory: WriteMemory) -> float:
    logger: Any = logging.getLogger("test")
    return asyncio.run(
        handlers.reconcile_once(
            None,  # type: ignore[arg-type]
            _Clock(cluster.world),  # type: ignore[arg-type]
            OWNER.name,
            OWNER.namespace,
            cluster.body,  # type: ignore[arg-type]
            logger,
            UpgradeWave(),
            fence=Unfenced(),
            cache=DictView({}),
            memory=memory,
        )
    )


def _counts(cluster: LaggingCluster) -> tuple[int, int, int]:
    return len(cluster.writes), cluster.status_writes, len(cluster.events)


@settings(max_examples=40, deadline=None)
@given(
    stale_passes=st.lists(st.integers(0, 3), min_size=8, max_size=8),
    ticks=st.lists(st.sampled_from([0.0, 0.5, 3.0, 30.0]), min_size=8, max_size=8),
    patient=st.booleans(),
)
def test_a_lagging_view_never_causes_a_second_write_or_event(
    stale_passes: list[int], ticks: list[float], patient: bool
) -> None:
    """From nothing to a rolled-out second release; after each real pass, a few more on the
    view that has not seen its writes yet. Impatient (the view lags past the patience): the
    pass decides on the stale view, and any write or status equal to the last is dropped."""
    memory = WriteMemory(patience=10.0 if patient else 0.0)
    with lagging_cluster() as cluster:
        for step, (stale, tick) in enumerate(zip(stale_passes, ticks, strict=True)):
            if step == 4:
                cluster.world.change(image=V2)
            cluster.world.finish_jobs()
            cluster.world.controllers()
            cluster.catch_up()
            _pass(cluster, memory)
            done = _counts(cluster)
            for _ in range(stale):
                if patient:
                    cluster.world.tick(tick)  # any time: the pass waits for the view
                    assert _pass(cluster, memory) == handlers.LAG_RETRY_SECONDS
                else:
                    _pass(cluster, memory)  # decides on the stale view, at the same time
                assert _counts(cluster) == done, (cluster.writes[done[0] :], cluster.events)
            cluster.world.tick(1.0)
        assert cluster.world.status["phase"] == "Available"
        assert cluster.world.status["targetImage"] == V2


def test_a_caught_up_view_is_acted_on_again() -> None:
    memory = WriteMemory()
    with lagging_cluster() as cluster:
        _caught_up_view_is_acted_on(cluster, memory)


def _caught_up_view_is_acted_on(cluster: LaggingCluster, memory: WriteMemory) -> None:
    cluster.catch_up()
    _pass(cluster, memory)
    writes, status_writes, _ = _counts(cluster)
    assert writes > 0
    assert status_writes == 1
    assert _pass(cluster, memory) == handlers.LAG_RETRY_SECONDS  # stale: waits
    cluster.world.finish_jobs()
    cluster.catch_up()
    _pass(cluster, memory)  # the view moved: the migration's end is acted on
    assert _counts(cluster)[1] == 2
    assert memory.entries.keys() <= {k for k in cluster.versions}


def test_memory_forgets_a_write_once_the_view_moves() -> None:
    memory = WriteMemory(patience=10.0)
    key = ("Deployment", "shop")
    memory.remember(key, before="5", after="6", what="apply", now=0.0)
    assert memory.waiting({key: "5"}, now=1.0) == [key]
    assert memory.repeats(key, "apply", {key: "5"})
    assert not memory.repeats(key, "other", {key: "5"})
    assert memory.waiting({key: "5"}, now=11.0) == []  # patience over; still a repeat:
    assert memory.repeats(key, "apply", {key: "5"})
    assert memory.waiting({key: "7"}, now=1.0) == []  # moved past (later writes included)
    assert not memory.repeats(key, "apply", {key: "7"})
    memory.remember(key, before="7", after="7", what="apply", now=0.0)  # a no-op write
    assert memory.waiting({key: "7"}, now=1.0) == []
