"""Typed view of the ItemService custom resource; defaults mirror crds/itemservice.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from items_operator.constants import (
    ANNOTATION_ALLOW_CONTRACT,
    ANNOTATION_ROLLBACK_TO,
    API_VERSION,
    KIND,
)

Quantity = int | float | str
IntOrPercent = int | str


class CamelModel(BaseModel):
    """Fields are snake_case in Python and camelCase in the API, as Kubernetes spells them."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class SecretKeyRef(CamelModel):
    name: str
    key: str = "url"


class DatabaseSpec(CamelModel):
    secret_ref: SecretKeyRef
    as_file: bool = False


class MigrationSpec(CamelModel):
    active_deadline_seconds: int = 600
    backoff_limit: int = 1
    history_limit: int = 3


class AnalysisSpec(CamelModel):
    """The first new pod serves beside the old ones this long; its /metrics against theirs."""

    duration_seconds: int = 60
    # New 5xx ratio minus the old pods' ratio, over the same interval (0.05 = 5 points).
    max_error_rate_increase: float = 0.05
    # New p99 latency over the old pods' p99.
    max_latency_ratio: float = 2.0
    # Requests each group must have served before a comparison counts.
    min_requests: int = 30


class RolloutSpec(CamelModel):
    max_surge: IntOrPercent = 1
    max_unavailable: IntOrPercent = 0
    progress_deadline_seconds: int = 300
    # None: learned from the history of this ItemService's good releases (window.py).
    readiness_timeout_seconds: int | None = None
    # None: no canary step; a release is judged on readiness and pod states alone.
    analysis: AnalysisSpec | None = None


class ProbeSpec(CamelModel):
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 2
    failure_threshold: int = 3


def _readiness_defaults() -> ProbeSpec:
    return ProbeSpec(period_seconds=5)


class ProbesSpec(CamelModel):
    liveness: ProbeSpec = Field(default_factory=ProbeSpec)
    readiness: ProbeSpec = Field(default_factory=_readiness_defaults)
    # GET /healthz until it answers, for slow starters; liveness and readiness wait for it.
    startup: ProbeSpec | None = None


class ServiceSpec(CamelModel):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = 80


class ResourcesSpec(CamelModel):
    """Absent keys are derived from spec.workers (specs/pod.py: derived_resources)."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


class ItemServiceSpec(CamelModel):
    image: str
    database: DatabaseSpec
    replicas: int = 2
    # Gunicorn workers per pod; scale with replicas. Resources and ITEMS_WORKERS follow it.
    workers: int = 1
    paused: bool = False
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    env: list[dict[str, Any]] = Field(default_factory=list)
    image_pull_secrets: list[str] = Field(default_factory=list)
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    probes: ProbesSpec = Field(default_factory=ProbesSpec)
    migration: MigrationSpec = Field(default_factory=MigrationSpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    revision_history_limit: int = 10


@dataclass(frozen=True)
class Owner:
    """What the builders need to name objects and point their ownerReferences at the CR."""

    name: str
    namespace: str
    uid: str

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class ItemService:
    """One ItemService as read from the API: identity, generation, spec, and last status."""

    owner: Owner
    generation: int
    spec: ItemServiceSpec
    status: dict[str, Any]
    # Revision number a person asked to serve (annotation rollback-to), if any.
    rollback_to: int | None = None
    # Contract revisions a person allowed past the rollback floor (annotation allow-contract).
    allow_contract: tuple[str, ...] = ()

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ItemService:
        meta = body["metadata"]
        annotations = meta.get("annotations") or {}
        requested = str(annotations.get(ANNOTATION_ROLLBACK_TO, "")).strip()
        allowed = str(annotations.get(ANNOTATION_ALLOW_CONTRACT, ""))
        return cls(
            owner=Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"]),
            generation=int(meta.get("generation", 1)),
            spec=ItemServiceSpec.model_validate(body.get("spec") or {}),
            status=dict(body.get("status") or {}),
            rollback_to=int(requested) if requested.isascii() and requested.isdigit() else None,
            allow_contract=tuple(sorted({r.strip() for r in allowed.split(",") if r.strip()})),
        )
