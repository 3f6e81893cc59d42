"""Watch-fed caches (--cache-reads on), listed and watched by the operator itself: one
informer per cached kind and served namespace (or one per kind cluster-wide).

Why not Kopf's @kopf.index (what this replaced, docs/benchmarks.md "Where the memory goes"):
Kopf lists each kind whole, decodes the whole list at once and keeps per-object machinery
(a worker task, loggers, memories, the raw body) for every object of every watched kind, while
the caches need one small record per object; and its watcher does not list again on a 410 of
an expired continue token. Here a list goes in pages (LIST_PAGE objects decoded at a time),
each object is reduced to its record (records.py) the moment it is decoded, a watch resumes
from the last resourceVersion it saw (bookmarks keep that fresh), and a 410 (an expired
continue token, a resourceVersion too old) lists again and diffs the new listing against the
store, so a deletion missed meanwhile is a deletion here too. A watch that delivers nothing for
--watch-timeout seconds (a proxy that went silent) is closed and resumed: the read timeout of
the stream is that timer (kopf_settings.WatchTimeouts).

The stores are pure (store.py); this module is only their I/O.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
from lightkube import AsyncClient

from items_operator import metrics
from items_operator.audit import PHANTOMS
from items_operator.kopf_settings import WatchTimeouts
from items_operator.store import Entry, Store

logger = logging.getLogger(__name__)

LIST_PAGE = 100
LIST_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
RETRY_FLOOR, RETRY_CEILING = 1.0, 30.0
HTTP_OK, HTTP_GONE = 200, 410

# kind, namespace, name, instance label of the object that changed (was added, was deleted).
OnChange = Callable[[str, str, str, str], None]


@dataclass(frozen=True)
class Source:
    """One cached kind: where it is listed, what the server selects, how an object becomes a
    store entry."""

    kind: str
    api: str  # "/api/v1", "/apis/apps/v1"
    plural: str
    entry: Callable[[dict[str, Any]], Entry]
    label_selector: str | None = None
    field_selector: str | None = None

    def path(self, namespace: str | None) -> str:
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"{self.api}{where}/{self.plural}"

    def selectors(self) -> dict[str, str]:
        found = {}
        if self.label_selector:
            found["labelSelector"] = self.label_selector
        if self.field_selector:
            found["fieldSelector"] = self.field_selector
        return found


class ExpiredError(Exception):
    """410 Gone: the resourceVersion or the continue token is too old; list again."""


class RefusedError(Exception):
    """The API server answered a list or watch with an error status."""


class Informer:
    """One kind in one namespace (None: all): list, then watch, for as long as it runs."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        source: Source,
        namespace: str | None,
        timeouts: WatchTimeouts,
        on_change: OnChange,
    ) -> None:
        self.http, self.source, self.namespace = http, source, namespace
        self.timeouts, self.on_change = timeouts, on_change
        self.store = Store()
        self.synced = asyncio.Event()
        self.version: str | None = None  # where the next watch resumes; None: list first
        self.where = f"{source.plural} in {namespace or 'all namespaces'}"

    async def run(self) -> None:
        retry = RETRY_FLOOR
        while True:
            try:
                if self.version is None:
                    await self.relist()
                await self.watch()
                retry = RETRY_FLOOR
            except ExpiredError:
                metrics.WATCH_RESTARTS.labels(self.source.kind, "expired").inc()
                logger.info(f"watch of {self.where}: resourceVersion expired; listing again")
                self.version = None
            except Exception as error:  # never ends: a dead informer is a frozen cache
                metrics.WATCH_RESTARTS.labels(self.source.kind, "error").inc()
                expected = isinstance(error, httpx.HTTPError | RefusedError | TimeoutError)
                logger.warning(
                    f"watch of {self.where} failed, again in {retry:.0f}s: {error!r}",
                    exc_info=not expected,
                )
                await asyncio.sleep(retry * random.uniform(0.8, 1.2))  # jitter: informers apart
                retry = min(retry * 2, RETRY_CEILING)

    async def relist(self) -> None:
        """The whole selection, page by page, then the store replaced by it: what changed or
        went meanwhile wakes its owner as an event would have."""
        listing: dict[tuple[str, str], Entry] = {}
        token: str | None = None
        while True:
            params = {**self.source.selectors(), "limit": str(LIST_PAGE)}
            if token:
                params["continue"] = token
            metrics.WATCH_REQUESTS.labels(self.source.kind, "list").inc()
            response = await self.http.get(
                self.source.path(self.namespace), params=params, timeout=LIST_TIMEOUT
            )
            if response.status_code == HTTP_GONE and token:
                listing, token = {}, None  # the snapshot expired mid-listing: from the top
                continue
            _check(response)
            page = response.json()
            for obj in page.get("items") or ():
                entry = self.entry(obj)
                if entry is not None:
                    listing[entry.object] = entry
                    PHANTOMS.touched((self.source.kind, *entry.object))
            del page["items"]  # a page at a time: the records are all that stays
            token = page["metadata"].get("continue") or None
            if token is None:
                break
        for entry in self.store.replace(listing):
            self.on_change(self.source.kind, *entry.object, entry.instance)
        self.version = str(page["metadata"]["resourceVersion"])
        self.synced.set()

    async def watch(self) -> None:
        """One watch request, from self.version, until the server ends it, it goes silent for
        the inactivity timeout (then resumed by run) or the version expires (ExpiredError)."""
        params = {
            **self.source.selectors(),
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": str(self.version),
            "timeoutSeconds": str(self.timeouts.server),
        }
        timeout = httpx.Timeout(
            CONNECT_TIMEOUT, read=self.timeouts.inactivity, connect=CONNECT_TIMEOUT
        )
        metrics.WATCH_REQUESTS.labels(self.source.kind, "watch").inc()
        path = self.source.path(self.namespace)
        try:
            async with asyncio.timeout(self.timeouts.client):
                async with self.http.stream("GET", path, params=params, timeout=timeout) as answer:
                    if answer.status_code != HTTP_OK:
                        await answer.aread()
                        _check(answer)
                    async for line in answer.aiter_lines():
                        if line.strip():
                            self.apply(json.loads(line))
        except httpx.ReadTimeout:  # no byte for that long, headers or events: a silent stream
            metrics.WATCH_RESTARTS.labels(self.source.kind, "inactive").inc()
            logger.info(
                f"watch of {self.where} is inactive for {self.timeouts.inactivity:g}s; resuming it"
            )

    def apply(self, event: dict[str, Any]) -> None:
        """One watch event into the store; an ERROR event raises."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == HTTP_GONE:
                raise ExpiredError
            raise RefusedError(f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}")
        version = str(obj["metadata"]["resourceVersion"])
        entry = self.entry(obj) if kind != "BOOKMARK" else None
        if entry is not None:
            PHANTOMS.touched((self.source.kind, *entry.object))
            changed = (
                self.store.delete(entry.object) if kind == "DELETED" else self.store.put(entry)
            )
            if changed is not None:
                self.on_change(self.source.kind, *entry.object, entry.instance)
        self.version = version

    def entry(self, obj: dict[str, Any]) -> Entry | None:
        """The object's entry; None (logged, skipped) for one the reducers cannot read, which
        would otherwise fail its watch again on every resume."""
        try:
            return self.source.entry(obj)
        except (KeyError, TypeError, ValueError, AttributeError):
            metrics.WATCH_RESTARTS.labels(self.source.kind, "unreadable").inc()
            name = (obj.get("metadata") or {}).get("name")
            logger.exception(f"{self.source.kind} {name!r} in {self.where}: unreadable, skipped")
            return None


def _check(response: httpx.Response) -> None:
    if response.status_code == HTTP_GONE:
        raise ExpiredError
    if response.status_code != HTTP_OK:
        raise RefusedError(f"{response.status_code}: {response.text[:300]}")


class Informers:
    """All the informers of one operator: started with the operator, stopped with it."""

    def __init__(self, informers: Sequence[Informer], client: AsyncClient) -> None:
        self.informers = {(i.source.kind, i.namespace): i for i in informers}
        self.client = client  # their own client: long watches never hold the passes' pool
        self.tasks: list[asyncio.Task[None]] = []

    @classmethod
    def start(
        cls,
        sources: Sequence[Source],
        namespaces: Sequence[str],
        timeouts: WatchTimeouts,
        on_change: OnChange,
    ) -> Informers:
        client = AsyncClient()
        http = client._client._client  # kube_proxy._http: lightkube 1.0.x internals, pinned
        where: Sequence[str | None] = list(namespaces) or [None]
        informers = cls(
            [Informer(http, s, ns, timeouts, on_change) for s in sources for ns in where], client
        )
        informers.tasks = [
            asyncio.create_task(i.run(), name=f"informer {i.where}")
            for i in informers.informers.values()
        ]
        return informers

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.close()

    async def wait_synced(self, seconds: float) -> bool:
        """Whether every informer has listed, waiting `seconds` at most."""
        waits = [i.synced.wait() for i in self.informers.values() if not i.synced.is_set()]
        if waits:
            try:
                async with asyncio.timeout(seconds):
                    await asyncio.gather(*waits)
            except TimeoutError:
                return False
        return True
