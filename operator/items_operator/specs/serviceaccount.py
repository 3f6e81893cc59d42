"""ServiceAccount the service pods and migration Jobs run as."""

from typing import Any

from items_operator.constants import COMPONENT_SERVER
from items_operator.model import ItemServiceSpec, Owner
from items_operator.specs.common import object_meta, stamp_desired_hash


def service_account_name(owner: Owner) -> str:
    return owner.name


def build_service_account(owner: Owner, spec: ItemServiceSpec) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(
            owner, name=service_account_name(owner), component=COMPONENT_SERVER
        ),
        # The service never talks to the Kubernetes API; no token in its pods.
        "automountServiceAccountToken": False,
    }
    if spec.image_pull_secrets:
        obj["imagePullSecrets"] = [{"name": n} for n in spec.image_pull_secrets]
    return stamp_desired_hash(obj)
