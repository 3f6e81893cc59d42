"""The module that reads observations and executes a Plan's actions (reads.py holds the two
sources of objects, kube_proxy.py the pods' own endpoints and the server's clock)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lightkube import ApiError, AsyncClient, codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import ControllerRevision
from lightkube.resources.batch_v1 import Job
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.types import CascadeType, PatchType

from items_operator import kube_proxy
from items_operator.constants import (
    ANNOTATION_FAILURE,
    COMPONENT_MIGRATION,
    COMPONENT_SERVER,
    FIELD_MANAGER,
    GROUP,
    KIND,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    PLURAL,
    VERSION,
)
from items_operator.model import ItemService
from items_operator.observe import Observed, controlled_by
from items_operator.plan import Action, AdoptJob, Apply, Create, Delete, FailJob
from items_operator.reads import ApiReads, CachedReads, IndexView, Reads, get, is_not_found
from items_operator.records import NAMED_KINDS, SUPPORTING_KINDS, NamedRecord, secret_facts
from items_operator.specs.pdb import wants_pdb

ItemServiceResource = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)

# Only what a Plan may delete; everything else goes by garbage collection with the CR.
_DELETABLE: dict[str, Any] = {
    "Job": Job,
    "PodDisruptionBudget": PodDisruptionBudget,
    "ControllerRevision": ControllerRevision,
}
_CREATABLE: dict[str, Any] = {"Job": Job, "ControllerRevision": ControllerRevision}


async def read_item_service(
    client: AsyncClient, name: str, namespace: str
) -> dict[str, Any] | None:
    return await get(client, ItemServiceResource, name, namespace)


async def observe(
    client: AsyncClient,
    cr: ItemService,
    *,
    cache: IndexView | None = None,
    now: datetime | None = None,
) -> Observed:
    """Read everything decide() needs for one ItemService, all in its own namespace: from the
    API server, or from the watch-fed indexes when `cache` is given (reads.py); `now` (the API
    server's) dates the canary analysis' baselines and the pods' first /readyz answers."""
    owner, ns = cr.owner, cr.owner.namespace
    if cache is not None:
        await cache.audit(client, ns)  # drops records of objects deleted unseen (audit.py)
    reads: Reads = ApiReads(client) if cache is None else CachedReads(cache, client)
    conflicts: list[str] = []
    versions: dict[tuple[str, str], str] = {}
    ref = cr.spec.database.secret_ref

    secret = await reads.secret(ns, ref.name)

    owned_hashes: dict[str, str | None] = {}
    named: dict[str, NamedRecord] = {}
    for kind_name in NAMED_KINDS:
        wanted = kind_name != "PodDisruptionBudget" or wants_pdb(cr.spec)
        record = await reads.named(kind_name, ns, owner.name, wanted=wanted)
        if record is None:
            continue
        if not record.controlled_by(owner.uid):
            conflicts.append(f"{kind_name}/{owner.name}")
            continue
        named[kind_name] = record
        versions[(kind_name, owner.name)] = record.version
        if kind_name in SUPPORTING_KINDS:
            owned_hashes[kind_name] = record.desired_hash
    deployment = named["Deployment"].observed_deployment() if "Deployment" in named else None

    revisions = []
    for stored in await reads.revisions(owner):
        revision = stored.observed_revision()
        if revision is not None and owner.uid in stored.controllers:
            revisions.append(revision)
            versions[("ControllerRevision", stored.name)] = stored.version
    jobs = []
    for job in await reads.jobs(owner):
        if job.owned_by(owner.uid):
            jobs.append(job.job)
            versions[("Job", job.name)] = job.version
    pods = [record.pod for record in await reads.pods(owner, COMPONENT_SERVER)]
    now = now or datetime.now(UTC)
    pods = await kube_proxy.with_readiness(client, cr, pods, now)
    pods = await kube_proxy.with_requests(
        client, cr, deployment.release if deployment else None, pods, now
    )
    # Migration pods matter while a Job runs, and once more when it finishes (the operator
    # copies their image ID and report onto the Job); skip the list otherwise.
    job_pods = []
    if any(not job.finished or not job.adopted for job in jobs):
        job_pods = [record.pod for record in await reads.pods(owner, COMPONENT_MIGRATION)]
    state, digest = secret_facts(secret, ref.key)
    return Observed(
        secret=state,
        secret_digest=digest,
        deployment=deployment,
        revisions=tuple(revisions),
        jobs=tuple(jobs),
        pods=tuple(pods),
        job_pods=tuple(job_pods),
        owned_hashes=owned_hashes,
        conflicts=tuple(conflicts),
        versions=versions,
    )


async def execute(client: AsyncClient, namespace: str, action: Action) -> str | None:
    """Carry out one action; "already there" and "already gone" count as done. Returns the
    object's resourceVersion after the write, when the response carries one (handlers.py
    remembers it: a cache that has not seen the write yet must not cause it again)."""
    written: Any
    match action:
        case Apply(obj=obj):
            written = await client.apply(
                codecs.from_dict(obj), field_manager=FIELD_MANAGER, force=True
            )
        case Create(obj=obj):
            try:
                written = await client.create(codecs.from_dict(obj))
            except ApiError as error:
                if error.status.code != 409:
                    raise
                await _check_ours(client, namespace, obj)
                return None
        case AdoptJob(name=name, owner_reference=reference, annotations=annotations):
            adopt = {
                "metadata": {"ownerReferences": [reference], "annotations": annotations},
                "spec": {"ttlSecondsAfterFinished": None},
            }
            written = await client.patch(
                Job, name, adopt, namespace=namespace, patch_type=PatchType.MERGE
            )
        case FailJob(name=name, note=note):
            patch = {
                "metadata": {"annotations": {ANNOTATION_FAILURE: note}},
                "spec": {"activeDeadlineSeconds": 1},
            }
            written = await client.patch(
                Job, name, patch, namespace=namespace, patch_type=PatchType.MERGE
            )
        case Delete(kind=kind, name=name, propagation=propagation):
            cascade = (
                CascadeType.FOREGROUND if propagation == "Foreground" else CascadeType.BACKGROUND
            )
            try:
                await client.delete(_DELETABLE[kind], name, namespace=namespace, cascade=cascade)
            except ApiError as error:
                if not is_not_found(error):
                    raise
            return None
    return _resource_version(written)


def _resource_version(obj: Any) -> str | None:
    metadata = getattr(obj, "metadata", None)
    version = getattr(metadata, "resourceVersion", None)
    return str(version) if version else None


class ForeignObjectError(Exception):
    """An object we would create exists under our name and someone else controls it."""


async def _check_ours(client: AsyncClient, namespace: str, obj: dict[str, Any]) -> None:
    """ "Already exists" counts as done only when it is our own object (Job names are
    deterministic: someone else's Job with that name would otherwise stall a release forever)."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    existing = await get(client, _CREATABLE[kind], name, namespace)
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
) -> str | None:
    """With resource_version: only onto the ItemService as it was read (409 otherwise).
    Returns the ItemService's resourceVersion after the write."""
    precondition = {"metadata": {"resourceVersion": resource_version}} if resource_version else {}
    written = await client.patch(
        ItemServiceResource.Status,
        name,
        {**precondition, "status": patch},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    return _resource_version(written)
