"""A refused request is named for what it is, not always "missing RBAC"."""

from __future__ import annotations

import httpx2 as httpx
import pytest
from items_operator.kube import ForeignObjectError
from items_operator.rejections import Refusal, classify
from lightkube import ApiError


def _error(code: int, message: str) -> ApiError:
    response = httpx.Response(
        code,
        json={
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": code,
            "message": message,
        },
        request=httpx.Request("PATCH", "https://api.invalid/api/v1/namespaces/items/services/x"),
    )
    return ApiError(response=response)


@pytest.mark.parametrize(
    ("code", "message", "refusal"),
    [
        (
            403,
            'services "shop" is forbidden: exceeded quota: no-node-ports, requested: '
            "services.nodeports=1, used: services.nodeports=0, limited: "
            "services.nodeports=0",
            Refusal.QUOTA,
        ),
        (
            403,
            'services "shop" is forbidden: User "system:serviceaccount:items-system:'
            'items-operator" cannot patch resource "services"',
            Refusal.RBAC,
        ),
        (
            400,
            'admission webhook "policy.example.com" denied the request: no NodePorts',
            Refusal.ADMISSION,
        ),
        (403, 'pods "x" is forbidden: violates PodSecurity "restricted:latest"', Refusal.ADMISSION),
        (422, 'Service "shop" is invalid: spec.ports[0].port: Invalid value', Refusal.INVALID),
        (409, "the object has been modified", Refusal.CONFLICT),
        (503, "etcdserver: request timed out", Refusal.TRANSIENT),
    ],
)
def test_refusals_are_classified(code: int, message: str, refusal: Refusal) -> None:
    rejection = classify(_error(code, message), namespace="items")
    assert rejection.refusal is refusal
    assert message in rejection.message
    if refusal is Refusal.RBAC:
        assert "items-operator-workloads" in rejection.message
        assert "namespace items" in rejection.message


def test_a_foreign_object_is_a_conflict() -> None:
    rejection = classify(ForeignObjectError("Job/shop-migration-x exists"), namespace="items")
    assert rejection.refusal is Refusal.FOREIGN
    assert not rejection.transient
