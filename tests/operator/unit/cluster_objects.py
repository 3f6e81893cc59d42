"""Raw API objects as the API server returns them (managedFields and all), and a fake client
that answers GET and LIST over a set of them: the inputs of both read paths (reads.py)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx2 as httpx
from items_operator.constants import (
    ANNOTATION_DESIRED_HASH,
    ANNOTATION_IMAGE,
    APP_NAME,
    CONTAINER_NAME,
    FIELD_MANAGER,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_MIGRATION_KEY,
    LABEL_NAME,
    LABEL_RELEASE,
)
from items_operator.model import Owner
from lightkube import ApiError

MANAGED_FIELDS = [
    {
        "manager": FIELD_MANAGER,
        "operation": "Apply",
        "apiVersion": "v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {f"f:{LABEL_NAME}": {}}}},
    }
]


def labels(owner: Owner, component: str, *, managed: bool = True) -> dict[str, str]:
    found = {LABEL_NAME: APP_NAME, LABEL_INSTANCE: owner.name, LABEL_COMPONENT: component}
    return found | ({LABEL_MANAGED_BY: FIELD_MANAGER} if managed else {})


def meta(
    name: str,
    namespace: str,
    version: int,
    *,
    controller: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{name}-{version}",
        "resourceVersion": str(version),
        "creationTimestamp": "2026-11-29T01:50:00Z",
        "labels": labels or {},
        "annotations": annotations or {},
        "managedFields": copy.deepcopy(MANAGED_FIELDS),
    }
    if controller is not None:
        found["ownerReferences"] = [
            {"apiVersion": "items.platform.dev/v1alpha1", "kind": "ItemService", "name": "x"}
            | {"uid": controller, "controller": True, "blockOwnerDeletion": True}
        ]
    return found


def template(image: str, release: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {LABEL_RELEASE: release}},
        "spec": {"containers": [{"name": CONTAINER_NAME, "image": image}]},
    }


def deployment(m: dict[str, Any], image: str, release: str, ready: int) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": m | {"generation": 2},
        "spec": {"replicas": 2, "template": template(image, release)},
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ],
        },
    }


def supporting(kind: str, m: dict[str, Any], desired_hash: str | None) -> dict[str, Any]:
    if desired_hash is not None:
        m["annotations"][ANNOTATION_DESIRED_HASH] = desired_hash
    return {"kind": kind, "metadata": m, "spec": {}}


def revision(m: dict[str, Any], number: int, image: str, release: str | None) -> dict[str, Any]:
    if release is not None:
        m["labels"][LABEL_RELEASE] = release
        m["labels"][LABEL_MIGRATION_KEY] = f"key-{release}"
    return {
        "kind": "ControllerRevision",
        "metadata": m,
        "revision": number,
        "data": {"template": template(image, release or "x")},
    }


def job(m: dict[str, Any], image: str, outcome: str | None) -> dict[str, Any]:
    m["annotations"][ANNOTATION_IMAGE] = image
    conditions = [] if outcome is None else [{"type": outcome, "status": "True"}]
    return {
        "kind": "Job",
        "metadata": m,
        "spec": {"template": {}},
        "status": {"startTime": "2026-11-29T01:58:00Z", "conditions": conditions},
    }


def pod(
    m: dict[str, Any], image: str, *, ready: bool, job_name: str | None = None
) -> dict[str, Any]:
    if job_name is not None:
        m["labels"]["batch.kubernetes.io/job-name"] = job_name
    return {
        "kind": "Pod",
        "metadata": m,
        "spec": {"containers": [{"name": CONTAINER_NAME, "image": image}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": CONTAINER_NAME,
                    "ready": ready,
                    "restartCount": 0,
                    "imageID": f"{image}@sha256:00",
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                }
            ],
        },
    }


def secret(m: dict[str, Any], data: dict[str, str], type_: str = "Opaque") -> dict[str, Any]:
    return {"kind": "Secret", "metadata": m, "type": type_, "data": data}


class _Obj:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.raw)


class _NoProxy:
    async def get(self, *_: Any, **__: Any) -> Any:
        raise httpx.ConnectError("no pods/proxy in unit tests")


def not_found() -> ApiError:
    request = httpx.Request("GET", "https://api.invalid/x")
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
    return ApiError(response=httpx.Response(404, json=body, request=request))


class FakeClient:
    """GET by (kind, namespace, name) and LIST by label selector over raw objects."""

    def __init__(self, objects: Iterable[dict[str, Any]]) -> None:
        self.objects = list(objects)
        self._client = type("Generic", (), {"_client": _NoProxy()})()

    def _of(self, kind: Any, namespace: str) -> list[dict[str, Any]]:
        return [
            o
            for o in self.objects
            if o["kind"] == kind.__name__ and o["metadata"]["namespace"] == namespace
        ]

    async def get(self, kind: Any, name: str, *, namespace: str) -> _Obj:
        for obj in self._of(kind, namespace):
            if obj["metadata"]["name"] == name:
                return _Obj(obj)
        raise not_found()

    async def list(
        self, kind: Any, *, namespace: str, labels: dict[str, str]
    ) -> AsyncIterator[_Obj]:
        for obj in self._of(kind, namespace):
            found = obj["metadata"].get("labels") or {}
            if all(found.get(k) == v for k, v in labels.items()):
                yield _Obj(obj)
