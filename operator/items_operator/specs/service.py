"""Service in front of the server pods."""

from typing import Any

from items_operator.constants import COMPONENT_SERVER
from items_operator.model import ItemServiceSpec, Owner
from items_operator.specs.common import object_meta, selector_labels, stamp_desired_hash


def service_name(owner: Owner) -> str:
    return owner.name


def build_service(owner: Owner, spec: ItemServiceSpec) -> dict[str, Any]:
    return stamp_desired_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": object_meta(owner, name=service_name(owner), component=COMPONENT_SERVER),
            "spec": {
                "type": spec.service.type,
                "selector": selector_labels(owner, COMPONENT_SERVER),
                "ports": [
                    {
                        "name": "http",
                        "port": spec.service.port,
                        "targetPort": "http",
                        "protocol": "TCP",
                    }
                ],
            },
        }
    )
