"""The only module that talks to the API server: read observations, execute a Plan's actions."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2 as httpx
from lightkube import ApiError, AsyncClient, codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import ControllerRevision, Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod, Secret, Service, ServiceAccount
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.types import CascadeType, PatchType

from items_operator import metrics
from items_operator.analysis import RequestSample, parse_metrics, pods_to_measure
from items_operator.constants import (
    ANNOTATION_DESIRED_HASH,
    ANNOTATION_FAILURE,
    COMPONENT_MIGRATION,
    COMPONENT_SERVER,
    FIELD_MANAGER,
    GROUP,
    HTTP_PORT,
    KIND,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    PLURAL,
    VERSION,
)
from items_operator.model import ItemService, Owner
from items_operator.observe import (
    Observed,
    PodObservation,
    controlled_by,
    observe_deployment,
    observe_job,
    observe_pod,
    observe_revision,
    owns_job,
    secret_state,
    secret_value_digest,
)
from items_operator.plan import Action, AdoptJob, Apply, Create, Delete, FailJob
from items_operator.specs.common import selector_labels

ItemServiceResource = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)

_SUPPORTING: dict[str, Any] = {
    "ServiceAccount": ServiceAccount,
    "Service": Service,
    "PodDisruptionBudget": PodDisruptionBudget,
}
# Only what a Plan may delete; everything else goes by garbage collection with the CR.
_DELETABLE: dict[str, Any] = {
    "Job": Job,
    "PodDisruptionBudget": PodDisruptionBudget,
    "ControllerRevision": ControllerRevision,
}
_CREATABLE: dict[str, Any] = {"Job": Job, "ControllerRevision": ControllerRevision}
# /readyz bodies read through the API server per pass, at most: only unready running pods.
READINESS_READS = 3
READINESS_TIMEOUT = 3.0


def _label_filter(owner: Owner, component: str) -> dict[str, Any]:
    return dict(selector_labels(owner, component))


def is_not_found(error: ApiError) -> bool:
    return error.status.code == 404


async def _get(client: AsyncClient, kind: Any, name: str, namespace: str) -> dict[str, Any] | None:
    metrics.READS.labels("get", kind.__name__).inc()
    try:
        obj = await client.get(kind, name, namespace=namespace)
    except ApiError as error:
        if is_not_found(error):
            return None
        raise
    return dict(obj.to_dict())


async def _list(
    client: AsyncClient, kind: Any, namespace: str, labels: dict[str, Any]
) -> list[dict[str, Any]]:
    metrics.READS.labels("list", kind.__name__).inc()
    return [
        dict(obj.to_dict()) async for obj in client.list(kind, namespace=namespace, labels=labels)
    ]


async def read_item_service(
    client: AsyncClient, name: str, namespace: str
) -> dict[str, Any] | None:
    return await _get(client, ItemServiceResource, name, namespace)


async def observe(client: AsyncClient, cr: ItemService) -> Observed:
    """Read everything decide() needs for one ItemService, all in its own namespace."""
    owner, ns = cr.owner, cr.owner.namespace
    conflicts: list[str] = []
    ref = cr.spec.database.secret_ref

    secret = await _get(client, Secret, ref.name, ns)

    owned_hashes: dict[str, str | None] = {}
    for kind_name, kind in _SUPPORTING.items():
        obj = await _get(client, kind, owner.name, ns)
        if obj is None:
            continue
        if not controlled_by(obj, owner.uid):
            conflicts.append(f"{kind_name}/{owner.name}")
            continue
        owned_hashes[kind_name] = (obj["metadata"].get("annotations") or {}).get(
            ANNOTATION_DESIRED_HASH
        )

    deployment_body = await _get(client, Deployment, owner.name, ns)
    deployment = None
    if deployment_body is not None:
        if controlled_by(deployment_body, owner.uid):
            deployment = observe_deployment(deployment_body)
        else:
            conflicts.append(f"Deployment/{owner.name}")

    server = _label_filter(owner, COMPONENT_SERVER)
    revisions = [
        revision
        for obj in await _list(client, ControllerRevision, ns, server)
        if controlled_by(obj, owner.uid) and (revision := observe_revision(obj)) is not None
    ]
    jobs = [
        observe_job(job)
        for job in await _list(client, Job, ns, _label_filter(owner, COMPONENT_MIGRATION))
        if owns_job(job, owner.uid)
    ]
    pods = [observe_pod(pod) for pod in await _list(client, Pod, ns, server)]
    pods = await _with_readiness(client, ns, pods)
    pods = await _with_requests(client, cr, deployment.release if deployment else None, pods)
    # Migration pods matter while a Job runs, and once more when it finishes (the operator
    # copies their image ID and report onto the Job); skip the list otherwise.
    job_pods = []
    if any(not job.finished or not job.adopted for job in jobs):
        job_pods = [
            observe_pod(pod)
            for pod in await _list(client, Pod, ns, _label_filter(owner, COMPONENT_MIGRATION))
        ]
    return Observed(
        secret=secret_state(secret, ref.key),
        secret_digest=secret_value_digest(secret, ref.key),
        deployment=deployment,
        revisions=tuple(revisions),
        jobs=tuple(jobs),
        pods=tuple(pods),
        job_pods=tuple(job_pods),
        owned_hashes=owned_hashes,
        conflicts=tuple(conflicts),
    )


def _http(client: AsyncClient) -> httpx.AsyncClient:
    """lightkube's own httpx client (base URL and credentials set), for the two requests it has
    no API for: pods/proxy and the server's Date. Internal attributes of lightkube 1.0.x
    (pinned in pyproject.toml): GenericAsyncClient._client is an httpx2.AsyncClient."""
    return client._client._client


async def _with_readiness(
    client: AsyncClient, namespace: str, pods: list[PodObservation]
) -> list[PodObservation]:
    """Attach /readyz's checks to unready running pods: the service names the failing
    dependency there, which tells an outage from a broken release (verdict.py)."""
    unready = [p for p in pods if p.counts and p.started and not p.ready][:READINESS_READS]
    if not unready:
        return pods
    bodies = await asyncio.gather(*(_readiness(client, namespace, p.name) for p in unready))
    checks = {p.name: b for p, b in zip(unready, bodies, strict=True) if b}
    return [replace(p, readiness_checks=checks[p.name]) if p.name in checks else p for p in pods]


async def _readiness(client: AsyncClient, namespace: str, pod: str) -> dict[str, str]:
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}:{HTTP_PORT}/proxy/readyz"
    metrics.READS.labels("proxy", "Pod").inc()
    try:
        response = await _http(client).get(path, timeout=READINESS_TIMEOUT)
        checks = json.loads(response.text).get("checks") or {}
    except (httpx.HTTPError, ValueError, AttributeError):
        return {}  # no answer is no evidence either way
    return {str(k): str(v) for k, v in checks.items()} if isinstance(checks, dict) else {}


# Per ItemService (namespace, name): each measured pod's (uid) first sample of the analysis, so
# new and old pods are compared over the same interval. Lost on restart: the analysis then
# compares from the first pass after it (fewer requests, never wrong ones).
_BASELINES: dict[tuple[str, str], dict[str, RequestSample]] = {}


async def _with_requests(
    client: AsyncClient, cr: ItemService, release: str | None, pods: list[PodObservation]
) -> list[PodObservation]:
    """Attach the item API's requests since the analysis began (analysis.py) to the pods a
    running canary analysis compares; nothing is read otherwise."""
    key = (cr.owner.namespace, cr.owner.name)
    chosen = pods_to_measure(cr.spec.rollout.analysis, cr.status, release, pods)
    if not chosen:
        _BASELINES.pop(key, None)
        return pods
    samples = await asyncio.gather(*(_metrics(client, key[0], p.name) for p in chosen))
    previous, baselines, measured = _BASELINES.get(key, {}), {}, {}
    for pod, sample in zip(chosen, samples, strict=True):
        if sample is None:  # no answer this pass: keep the baseline, no figure
            if pod.uid in previous:
                baselines[pod.uid] = previous[pod.uid]
            continue
        baselines[pod.uid] = previous.get(pod.uid, sample)
        measured[pod.name] = sample.since(baselines[pod.uid])
    _BASELINES[key] = baselines
    return [replace(p, requests=measured[p.name]) if p.name in measured else p for p in pods]


async def _metrics(client: AsyncClient, namespace: str, pod: str) -> RequestSample | None:
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}:{HTTP_PORT}/proxy/metrics"
    metrics.READS.labels("proxy", "Pod").inc()
    try:
        response = await _http(client).get(path, timeout=READINESS_TIMEOUT)
        response.raise_for_status()
        return parse_metrics(response.text)
    except (httpx.HTTPError, ValueError):
        return None


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
            response = await _http(client).get("/version", timeout=READINESS_TIMEOUT)
            server = parsedate_to_datetime(response.headers["date"])
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            return  # keep the last offset; try again next pass
        after = datetime.now(UTC)
        self.offset = server - (before + (after - before) / 2)
        self.measured_at = time.monotonic()


async def execute(client: AsyncClient, namespace: str, action: Action) -> None:
    """Carry out one action; "already there" and "already gone" count as done."""
    match action:
        case Apply(obj=obj):
            await client.apply(codecs.from_dict(obj), field_manager=FIELD_MANAGER, force=True)
        case Create(obj=obj):
            try:
                await client.create(codecs.from_dict(obj))
            except ApiError as error:
                if error.status.code != 409:
                    raise
                await _check_ours(client, namespace, obj)
        case AdoptJob(name=name, owner_reference=reference, annotations=annotations):
            adopt = {
                "metadata": {"ownerReferences": [reference], "annotations": annotations},
                "spec": {"ttlSecondsAfterFinished": None},
            }
            await client.patch(Job, name, adopt, namespace=namespace, patch_type=PatchType.MERGE)
        case FailJob(name=name, note=note):
            patch = {
                "metadata": {"annotations": {ANNOTATION_FAILURE: note}},
                "spec": {"activeDeadlineSeconds": 1},
            }
            await client.patch(Job, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
        case Delete(kind=kind, name=name, propagation=propagation):
            cascade = (
                CascadeType.FOREGROUND if propagation == "Foreground" else CascadeType.BACKGROUND
            )
            try:
                await client.delete(_DELETABLE[kind], name, namespace=namespace, cascade=cascade)
            except ApiError as error:
                if not is_not_found(error):
                    raise


class ForeignObjectError(Exception):
    """An object we would create exists under our name and someone else controls it."""


async def _check_ours(client: AsyncClient, namespace: str, obj: dict[str, Any]) -> None:
    """ "Already exists" counts as done only when it is our own object (Job names are
    deterministic: someone else's Job with that name would otherwise stall a release forever)."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    existing = await _get(client, _CREATABLE[kind], name, namespace)
    if existing is not None and not _same_owner(existing, obj):
        raise ForeignObjectError(
            f"{kind}/{name} already exists and is not controlled by this ItemService: "
            "delete or rename it"
        )


def _same_owner(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    refs = wanted["metadata"].get("ownerReferences")
    if refs:
        return controlled_by(existing, refs[0]["uid"])
    labels, ours = existing["metadata"].get("labels") or {}, wanted["metadata"]["labels"]
    return all(labels.get(k) == ours[k] for k in (LABEL_MANAGED_BY, LABEL_INSTANCE))


async def patch_status(
    client: AsyncClient,
    name: str,
    namespace: str,
    patch: dict[str, Any],
    resource_version: str | None = None,
) -> None:
    """With resource_version: only onto the ItemService as it was read (409 otherwise)."""
    precondition = {"metadata": {"resourceVersion": resource_version}} if resource_version else {}
    await client.patch(
        ItemServiceResource.Status,
        name,
        {**precondition, "status": patch},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
