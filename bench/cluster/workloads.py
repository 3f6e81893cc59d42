"""The three ways of delivering the same service that the benchmark compares.

- ours: an ItemService (the operator migrates, rolls out, and rolls back by itself);
- helm: a chart whose migration is a pre-install/pre-upgrade hook Job, upgraded with
  `helm upgrade --wait` (and `--atomic`, Helm 4's `--rollback-on-failure`, for a broken image);
- plain: the Deployment alone, re-applied with the new image, as a GitOps tool would.

The chart and the plain objects are rendered by the operator's own builders from the same spec,
so pods, probes, rollout strategy and Service are identical in all three: only the delivery
mechanism differs. Controller-specific parts are removed (owner references, the desired-state
hash) and progressDeadlineSeconds, so Kubernetes' default (600 s) applies.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from items_operator.model import ItemService, ItemServiceSpec, Owner
from items_operator.release import spec_release
from items_operator.specs.deployment import build_deployment
from items_operator.specs.job import build_migration_job
from items_operator.specs.pdb import build_pdb
from items_operator.specs.service import build_service
from items_operator.specs.serviceaccount import build_service_account

API_VERSION = "items.platform.dev/v1alpha1"
IMAGE_PLACEHOLDER = "{{ .Values.image }}"


def service_spec(image: str, secret_name: str, *, replicas: int) -> dict[str, Any]:
    """spec of every benchmarked workload: the CRD's defaults (probes, rollout strategy, the
    readiness window learned from the service's history) except a small footprint: with 5
    workloads per mechanism (20, 2 replicas each, a surge pod and a migration each at once) the
    node's CPU requests must leave room, or pods wait Pending and a class measures capacity."""
    spec: dict[str, Any] = {
        "image": image,
        "replicas": replicas,
        "database": {"secretRef": {"name": secret_name}},
        "env": [{"name": "ITEMS_WORKERS", "value": "1"}],
        "resources": {"requests": {"cpu": "10m", "memory": "96Mi"}},
    }
    return spec


def item_service(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ItemService",
        "metadata": {"name": name},
        "spec": spec,
    }


def _standalone(obj: dict[str, Any]) -> dict[str, Any]:
    """The builder's object without what only makes sense under the operator."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    meta.pop("ownerReferences", None)
    meta.pop("namespace", None)
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith("items.")
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return obj


def plain_objects(name: str, namespace: str, spec: dict[str, Any], image: str) -> dict[str, Any]:
    """ServiceAccount, Service, PDB (when the operator would make one), Deployment and the
    migration Job for `image`, keyed by kind."""
    owner = Owner(name=name, namespace=namespace, uid="0")
    parsed = ItemServiceSpec.model_validate({**spec, "image": image})
    release = spec_release(ItemService(owner, 1, parsed, {}), url_digest=None)
    objects = {
        "ServiceAccount": build_service_account(owner, parsed),
        "Service": build_service(owner, parsed),
        "Deployment": build_deployment(owner, parsed, template=release.template),
        "Job": build_migration_job(owner, parsed, image=image, migration_key=release.migration_key),
    }
    if (pdb := build_pdb(owner, parsed)) is not None:
        objects["PodDisruptionBudget"] = pdb
    standalone = {kind: _standalone(obj) for kind, obj in objects.items()}
    standalone["Deployment"]["spec"].pop("progressDeadlineSeconds", None)
    return standalone


def write_hook_chart(folder: Path, name: str, namespace: str, spec: dict[str, Any]) -> Path:
    """A Helm chart of the same objects; the migration Job (and the ServiceAccount it runs as)
    are pre-install/pre-upgrade hooks, so Helm runs the migration before touching the
    Deployment. The release name must equal `name` (object names are fixed)."""
    objects = plain_objects(name, namespace, spec, image="IMAGE")
    deployment = objects.pop("Deployment")
    job = objects.pop("Job")
    job["metadata"]["name"] = f"{name}-migrate"
    job["metadata"]["annotations"] = {
        "helm.sh/hook": "pre-install,pre-upgrade",
        "helm.sh/hook-weight": "0",
        # The finished Job stays for inspection until the next upgrade replaces it.
        "helm.sh/hook-delete-policy": "before-hook-creation",
    }
    account = objects.pop("ServiceAccount")
    account["metadata"]["annotations"] = {
        "helm.sh/hook": "pre-install,pre-upgrade",
        "helm.sh/hook-weight": "-5",
        "helm.sh/hook-delete-policy": "before-hook-creation",
    }
    chart = folder / f"chart-{name}"
    templates = chart / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: {name}\nversion: 0.1.0\ndescription: bench baseline\n"
    )
    (chart / "values.yaml").write_text('image: ""\n')
    rendered = {
        "deployment": deployment,
        "job": job,
        "serviceaccount": account,
        **{kind.lower(): obj for kind, obj in objects.items()},
    }
    for file, obj in rendered.items():
        # JSON is YAML; the image placeholder is the only template expression.
        text = json.dumps(obj, indent=1).replace('"IMAGE"', json.dumps(IMAGE_PLACEHOLDER))
        (templates / f"{file}.yaml").write_text(text + "\n")
    return chart
