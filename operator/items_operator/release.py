"""The release model: everything that shapes the service's pods, with a revision and a hash.

A release is the rendered pod template (image, env, resources, probes, service account, the
database Secret reference) plus the database target the Secret holds. Scaling is not a release:
replicas and the rollout strategy live on the Deployment, outside the template.

- `hash`: of the template; the Deployment's template, its pods and the release's
  ControllerRevision carry it as the LABEL_RELEASE label.
- `migration_key`: of the image and the database target (Secret name, key and a digest of the
  URL it holds). A release whose key differs from the serving release's needs its own migration
  Job first; an env-only release shares the key and rolls out without one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from items_operator.constants import ANNOTATION_DATABASE_TARGET, LABEL_RELEASE
from items_operator.model import ItemService
from items_operator.specs.deployment import build_pod_template

HASH_LENGTH = 10


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]


@dataclass(frozen=True)
class Release:
    hash: str
    image: str
    migration_key: str
    template: dict[str, Any]  # carries the release label
    revision: int | None = None  # None until its ControllerRevision exists

    def numbered(self, revision: int) -> Release:
        return Release(self.hash, self.image, self.migration_key, self.template, revision)

    @property
    def label(self) -> str:
        return f"revision {self.revision} ({self.image})" if self.revision else self.image


def migration_key(image: str, secret_name: str, secret_key: str, url_digest: str | None) -> str:
    return _digest({"image": image, "secret": [secret_name, secret_key], "url": url_digest})


def with_release_label(template: dict[str, Any], release_hash: str) -> dict[str, Any]:
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), LABEL_RELEASE: release_hash}
    return {**template, "metadata": meta}


# Spec fields that never reach the pod template: changing them makes no new release, so they
# must not make an operator-rendered one look like a person's change either (decide.py).
NOT_TEMPLATE_FIELDS = frozenset(
    {"replicas", "paused", "rollout", "migration", "revisionHistoryLimit"}
)


def inputs_digest(cr: ItemService, url_digest: str | None) -> str:
    """What a person controls of a release: the spec's template fields and the database
    target. Equal digests with different release hashes: the operator renders differently."""
    fields = cr.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    kept = {k: v for k, v in fields.items() if k not in NOT_TEMPLATE_FIELDS}
    return _digest({"spec": kept, "url": url_digest})


def spec_release(cr: ItemService, url_digest: str | None) -> Release:
    """The release the spec asks for (its revision number is looked up by the caller)."""
    template = build_pod_template(cr.owner, cr.spec)
    # The URL the Secret holds is part of the release: a new database target rolls new pods
    # (after its migration), although the env reference to the Secret is unchanged.
    template["metadata"]["annotations"] = {ANNOTATION_DATABASE_TARGET: url_digest or "unknown"}
    release_hash = _digest(template)
    ref = cr.spec.database.secret_ref
    return Release(
        hash=release_hash,
        image=cr.spec.image,
        migration_key=migration_key(cr.spec.image, ref.name, ref.key, url_digest),
        template=with_release_label(template, release_hash),
    )
