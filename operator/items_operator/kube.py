"""The only module that talks to the API server: read observations, execute a Plan's actions."""

from __future__ import annotations

from typing import Any

from lightkube import ApiError, AsyncClient, codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod, Secret, Service, ServiceAccount
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.types import CascadeType, PatchType

from items_operator import metrics
from items_operator.constants import (
    ANNOTATION_DESIRED_HASH,
    ANNOTATION_FAILURE,
    COMPONENT_MIGRATION,
    COMPONENT_SERVER,
    FIELD_MANAGER,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
)
from items_operator.decide import Action, Apply, CreateJob, Delete, FailJob
from items_operator.model import ItemService, Owner
from items_operator.observe import (
    Observed,
    controlled_by,
    observe_deployment,
    observe_job,
    observe_pod,
    secret_state,
)
from items_operator.specs.common import selector_labels

ItemServiceResource = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)

_SUPPORTING: dict[str, Any] = {
    "ServiceAccount": ServiceAccount,
    "Service": Service,
    "PodDisruptionBudget": PodDisruptionBudget,
}
# Only what a Plan may delete; everything else goes by garbage collection with the CR.
_DELETABLE: dict[str, Any] = {"Job": Job, "PodDisruptionBudget": PodDisruptionBudget}


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
    return [dict(obj.to_dict()) async for obj in client.list(kind, namespace=namespace,
                                                              labels=labels)]


async def read_item_service(
    client: AsyncClient, name: str, namespace: str
) -> dict[str, Any] | None:
    return await _get(client, ItemServiceResource, name, namespace)


async def observe(client: AsyncClient, cr: ItemService) -> Observed:
    """Read everything decide() needs for one ItemService, all in its own namespace."""
    owner, ns = cr.owner, cr.owner.namespace
    conflicts: list[str] = []

    secret = await _get(client, Secret, cr.spec.database.secret_ref.name, ns)

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

    jobs = [
        observe_job(job)
        for job in await _list(client, Job, ns, _label_filter(owner, COMPONENT_MIGRATION))
        if controlled_by(job, owner.uid)
    ]
    pods = [
        observe_pod(pod)
        for pod in await _list(client, Pod, ns, _label_filter(owner, COMPONENT_SERVER))
    ]
    # Pods of running migrations only matter while a Job is active; skip the list otherwise.
    job_pods = []
    if any(not job.finished for job in jobs):
        job_pods = [
            observe_pod(pod)
            for pod in await _list(client, Pod, ns, _label_filter(owner, COMPONENT_MIGRATION))
        ]
    return Observed(
        secret=secret_state(secret, cr.spec.database.secret_ref.key),
        deployment=deployment,
        jobs=tuple(jobs),
        pods=tuple(pods),
        job_pods=tuple(job_pods),
        owned_hashes=owned_hashes,
        conflicts=tuple(conflicts),
    )


async def execute(client: AsyncClient, namespace: str, action: Action) -> None:
    """Carry out one action; "already there" and "already gone" count as done."""
    match action:
        case Apply(obj=obj):
            await client.apply(codecs.from_dict(obj), field_manager=FIELD_MANAGER, force=True)
        case CreateJob(obj=obj):
            try:
                await client.create(codecs.from_dict(obj))
            except ApiError as error:
                if error.status.code != 409:
                    raise
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


async def patch_status(
    client: AsyncClient, name: str, namespace: str, patch: dict[str, Any]
) -> None:
    await client.patch(
        ItemServiceResource.Status,
        name,
        {"status": patch},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
