"""The offline schema maker: names kubeconform looks for, strictness, CRD conversions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.delivery.jsonschemas import crd_schemas, kubernetes_schemas, schema_file_name

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


@pytest.mark.parametrize(
    ("api_version", "kind", "name"),
    [
        ("v1", "ConfigMap", "configmap-v1.json"),
        ("apps/v1", "Deployment", "deployment-apps-v1.json"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterrole-rbac-v1.json"),
        ("items.platform.dev/v1alpha1", "ItemService", "itemservice-items-v1alpha1.json"),
    ],
)
def test_file_names_follow_kubeconform_kind_suffix(api_version: str, kind: str, name: str) -> None:
    assert schema_file_name(api_version, kind) == name


def test_kubernetes_kinds_are_strict_self_contained_and_pinned() -> None:
    swagger: dict[str, Any] = {
        "definitions": {
            "io.k8s.api.core.v1.Thing": {
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "port": {"$ref": f"#/definitions/{INT_OR_STRING}"},
                    "child": {"$ref": "#/definitions/io.k8s.api.core.v1.Child"},
                },
                "x-kubernetes-group-version-kind": [
                    {"group": "", "version": "v1", "kind": "Thing"}
                ],
            },
            "io.k8s.api.core.v1.Child": {
                "type": "object",
                "properties": {"again": {"$ref": "#/definitions/io.k8s.api.core.v1.Child"}},
            },
            INT_OR_STRING: {
                "type": "string",
                "format": "int-or-string",
            },
            "io.k8s.api.core.v1.Unused": {"type": "object"},
        }
    }
    [(name, schema)] = list(kubernetes_schemas(swagger))
    assert name == "thing-v1.json"
    assert schema["additionalProperties"] is False
    assert schema["properties"]["kind"]["enum"] == ["Thing"]
    assert schema["properties"]["apiVersion"]["enum"] == ["v1"]
    definitions = schema["definitions"]
    assert set(definitions) == {"io.k8s.api.core.v1.Child", INT_OR_STRING}
    assert definitions["io.k8s.api.core.v1.Child"]["additionalProperties"] is False
    assert "oneOf" in definitions[INT_OR_STRING]


def test_crd_schema_keeps_open_what_the_crd_keeps_open() -> None:
    crd: dict[str, Any] = {
        "spec": {
            "group": "example.dev",
            "names": {"kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "size": {"x-kubernetes-int-or-string": True},
                                        "free": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                            "properties": {"a": {"type": "string"}},
                                        },
                                        "note": {"type": "string", "nullable": True},
                                    },
                                }
                            },
                        }
                    },
                },
                {"name": "v0", "served": False, "schema": {"openAPIV3Schema": {}}},
            ],
        }
    }
    [(name, schema)] = list(crd_schemas(crd))
    assert name == "widget-example-v1.json"
    spec = schema["properties"]["spec"]
    assert spec["additionalProperties"] is False
    assert "additionalProperties" not in spec["properties"]["free"]
    assert spec["properties"]["size"]["oneOf"] == [{"type": "string"}, {"type": "integer"}]
    assert spec["properties"]["note"]["type"] == ["string", "null"]
    assert schema["required"] == ["apiVersion", "kind"]
