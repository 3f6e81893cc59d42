"""crds/itemservice.yaml: shape, defaults mirroring the pydantic model, status schema coverage,
and the CEL image rules evaluated through a Python mirror (the real API server check comes with
the cluster tests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from items_operator.constants import GROUP, KIND, PLURAL, VERSION
from items_operator.model import ItemServiceSpec
from items_operator.observe import JobState
from items_operator.policy import Phase
from items_operator.status import ConditionType, Outcome

from .test_analysis import _analysed_world, _canary, sample
from .world import V2, V3, World, available_world

CRD_PATH = Path(__file__).resolve().parents[3] / "crds" / "itemservice.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return loaded


def _version(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    assert isinstance(version, dict)
    return version


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = _version(crd)["schema"]["openAPIV3Schema"]
    return schema


def test_names_scope_and_subresources(crd: dict[str, Any]) -> None:
    assert crd["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    assert crd["spec"]["group"] == GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == KIND
    assert crd["spec"]["names"]["plural"] == PLURAL
    assert "isvc" in crd["spec"]["names"]["shortNames"]
    version = _version(crd)
    assert version["name"] == VERSION
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_printer_columns(crd: dict[str, Any]) -> None:
    columns = {c["name"]: c["jsonPath"] for c in _version(crd)["additionalPrinterColumns"]}
    assert columns["Target"] == ".spec.image"
    assert columns["Serving"] == ".status.currentImage"
    assert columns["Reason"] == ".status.reason"
    assert columns["Phase"] == ".status.phase"
    assert columns["Ready"] == ".status.readyReplicas"
    assert columns["Age"] == ".metadata.creationTimestamp"


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, child in (schema.get("properties") or {}).items():
        found += _walk(child, f"{path}.{name}")
    if "items" in schema:
        found += _walk(schema["items"], f"{path}[]")
    return found


def test_every_field_is_described_for_kubectl_explain(crd: dict[str, Any]) -> None:
    spec = _schema(crd)["properties"]["spec"]
    undocumented = [
        path
        for path, node in _walk(spec, "spec")
        if path.count(".") <= 2 and "[]" not in path and "description" not in node
    ]
    assert undocumented == []


def _apply_defaults(schema: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """Structural defaulting as the API server does it: fill missing defaults, then recurse."""
    out = dict(value)
    for name, child in (schema.get("properties") or {}).items():
        if name not in out and "default" in child:
            out[name] = child["default"]
        if isinstance(out.get(name), dict) and child.get("type") == "object":
            out[name] = _apply_defaults(child, out[name])
    return out


def test_crd_defaults_mirror_the_model_defaults(crd: dict[str, Any]) -> None:
    minimal = {"image": "items-service:1.0.0", "database": {"secretRef": {"name": "db"}}}
    defaulted = _apply_defaults(_schema(crd)["properties"]["spec"], minimal)

    from_crd = ItemServiceSpec.model_validate(defaulted).model_dump(by_alias=True)
    from_model = ItemServiceSpec.model_validate(minimal).model_dump(by_alias=True)
    assert from_crd == from_model
    # And the CRD really sets them (not just the model): the defaulted object is complete.
    assert defaulted["replicas"] == 2
    assert defaulted["database"]["secretRef"]["key"] == "url"
    # Unset on purpose: the window is then learned from the history (window.py).
    assert "readinessTimeoutSeconds" not in defaulted["rollout"]
    assert "startup" not in defaulted["probes"]  # no startup probe unless asked for
    assert defaulted["migration"]["backoffLimit"] == 1
    assert defaulted["probes"]["readiness"]["periodSeconds"] == 5
    assert defaulted["workers"] == 1
    assert "resources" not in defaulted  # derived from workers by the operator


def _assert_in_schema(value: Any, schema: dict[str, Any], path: str) -> None:
    if "enum" in schema:
        assert value in schema["enum"], f"{path}={value!r} not in {schema['enum']}"
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, child in value.items():
            assert key in properties, f"{path}.{key} would be pruned by the API server"
            _assert_in_schema(child, properties[key], f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _assert_in_schema(item, schema["items"], f"{path}[{i}]")


def _statuses() -> list[dict[str, Any]]:
    """Statuses of a release's whole life: migrate, roll out, roll back, pause, fail."""
    seen: list[dict[str, Any]] = []
    world = available_world()
    seen.append(world.status)
    world.change(image=V2)
    for step in ("migrate", "deploy", "crash", "hold"):
        if step == "deploy":
            world.finish_jobs()
        if step == "crash":
            world.controllers(ready=False, waiting=("CrashLoopBackOff",))
        world.step()
        seen.append(world.status)
    world.change(image=V3, paused=True)
    seen.append(world.step().status)
    world.change(paused=False)
    world.step()
    world.finish_jobs(JobState.FAILED)
    seen.append(world.step().status)
    first = World()
    seen.append(first.step().status)
    canary = _analysed_world(durationSeconds=30)  # a canary analysis runs, then ends
    _canary(canary, sample(0, 0), sample(0, 0))
    seen.append(canary.step().status)
    canary.tick(31)
    _canary(canary, sample(90, 0), sample(200, 1))
    seen.append(canary.step().status)
    return [
        {**s, "refusedWrites": [{"object": "Service/shop", "reason": "Forbidden", "message": "x"}]}
        for s in seen
    ]


@pytest.mark.parametrize("status", _statuses(), ids=lambda s: f"{s['phase']}-{s['reason']}")
def test_status_written_by_decide_fits_the_status_schema(
    crd: dict[str, Any], status: dict[str, Any]
) -> None:
    _assert_in_schema(status, _schema(crd)["properties"]["status"], "status")


def test_status_enums_match_the_code(crd: dict[str, Any]) -> None:
    status = _schema(crd)["properties"]["status"]["properties"]
    assert set(status["phase"]["enum"]) == {str(p) for p in Phase}
    assert set(status["history"]["items"]["properties"]["outcome"]["enum"]) == {
        str(o) for o in Outcome
    }
    assert {str(c) for c in ConditionType} <= set(
        re.findall(r"[A-Z][A-Za-z]+", status["conditions"]["description"])
    )
    assert status["conditions"]["x-kubernetes-list-type"] == "map"


# --- CEL mirror ---------------------------------------------------------------------------


def _cel_to_python(rule: str) -> str:
    """Translate the small CEL subset our rules use into a Python expression over `s`."""
    python = rule.replace("self.metadata.name", "s").replace("self", "s")
    python = re.sub(r"s\.matches\('([^']*)'\)", r"_matches(r'\1', s)", python)
    python = re.sub(r"s\.contains\('([^']*)'\)", r"('\1' in s)", python)
    python = re.sub(r"s\.endsWith\('([^']*)'\)", r"s.endswith('\1')", python)
    python = python.replace("s.size()", "len(s)")
    return (
        python.replace("||", " or ")
        .replace("&&", " and ")
        .replace("!", " not ")
        .replace(" not =", "!=")
    )


def _matches(pattern: str, value: str) -> bool:
    # CEL's matches() is RE2 search semantics; our patterns are anchored with ^...$.
    return re.search(pattern, value) is not None


def _violations(rules: list[dict[str, Any]], value: str) -> list[str]:
    failed = []
    for rule in rules:
        expression = _cel_to_python(rule["rule"])
        # eval of our own CRD's rule text, translated above; no external input reaches it.
        if not eval(expression, {"_matches": _matches, "len": len}, {"s": value}):  # noqa: S307
            failed.append(str(rule["message"]))
    return failed


@pytest.mark.parametrize(
    ("image", "accepted"),
    [
        ("items-service:1.4.2", True),
        ("registry.example/team/items-service:2026.11.29-abc", True),
        ("localhost:5000/items-service:v1", True),
        ("items-service@sha256:" + "a" * 64, True),
        ("items-service:latest@sha256:" + "b" * 64, True),
        ("items-service:LATEST", True),  # tags are case-sensitive; only 'latest' is the moving one
        ("items-service", False),
        ("localhost:5000/items-service", False),
        ("items-service:latest", False),
        ("registry.example/items-service:latest", False),
        ("items-service@sha256:short", False),
        ("items-service:", False),
        ("Items-Service:1.0", False),
    ],
)
def test_image_rules(crd: dict[str, Any], image: str, accepted: bool) -> None:
    rules = _schema(crd)["properties"]["spec"]["properties"]["image"]["x-kubernetes-validations"]
    violations = _violations(rules, image)
    assert (not violations) is accepted, violations


def test_image_rule_messages_say_what_to_fix(crd: dict[str, Any]) -> None:
    rules = _schema(crd)["properties"]["spec"]["properties"]["image"]["x-kubernetes-validations"]
    assert "tag or a digest" in _violations(rules, "items-service")[0]
    (latest,) = _violations(rules, "items-service:latest")
    assert "'latest' is not allowed" in latest


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("shop", True),
        ("shop-2", True),
        ("a" * 40, True),
        ("a" * 41, False),
        ("2shop", False),
        ("shop-", False),
    ],
)
def test_name_rule(crd: dict[str, Any], name: str, accepted: bool) -> None:
    rules = _schema(crd)["x-kubernetes-validations"]
    assert (not _violations(rules, name)) is accepted
