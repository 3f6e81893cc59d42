"""Reads through the API server that are not objects: a pod's /readyz and /metrics (pods/proxy)
and the server's clock (its Date header). kube.py calls these; nothing here writes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx2 as httpx
from lightkube import AsyncClient

from items_operator import metrics
from items_operator.analysis import (
    RequestSample,
    analysis_running,
    parse_metrics,
    pods_to_measure,
)
from items_operator.constants import HTTP_PORT
from items_operator.model import ItemService
from items_operator.observe import PodObservation

# /readyz bodies read through the API server per pass, at most: only unready running pods.
READINESS_READS = 3
READINESS_TIMEOUT = 3.0
HTTP_OK = 200


def http_client(client: AsyncClient) -> httpx.AsyncClient:
    """lightkube's own httpx client (base URL and credentials set), for the requests it has no
    API for: pods/proxy, the server's Date, the informers' streaming lists and watches.
    Internal attributes of lightkube 1.0.x (pinned in pyproject.toml):
    GenericAsyncClient._client is an httpx2.AsyncClient."""
    return client._client._client


@dataclass(frozen=True)
class Answers:
    """When a container run first answered /readyz at all, and first answered ready (200)."""

    first: datetime
    ready: datetime | None = None


Runs = dict[tuple[str, datetime], Answers]  # (pod uid, container start) -> its first answers

# Per ItemService (namespace, name): when each pod's current container first answered /readyz,
# and first answered it ready (keyed by pod uid and container start), by the API server's clock
# as the pass read it. Lost on restart: a pod then counts as answering from the first pass after
# it, which only ever delays a verdict by its window (verdict.py), never hastens one; a ready
# answer before the restart is not known, and one read after it counts only within the pod's
# window (verdict.window_start): a restart never grants a pod more than two windows.
_ANSWERED: dict[tuple[str, str], Runs] = {}


async def with_readiness(
    client: AsyncClient, cr: ItemService, pods: list[PodObservation], now: datetime
) -> list[PodObservation]:
    """Attach /readyz's checks to unready running pods (the service names the failing
    dependency there, which tells an outage from a broken release) and when each first
    answered at all (a pod that never did is still starting: verdict.py)."""
    key = (cr.owner.namespace, cr.owner.name)
    previous = _ANSWERED.get(key, {})
    unready = [p for p in pods if p.readiness_polled][:READINESS_READS]
    bodies = await asyncio.gather(
        *(_readiness(client, cr.owner.namespace, p.name) for p in unready)
    )
    read = {p.name: b for p, b in zip(unready, bodies, strict=True)}
    attached, answered = attach_answers(pods, read, previous, now)
    if answered:
        _ANSWERED[key] = answered
    else:
        _ANSWERED.pop(key, None)
    return attached


def attach_answers(
    pods: list[PodObservation],
    read: Mapping[str, ReadinessAnswer | None],
    previous: Runs,
    now: datetime,
) -> tuple[list[PodObservation], Runs]:
    """The pods with this pass's /readyz checks and their container's first answer, and the
    first answers to keep (only of the containers still there: a restart or a new pod is a
    new run, a gone pod is forgotten)."""
    answered: Runs = {}
    attached = []
    for pod in pods:
        run = (pod.uid, pod.started_at) if pod.started_at is not None else None
        body = read.get(pod.name)
        kept = previous.get(run) if run is not None else None
        if run is not None and (kept is not None or body is not None):
            kept = kept or Answers(now)
            if kept.ready is None and body is not None and body.ready:
                kept = replace(kept, ready=now)
            answered[run] = kept
        checks = body.checks if body is not None else pod.readiness_checks
        since = answered.get(run) if run is not None else None
        attached.append(
            replace(
                pod,
                readiness_checks=checks,
                answered_at=since.first if since else None,
                ready_answered_at=since.ready if since else None,
            )
        )
    return attached, answered


@dataclass(frozen=True)
class ReadinessAnswer:
    """The pod's own answer to GET /readyz (any status), not the API server's proxy error."""

    checks: dict[str, str]
    ready: bool = False  # it answered 200: ready, whatever the kubelet's probe saw last


async def _readiness(client: AsyncClient, namespace: str, pod: str) -> ReadinessAnswer | None:
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}:{HTTP_PORT}/proxy/readyz"
    metrics.READS.labels("proxy", "Pod").inc()
    try:
        response = await http_client(client).get(path, timeout=READINESS_TIMEOUT)
    except httpx.HTTPError:
        return None  # no answer is no evidence either way
    return readiness_answer(response.text, response.status_code)


def readiness_answer(text: str, status: int) -> ReadinessAnswer | None:
    """The pod's answer in a pods/proxy response (the pod's own status code passes through),
    or None when the body is the API server's own Status (it could not reach the pod: not
    listening, refused, timed out)."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None  # the pod answered, with something else than a report
    if isinstance(body, dict) and body.get("kind") == "Status" and "apiVersion" in body:
        return None
    checks = body.get("checks") if isinstance(body, dict) else None
    report = {str(k): str(v) for k, v in checks.items()} if isinstance(checks, dict) else {}
    return ReadinessAnswer(report, ready=status == HTTP_OK)


# Per ItemService (namespace, name): each measured container's (pod uid, restarts) first sample
# of the analysis and when it was taken, so new and old pods are compared over the same
# interval. Lost on restart: the analysis then starts again from the first pass after it
# (verdict.py counts its duration from the newest baseline), never from a shortened window.
Baselines = dict[str, tuple[RequestSample, datetime]]  # container -> first sample, taken then
_BASELINES: dict[tuple[str, str], Baselines] = {}


async def with_requests(
    client: AsyncClient,
    cr: ItemService,
    release: str | None,
    pods: list[PodObservation],
    now: datetime,
) -> list[PodObservation]:
    """Attach the item API's requests since the analysis began (analysis.py) to the pods a
    running canary analysis compares; nothing is read otherwise."""
    key = (cr.owner.namespace, cr.owner.name)
    spec, status = cr.spec.rollout.analysis, cr.status
    history = status.get("history") or []
    if not analysis_running(spec, release, status.get("lastGoodRelease"), history):
        _BASELINES.pop(key, None)
        return pods
    chosen = pods_to_measure(spec, status, release, pods)
    samples = await asyncio.gather(*(_metrics(client, key[0], p.name) for p in chosen))
    read = {p.name: s for p, s in zip(chosen, samples, strict=True) if s is not None}
    measured, _BASELINES[key] = attach_requests(pods, read, _BASELINES.get(key, {}), now)
    return measured


def attach_requests(
    pods: list[PodObservation],
    read: Mapping[str, RequestSample],
    previous: Baselines,
    now: datetime,
) -> tuple[list[PodObservation], Baselines]:
    """The pods with their requests since their container's baseline (taken at its first read),
    and the baselines to keep: every one of a container still there, read or not this pass (a
    pod unready for a moment, an unanswered read or a stale cache must not restart the
    analysis' clock); a restarted container or a gone pod is forgotten."""
    live = {_container(p) for p in pods}
    baselines = {c: kept for c, kept in previous.items() if c in live}
    attached = []
    for pod in pods:
        sample, kept = read.get(pod.name), baselines.get(_container(pod))
        if sample is None:  # no figure this pass; its baseline's time still counts (canary.py)
            attached.append(replace(pod, requests_since=kept[1]) if kept else pod)
            continue
        base, since = baselines.setdefault(_container(pod), (sample, now))
        attached.append(replace(pod, requests=sample.since(base), requests_since=since))
    return attached, baselines


def _container(pod: PodObservation) -> str:
    return f"{pod.uid}/{pod.restart_count}"  # a restarted container counts from zero


def forget(namespace: str, name: str) -> None:
    """The ItemService is gone from this operator: drop what was kept for it."""
    _BASELINES.pop((namespace, name), None)
    _ANSWERED.pop((namespace, name), None)


async def _metrics(client: AsyncClient, namespace: str, pod: str) -> RequestSample | None:
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}:{HTTP_PORT}/proxy/metrics"
    metrics.READS.labels("proxy", "Pod").inc()
    try:
        response = await http_client(client).get(path, timeout=READINESS_TIMEOUT)
        response.raise_for_status()
        return parse_metrics(response.text)
    except (httpx.HTTPError, ValueError):
        return None


DATE_RESOLUTION = timedelta(seconds=1)


class ServerClock:
    """The API server's clock, from the Date header of a cheap request, refreshed each minute.

    Readiness windows compare object timestamps (written by the API server and the kubelet)
    with "now": the operator's own clock may be skewed, so now = local time + measured offset.
    Date has a resolution of one second, enough for windows of tens of seconds.
    """

    REFRESH_SECONDS = 60.0

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self.measured_at: float | None = None

    async def now(self, client: AsyncClient) -> datetime:
        if self.measured_at is None or time.monotonic() - self.measured_at > self.REFRESH_SECONDS:
            await self._measure(client)
        return datetime.now(UTC) + self.offset

    async def _measure(self, client: AsyncClient) -> None:
        before = datetime.now(UTC)
        try:
            response = await http_client(client).get("/version", timeout=READINESS_TIMEOUT)
            server = parsedate_to_datetime(response.headers["date"])
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            return  # keep the last offset; try again next pass
        after = datetime.now(UTC)
        # Date is the server's second, truncated: its middle is the unbiased estimate (a
        # truncated one makes "now" early by half a second on average, every deadline late).
        self.offset = server + DATE_RESOLUTION / 2 - (before + (after - before) / 2)
        self.measured_at = time.monotonic()
