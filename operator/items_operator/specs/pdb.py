"""PodDisruptionBudget, only when there is more than one replica to protect."""

from typing import Any

from items_operator.constants import COMPONENT_SERVER
from items_operator.model import ItemServiceSpec, Owner
from items_operator.specs.common import object_meta, selector_labels, stamp_desired_hash


def pdb_name(owner: Owner) -> str:
    return owner.name


def wants_pdb(spec: ItemServiceSpec) -> bool:
    # With one replica a PDB of maxUnavailable 1 protects nothing, and minAvailable 1 blocks
    # every node drain forever.
    return spec.replicas > 1


def build_pdb(owner: Owner, spec: ItemServiceSpec) -> dict[str, Any] | None:
    if not wants_pdb(spec):
        return None
    return stamp_desired_hash(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": object_meta(owner, name=pdb_name(owner), component=COMPONENT_SERVER),
            "spec": {
                "maxUnavailable": 1,
                "selector": {"matchLabels": selector_labels(owner, COMPONENT_SERVER)},
                # Pods that never became ready (a broken rollout) must not block node drains.
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
        }
    )
