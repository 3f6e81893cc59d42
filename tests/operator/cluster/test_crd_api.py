"""The CRD as a real kube-apiserver enforces it: CEL rejections with their fix-it messages,
server-side defaults equal to the model's, and a status written by decide() kept unpruned."""

from __future__ import annotations

import json
from typing import Any

import pytest
from items_operator.model import ItemServiceSpec

from tests.cluster.kube_support import Kubectl
from tests.operator.unit.world import V1, V2, available_world

pytestmark = pytest.mark.cluster


def _item_service(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "items.platform.dev/v1alpha1",
        "kind": "ItemService",
        "metadata": {"name": name},
        "spec": {"database": {"secretRef": {"name": "db"}}, **spec},
    }


def _dry_run(kube: Kubectl, manifest: dict[str, Any]) -> str:
    result = kube.run(
        "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(manifest), check=False
    )
    return result.stderr if result.returncode else ""


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("items-service", "must be pinned with a tag or a digest"),
        ("localhost:5000/items-service", "must be pinned with a tag or a digest"),
        ("items-service:latest", "'latest' is not allowed"),
    ],
)
def test_unpinned_images_are_rejected_with_a_fix(kube: Kubectl, image: str, message: str) -> None:
    assert message in _dry_run(kube, _item_service("shop", image=image))


@pytest.mark.parametrize("image", ["items-service:1.4.2", "items-service@sha256:" + "a" * 64])
def test_pinned_images_are_accepted(kube: Kubectl, image: str) -> None:
    assert _dry_run(kube, _item_service("shop", image=image)) == ""


def test_database_url_in_env_and_bad_names_are_rejected(kube: Kubectl) -> None:
    env = [{"name": "DATABASE_URL", "value": "x"}]
    assert "remove them from spec.env" in _dry_run(kube, _item_service("shop", image=V1, env=env))
    assert "at most 40 characters" in _dry_run(kube, _item_service("9shop", image=V1))


def test_server_defaults_equal_the_model_defaults(kube: Kubectl) -> None:
    kube.apply(_item_service("defaults", image=V1))
    stored = kube.get("itemservice", "defaults")["spec"]
    minimal = {"image": V1, "database": {"secretRef": {"name": "db"}}}
    assert ItemServiceSpec.model_validate(stored) == ItemServiceSpec.model_validate(minimal)
    assert "readinessTimeoutSeconds" not in stored["rollout"]  # unset: learned from history
    assert stored["database"]["secretRef"]["key"] == "url"


def test_status_from_decide_survives_the_status_subresource(kube: Kubectl) -> None:
    kube.apply(_item_service("status", image=V2))
    world = available_world()
    world.change(image=V2)
    world.settle(passes=1)
    world.controllers(ready=False, waiting=("CrashLoopBackOff",))
    status = {
        **world.step().status,
        "refusedWrites": [{"object": "Service/x", "reason": "QuotaExceeded", "message": "m"}],
    }
    assert status["phase"] == "RolledBack"

    kube.run(
        "patch",
        "itemservice",
        "status",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    assert kube.get("itemservice", "status")["status"] == status


def test_printer_columns(kube: Kubectl) -> None:
    header = kube.run("get", "itemservices", "-o", "wide").stdout.splitlines()[0].split()
    assert header[:8] == [
        "NAME",
        "PHASE",
        "REASON",
        "SERVING",
        "REVISION",
        "READY",
        "DESIRED",
        "AGE",
    ]
    assert {"TARGET", "LAST-GOOD", "MESSAGE"} <= set(header)
