"""The watch-fed caches: the informers' entries keep reduced records only, and kube.observe
builds the same Observed from the stores as from the API server, with no request counted."""

from __future__ import annotations

import asyncio
import base64
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from items_operator import cache, kube, metrics
from items_operator.constants import (
    ANNOTATION_DESIRED_HASH,
    APP_NAME,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_NAME,
)
from items_operator.model import ItemService
from items_operator.observe import (
    Observed,
    SecretState,
    controlled_by,
    observe_deployment,
    observe_job,
    observe_pod,
    observe_revision,
    owns_job,
    secret_state,
    secret_value_digest,
)
from items_operator.reads import DictView
from items_operator.records import NamedRecord, SecretRecord

from . import cluster_objects as k
from .world import OWNER, V1, V2, spec

NS = OWNER.namespace
OTHER_UID = "someone-else"
URL = base64.b64encode(b"mysql://shop:pw@db/shop").decode()
_BY = {kind: by for kind, _, _, _, by in cache.OWNED_RESOURCES}
_EXCLUDED_SECRET_TYPES = {"helm.sh/release.v1", "kubernetes.io/service-account-token"}


def _item_service(replicas: int = 2) -> ItemService:
    return ItemService(OWNER, 1, spec(V1, replicas=replicas), {}, None, ())


def cached_view(objects: list[dict[str, Any]]) -> DictView:
    """What the informers' stores hold after listing `objects` through the cache's watches."""
    indexes: dict[str, dict[tuple[str, ...], list[Any]]] = defaultdict(lambda: defaultdict(list))
    for obj in objects:
        kind = obj["kind"]
        if kind == "Secret":
            if obj["type"] in _EXCLUDED_SECRET_TYPES:
                continue  # the field selector
            pass
        elif (obj["metadata"].get("labels") or {}).get(LABEL_NAME) != APP_NAME:
            continue  # the label selector
        entry = cache.entry(kind, obj)
        indexes[kind][entry.key].append(entry.record)
    return DictView(indexes)


def _reads() -> float:
    return sum(s.value for m in metrics.READS.collect() for s in m.samples if "_total" in s.name)


def _observe(
    objects: list[dict[str, Any]], *, cached: bool, replicas: int = 2
) -> tuple[Observed, float]:
    client: Any = k.FakeClient(objects)
    before = _reads()
    view = cached_view(objects) if cached else None
    observed = asyncio.run(kube.observe(client, _item_service(replicas), cache=view))
    return observed, _reads() - before


# -- store entries ---------------------------------------------------------------------------------


def test_a_deployment_is_reduced_to_what_decide_reads() -> None:
    meta = k.meta("shop", NS, 7, controller=OWNER.uid, labels=k.labels(OWNER, "server"))
    obj = k.deployment(meta, V2, "r2", ready=1)
    entry = cache.entry("Deployment", obj)
    key, record = entry.key, entry.record
    assert key == (NS, "shop")
    assert isinstance(record, NamedRecord)
    assert record.version == "7"
    assert record.controlled_by(OWNER.uid)
    deployment = record.observed_deployment()
    assert deployment is not None
    assert (deployment.image, deployment.ready_replicas) == (V2, 1)
    assert deployment.template == obj["spec"]["template"]
    assert "managedFields" not in repr(record)


def test_a_secret_is_reduced_to_digests_never_values() -> None:
    obj = k.secret(k.meta("shop-db", NS, 3), {"url": URL, "empty": ""})
    entry = cache.entry("Secret", obj)
    key, record = entry.key, entry.record
    assert key == (NS, "shop-db")
    assert isinstance(record, SecretRecord)
    assert record.digests == {"url": secret_value_digest(obj, "url")}
    assert record.state("url") is SecretState.PRESENT
    assert record.state("empty") is SecretState.KEY_MISSING
    assert URL not in repr(record)


def test_pods_jobs_and_revisions_are_keyed_by_instance_and_component() -> None:
    server = k.pod(k.meta("shop-1", NS, 1, labels=k.labels(OWNER, "server")), V1, ready=True)
    migration = k.job(k.meta("shop-m", NS, 2, labels=k.labels(OWNER, "migration")), V2, None)
    assert cache.entry("Pod", server).key == (NS, "shop", "server")
    assert cache.entry("Job", migration).key == (NS, "shop", "migration")
    assert cache.entry("Job", migration).instance == "shop"  # whom its events wake


# -- the same Observed from either path -----------------------------------------------------------


def reference_observed(objects: list[dict[str, Any]]) -> Observed:
    """What kube.observe built before the records existed: the parsers on the raw objects."""

    def selected(kind: str, component: str) -> list[dict[str, Any]]:
        wanted = {LABEL_NAME: APP_NAME, LABEL_INSTANCE: OWNER.name, LABEL_COMPONENT: component}
        return [
            o
            for o in objects
            if o["kind"] == kind
            and o["metadata"]["namespace"] == NS
            and wanted.items() <= (o["metadata"].get("labels") or {}).items()
        ]

    def named(kind: str) -> dict[str, Any] | None:
        return next(
            (
                o
                for o in objects
                if o["kind"] == kind
                and o["metadata"]["namespace"] == NS
                and o["metadata"]["name"] == OWNER.name
            ),
            None,
        )

    secret = next((o for o in objects if o["kind"] == "Secret"), None)
    conflicts, hashes = [], {}
    for kind in ("ServiceAccount", "Service", "PodDisruptionBudget"):
        if (obj := named(kind)) is None:
            continue
        if not controlled_by(obj, OWNER.uid):
            conflicts.append(f"{kind}/{OWNER.name}")
            continue
        hashes[kind] = obj["metadata"]["annotations"].get(ANNOTATION_DESIRED_HASH)
    deployment = None
    if (dep := named("Deployment")) is not None:
        if controlled_by(dep, OWNER.uid):
            deployment = observe_deployment(dep)
        else:
            conflicts.append(f"Deployment/{OWNER.name}")
    revisions = [
        r
        for o in selected("ControllerRevision", "server")
        if controlled_by(o, OWNER.uid) and (r := observe_revision(o)) is not None
    ]
    jobs = [observe_job(o) for o in selected("Job", "migration") if owns_job(o, OWNER.uid)]
    job_pods = []
    if any(not j.finished or not j.adopted for j in jobs):
        job_pods = [observe_pod(o) for o in selected("Pod", "migration")]
    return Observed(
        secret=secret_state(secret, "url"),
        secret_digest=secret_value_digest(secret, "url"),
        deployment=deployment,
        revisions=tuple(revisions),
        jobs=tuple(jobs),
        pods=tuple(observe_pod(o) for o in selected("Pod", "server")),
        job_pods=tuple(job_pods),
        owned_hashes=hashes,
        conflicts=tuple(conflicts),
    )


_CONTROLLER = st.sampled_from([OWNER.uid, OTHER_UID, None])


@st.composite
def object_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    version = iter(range(1, 10_000))
    objects: list[dict[str, Any]] = []

    def m(name: str, component: str, *, ns: str = NS, **kw: Any) -> dict[str, Any]:
        labelled = draw(st.booleans()) if kw.pop("maybe_unlabelled", False) else True
        owner_labels = k.labels(OWNER, component, managed=draw(st.booleans()))
        return k.meta(name, ns, next(version), labels=owner_labels if labelled else {}, **kw)

    secret_data = draw(st.sampled_from([None, {"url": URL}, {"other": URL}, {"url": ""}]))
    if secret_data is not None:
        secret_type = draw(st.sampled_from(["Opaque", "helm.sh/release.v1"]))
        objects.append(k.secret(k.meta("shop-db", NS, next(version)), secret_data, secret_type))
    for kind in ("ServiceAccount", "Service", "PodDisruptionBudget"):
        if draw(st.booleans()):
            meta = m("shop", "server", controller=draw(_CONTROLLER), maybe_unlabelled=True)
            objects.append(k.supporting(kind, meta, draw(st.sampled_from([None, "h1", "h2"]))))
    if draw(st.booleans()):
        meta = m("shop", "server", controller=draw(_CONTROLLER), maybe_unlabelled=True)
        objects.append(
            k.deployment(meta, draw(st.sampled_from([V1, V2])), "r1", draw(st.integers(0, 2)))
        )
    for n in range(draw(st.integers(0, 3))):
        meta = m(f"shop-r{n}", "server", controller=draw(_CONTROLLER))
        release = draw(st.sampled_from([f"r{n}", None]))
        objects.append(k.revision(meta, n + 1, V1, release))
    for n in range(draw(st.integers(0, 3))):
        meta = m(f"shop-migration-{n}", "migration", controller=draw(_CONTROLLER))
        outcome = draw(st.sampled_from([None, "Complete", "Failed"]))
        objects.append(k.job(meta, V2, outcome))
    for n in range(draw(st.integers(0, 3))):
        component = draw(st.sampled_from(["server", "migration"]))
        ns = draw(st.sampled_from([NS, "elsewhere"]))
        meta = m(f"shop-{component}-{n}", component, ns=ns)
        objects.append(k.pod(meta, V1, ready=draw(st.booleans())))
    return objects


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(object_sets())
def test_cache_and_api_build_the_same_observed(objects: list[dict[str, Any]]) -> None:
    from_api, _ = _observe(objects, cached=False)
    from_cache, _ = _observe(objects, cached=True)
    assert from_api == reference_observed(objects)
    assert from_cache == from_api
    assert from_cache.versions == from_api.versions
    # compare=False fields too: the templates a rollback restores
    assert [r.template for r in from_cache.revisions] == [r.template for r in from_api.revisions]
    assert [r.template for r in from_api.revisions] == [
        r.template for r in reference_observed(objects).revisions
    ]
    if from_api.deployment is not None:
        assert from_cache.deployment is not None
        assert from_cache.deployment.template == from_api.deployment.template
        assert from_api.deployment.template == reference_observed(objects).deployment.template  # type: ignore[union-attr]


def _steady_objects() -> list[dict[str, Any]]:
    def m(name: str, component: str = "server") -> dict[str, Any]:
        return k.meta(name, NS, 1, controller=OWNER.uid, labels=k.labels(OWNER, component))

    return [
        k.secret(k.meta("shop-db", NS, 1), {"url": URL}),
        k.supporting("ServiceAccount", m("shop"), "h"),
        k.supporting("Service", m("shop"), "h"),
        k.supporting("PodDisruptionBudget", m("shop"), "h"),
        k.deployment(m("shop"), V1, "r1", ready=2),
        k.revision(m("shop-r1"), 1, V1, "r1"),
        k.job(m("shop-migration-1", "migration"), V1, "Complete"),
        k.pod(m("shop-a"), V1, ready=True),
    ]


def test_a_steady_pass_from_the_cache_makes_no_request() -> None:
    from_cache, cached_reads = _observe(_steady_objects(), cached=True)
    from_api, api_reads = _observe(_steady_objects(), cached=False)
    assert from_cache == from_api
    assert cached_reads == 0
    assert api_reads == 8  # the "8 API reads per pass"


def test_an_absence_in_the_cache_is_confirmed_by_the_api() -> None:
    """A foreign Service under our name carries none of our labels: the watches never see it,
    the GET does, and it is reported as a conflict instead of being taken over."""
    objects = [o for o in _steady_objects() if o["kind"] != "Service"]
    objects.append(k.supporting("Service", k.meta("shop", NS, 9, controller=OTHER_UID), None))
    from_cache, reads = _observe(objects, cached=True)
    assert from_cache.conflicts == ("Service/shop",)
    assert reads == 1


def test_an_item_service_without_a_pdb_confirms_no_absence() -> None:
    """One replica (or none, as the benchmark runs them) wants no PDB: its absence is the
    steady state and costs no request."""
    objects = [o for o in _steady_objects() if o["kind"] != "PodDisruptionBudget"]
    from_cache, reads = _observe(objects, cached=True, replicas=0)
    assert "PodDisruptionBudget" not in from_cache.owned_hashes
    assert reads == 0


def test_the_watches_select_server_side_and_leave_item_services_alone() -> None:
    found = {source.kind: source for source in cache.sources()}
    for kind, group, version, plural, _ in cache.OWNED_RESOURCES:
        source = found.pop(kind)
        assert source.selectors() == {"labelSelector": f"{LABEL_NAME}={APP_NAME}"}
        assert source.path("shop") == (
            f"/apis/{group}/{version}/namespaces/shop/{plural}"
            if group
            else f"/api/{version}/namespaces/shop/{plural}"
        )
    secrets = found.pop("Secret")
    assert secrets.selectors() == {"fieldSelector": cache.SECRET_FIELD_SELECTOR}
    assert secrets.path(None) == "/api/v1/secrets"
    assert found == {}  # ItemServices stay Kopf's
