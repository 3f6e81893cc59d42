"""Offline JSON schemas for kubeconform, made from OpenAPI documents we already have.

kubeconform normally downloads its schemas from GitHub; the tests must not use the network, so
this module writes the same kind of files locally (like openapi2jsonschema, in strict mode):

- Kubernetes built-in kinds from the ``swagger.json`` (OpenAPI v2) in the ``k8s.io/kubernetes``
  Go module source;
- custom resources from the ``openAPIV3Schema`` of CustomResourceDefinitions (ours, Kopf's).

One self-contained file per kind, named ``<kind>-<group's first label>-<version>.json`` (just
``<kind>-<version>.json`` for the core group), which is kubeconform's
``{{ .ResourceKind }}{{ .KindSuffix }}.json``. References are kept as ``#/definitions/...``
inside each file (only the reachable ones), so recursive types such as ``JSONSchemaProps`` work.
Strict: every object schema with ``properties`` gets ``additionalProperties: false`` unless it
says otherwise, so a misspelt field fails validation.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

JSONSCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
KUBECONFORM_TEMPLATE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"

# Types whose OpenAPI v2 description is narrower than what the API server accepts.
INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}
SPECIAL_DEFINITIONS = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": INT_OR_STRING,
    "io.k8s.apimachinery.pkg.api.resource.Quantity": QUANTITY,
}
REF_PREFIX = "#/definitions/"


def schema_file_name(api_version: str, kind: str) -> str:
    """The file name kubeconform looks for (its KindSuffix: first label of the group)."""
    group, _, version = api_version.rpartition("/")
    suffix = f"-{group.split('.')[0].lower()}-{version.lower()}" if group else f"-{version.lower()}"
    return f"{kind.lower()}{suffix}.json"


def _strict_v2(node: Any) -> Any:
    """Copy an OpenAPI v2 schema node, making objects strict and int-or-string a oneOf."""
    if isinstance(node, list):
        return [_strict_v2(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string":
        return copy.deepcopy(INT_OR_STRING)
    out = {key: _strict_v2(value) for key, value in node.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref[len(REF_PREFIX) :]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _reachable(definitions: dict[str, Any], root: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = definitions[name]
        todo.extend(ref for ref in _refs(definitions[name]) if ref not in seen)
    return seen


def kubernetes_schemas(swagger: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, JSON schema) for every kind in a Kubernetes swagger.json."""
    definitions: dict[str, Any] = {
        name: copy.deepcopy(SPECIAL_DEFINITIONS[name])
        if name in SPECIAL_DEFINITIONS
        else _strict_v2(schema)
        for name, schema in swagger["definitions"].items()
    }
    for name, schema in swagger["definitions"].items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            group, version, kind = gvk["group"], gvk["version"], gvk["kind"]
            api_version = f"{group}/{version}" if group else version
            reachable = _reachable(definitions, name)
            document = copy.deepcopy(reachable[name])
            if not any(ref == name for ref in _refs(reachable)):
                del reachable[name]  # kept only when something refers back to the root
            properties = document.setdefault("properties", {})
            # A kind file validates exactly that kind: pin apiVersion and kind.
            if "kind" in properties:
                properties["kind"] = {**properties["kind"], "enum": [kind]}
            if "apiVersion" in properties:
                properties["apiVersion"] = {**properties["apiVersion"], "enum": [api_version]}
            document["$schema"] = JSONSCHEMA_DRAFT
            if reachable:
                document["definitions"] = reachable
            yield schema_file_name(api_version, kind), document


def _strict_v3(node: Any) -> Any:
    """Copy a CRD structural schema node into plain JSON schema (strict)."""
    if isinstance(node, list):
        return [_strict_v3(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in {"properties", "patternProperties", "definitions"}:
            out[key] = {name: _strict_v3(sub) for name, sub in value.items()}
        elif key.startswith("x-kubernetes-") or key == "nullable":
            continue
        else:
            out[key] = _strict_v3(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.update(copy.deepcopy(INT_OR_STRING))
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def crd_schemas(crd: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, JSON schema) for every served version of a CustomResourceDefinition."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        api_version = f"{group}/{version['name']}"
        document = _strict_v3(version["schema"]["openAPIV3Schema"])
        properties = document.setdefault("properties", {})
        properties["apiVersion"] = {"type": "string", "enum": [api_version]}
        properties["kind"] = {"type": "string", "enum": [kind]}
        # The API server checks metadata itself; the CRD schema may only say "object".
        properties["metadata"] = {"type": "object"}
        document["required"] = sorted({*document.get("required", []), "apiVersion", "kind"})
        document["$schema"] = JSONSCHEMA_DRAFT
        yield schema_file_name(api_version, kind), document


def crds_in(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                yield doc


def write_schemas(
    target: Path,
    *,
    swagger: Path | None = None,
    crd_files: Iterable[Path] = (),
    extra: Iterable[Path] = (),
) -> list[str]:
    """Write every schema into ``target``; extra files (hand-written schemas) are copied as is.

    Returns the file names written, sorted.
    """
    target.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    documents: list[tuple[str, dict[str, Any]]] = []
    if swagger is not None:
        documents.extend(kubernetes_schemas(json.loads(swagger.read_text())))
    for crd in crds_in(crd_files):
        documents.extend(crd_schemas(crd))
    for path in extra:
        documents.append((path.name, json.loads(path.read_text())))
    for name, document in documents:
        (target / name).write_text(json.dumps(document, indent=1, sort_keys=True))
        written.append(name)
    return sorted(written)
