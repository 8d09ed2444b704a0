"""CustomResourceDefinitions generated from the pydantic models (the one source of truth).

`model_json_schema()` output is turned into a structural OpenAPI v3 schema: `$ref`s are inlined, titles
dropped, `anyOf [X, null]` becomes an optional X, and the `x-kubernetes-*` markers that the models carry in
`json_schema_extra` are kept beside the fields they belong to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import BaseModel

from .common import CATEGORY, GROUP, VERSION
from .kinds import KINDS, KindInfo

# Keys copied as they are, in this order (the rest of a schema is rebuilt below).
_SCALAR_KEYS = (
    "type",
    "format",
    "enum",
    "default",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
)
_KUBERNETES_KEYS = (
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
)
# Keys of pydantic's output that carry nothing a structural schema needs.
_DROPPED_KEYS = {"title", "additionalProperties", "$defs", "$ref", "anyOf", "const", "properties", "items"}
_KNOWN_KEYS = {"description", "required", *_SCALAR_KEYS, *_KUBERNETES_KEYS, *_DROPPED_KEYS}


class SchemaError(ValueError):
    """The models produce something a structural schema cannot express."""


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Inline a `$ref` and unwrap `anyOf [X, null]`, merging the referring node's own keys over the target."""
    merged: dict[str, Any] = dict(node)
    if "anyOf" in merged:
        members = [member for member in merged.pop("anyOf") if member != {"type": "null"}]
        if len(members) != 1:
            raise SchemaError(f"anyOf with several non-null members is not structural: {node}")
        if merged.get("default", ...) is None:
            del merged["default"]
        merged = _merge(_resolve(members[0], defs), merged)
    if "$ref" in merged:
        ref = merged.pop("$ref")
        name = ref.removeprefix("#/$defs/")
        if name not in defs:
            raise SchemaError(f"unknown $ref {ref}")
        merged = _merge(_resolve(defs[name], defs), merged)
    if "const" in merged:
        merged.setdefault("enum", [merged.pop("const")])
    return merged


def _merge(target: Mapping[str, Any], referrer: Mapping[str, Any]) -> dict[str, Any]:
    """The referrer's keys win, except that CEL rules of both apply."""
    result = dict(target)
    for key, value in referrer.items():
        if key == "x-kubernetes-validations" and key in result:
            result[key] = [*result[key], *value]
        else:
            result[key] = value
    return result


def structural_schema(node: Mapping[str, Any], defs: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """Convert one pydantic JSON schema node (and its children) into a structural schema node."""
    resolved = _resolve(node, defs)
    unknown = set(resolved) - _KNOWN_KEYS
    if unknown:
        raise SchemaError(f"{path or '<root>'}: unsupported schema keys {sorted(unknown)}")
    out: dict[str, Any] = {}
    if "description" in resolved:
        out["description"] = " ".join(str(resolved["description"]).split())
    for key in _SCALAR_KEYS:
        if key in resolved:
            out[key] = resolved[key]
    if "type" not in out and not resolved.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"{path or '<root>'}: no type")
    if "items" in resolved:
        out["items"] = structural_schema(resolved["items"], defs, f"{path}[]")
    if "properties" in resolved:
        properties: dict[str, Any] = {}
        for name, child in resolved["properties"].items():
            child_path = f"{path}.{name}" if path else name
            converted = structural_schema(child, defs, child_path)
            if not converted.get("description"):
                raise SchemaError(f"{child_path}: every field needs a description")
            properties[name] = converted
        out["properties"] = properties
        if resolved.get("required"):
            out["required"] = list(resolved["required"])
    elif isinstance(resolved.get("additionalProperties"), Mapping):
        out["additionalProperties"] = structural_schema(resolved["additionalProperties"], defs, f"{path}.*")
    for key in _KUBERNETES_KEYS:
        if key in resolved:
            out[key] = resolved[key]
    if "x-kubernetes-validations" in out:
        out["x-kubernetes-validations"] = [_ordered_rule(rule) for rule in out["x-kubernetes-validations"]]
    return out


def _ordered_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """rule, then message, then the rest: the order people read them in."""
    ordered = {key: rule[key] for key in ("rule", "message") if key in rule}
    ordered.update({key: value for key, value in rule.items() if key not in ordered})
    return ordered


def model_schema(model: type[BaseModel], path: str) -> dict[str, Any]:
    """The structural schema of a model, with its `$defs` inlined."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural_schema(raw, raw.get("$defs", {}), path)


def object_schema(info: KindInfo) -> dict[str, Any]:
    """The openAPIV3Schema of a kind: apiVersion, kind, metadata, spec and status."""
    status = model_schema(info.status_model, "status")
    # Kopf keeps its own progress under status (status.kopf); keep what the schema does not declare.
    status["x-kubernetes-preserve-unknown-fields"] = True
    # Until the operator's first status write, the API server reads status.observedGeneration as 0, behind
    # metadata.generation, so kstatus (Flux, kpt) says InProgress rather than Current for a new object.
    status["default"] = {}
    status["properties"]["observedGeneration"]["default"] = 0
    return {
        "description": " ".join((info.model.__doc__ or info.kind).split()),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "Versioned schema of this representation of an object.",
                "type": "string",
            },
            "kind": {"description": "Kind of the object.", "type": "string"},
            "metadata": {"type": "object"},
            "spec": model_schema(info.spec_model, "spec"),
            "status": status,
        },
        "required": ["spec"],
    }


# Fields clients can filter on with field selectors (e.g. Instances by spec.imageRef.name).
_SELECTABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "Image": (".spec.region",),
    "ImageShare": (".spec.imageRef.name",),
    "ImageCopy": (".spec.sourceRef.name",),
    "Instance": (".spec.region", ".spec.imageRef.name"),
    "ImageSchedule": (".spec.region",),
    "InstanceSet": (".spec.region",),
}
# The scale subresource (kubectl scale, autoscalers) of kinds that have replicas.
_SCALE: dict[str, dict[str, str]] = {
    "InstanceSet": {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    },
}


def custom_resource_definition(info: KindInfo) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": [dict(column) for column in info.printer_columns],
        "selectableFields": [{"jsonPath": path} for path in _SELECTABLE_FIELDS.get(info.kind, ())],
        "schema": {"openAPIV3Schema": object_schema(info)},
    }
    if not version["selectableFields"]:
        del version["selectableFields"]
    if info.kind in _SCALE:
        version["subresources"]["scale"] = dict(_SCALE[info.kind])
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [version],
        },
    }


def custom_resource_definitions(kinds: Iterable[KindInfo] = KINDS) -> list[dict[str, Any]]:
    return [custom_resource_definition(info) for info in kinds]


def crd_file_name(info: KindInfo) -> str:
    return f"{GROUP}_{info.plural}.yaml"


def to_yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True, width=100)


def crd_files(kinds: Iterable[KindInfo] = KINDS) -> dict[str, str]:
    """File name to YAML text, one file per kind."""
    return {crd_file_name(info): to_yaml(custom_resource_definition(info)) for info in kinds}


def crds_yaml(kinds: Iterable[KindInfo] = KINDS) -> str:
    """All CRDs as one multi-document YAML stream."""
    return "---\n" + "---\n".join(to_yaml(document) for document in custom_resource_definitions(kinds))
