"""Request validation against the official SDK's request models (member names and types)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from tencentcloud.cvm.v20170312 import models as sdk_models

from .errors import ApiError

_TYPE_RE = re.compile(r":type (\w+): (.+)")
_CLASS_RE = re.compile(r":class:`[\w.]*\.(\w+)`")

# Members the API marks as required (the SDK models do not say; the CLI metadata does).
REQUIRED: dict[str, tuple[str, ...]] = {
    "CreateImage": ("ImageName",),
    "ImportImage": ("Architecture", "OsType", "OsVersion", "ImageUrl", "ImageName"),
    "SyncImages": ("ImageIds", "DestinationRegions"),
    "ModifyImageSharePermission": ("ImageId", "AccountIds", "Permission"),
    "DescribeImageSharePermission": ("ImageId",),
    "DeleteImages": ("ImageIds",),
    "ModifyImageAttribute": ("ImageId",),
    "DescribeImageFromFamily": ("ImageFamily",),
    "RunInstances": ("Placement", "ImageId"),
    "StartInstances": ("InstanceIds",),
    "StopInstances": ("InstanceIds",),
    "RebootInstances": ("InstanceIds",),
    "TerminateInstances": ("InstanceIds",),
    "ResetInstance": ("InstanceId",),
    "Placement": ("Zone",),
    "Filter": ("Name", "Values"),
    "Tag": ("Key", "Value"),
    "TagSpecification": ("ResourceType", "Tags"),
    "ImportImageDataDisk": ("ImageUrl",),
    "InstanceChargePrepaid": ("Period",),
}


@dataclass(frozen=True)
class TypeSpec:
    """``kind`` is str, int, bool, float or model; ``is_list`` for ``list of X``."""

    kind: str
    is_list: bool
    model: str = ""


def _parse_type(text: str) -> TypeSpec:
    text = text.strip()
    is_list = text.startswith("list of ")
    if is_list:
        text = text[len("list of ") :].strip()
    class_match = _CLASS_RE.search(text)
    if class_match:
        return TypeSpec("model", is_list, class_match.group(1))
    if text in ("str", "int", "bool", "float"):
        return TypeSpec(text, is_list)
    if hasattr(sdk_models, text):
        return TypeSpec("model", is_list, text)
    return TypeSpec("any", is_list)


@functools.cache
def model_members(model_name: str) -> dict[str, TypeSpec]:
    """Members of an SDK model class, read from its documented ``:type`` lines."""
    cls = getattr(sdk_models, model_name, None)
    if cls is None:
        raise KeyError(model_name)
    doc = cls.__init__.__doc__ or ""
    return {name: _parse_type(text) for name, text in _TYPE_RE.findall(doc)}


def _type_name(spec: TypeSpec) -> str:
    base = (
        spec.model
        if spec.kind == "model"
        else {"str": "String", "int": "Integer", "bool": "Boolean", "float": "Float"}.get(spec.kind, "Any")
    )
    return f"Array of {base}" if spec.is_list else base


def _check_scalar(value: Any, spec: TypeSpec, path: str) -> None:
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "any": True,
    }.get(spec.kind, False)
    if spec.kind == "model":
        if not isinstance(value, dict):
            raise ApiError("InvalidParameter", f"The parameter `{path}` must be of type {spec.model}.")
        validate_model(spec.model, value, path + ".")
        return
    if not ok:
        raise ApiError("InvalidParameter", f"The parameter `{path}` must be of type {_type_name(spec)}.")


def validate_model(model_name: str, params: dict[str, Any], prefix: str = "") -> None:
    members = model_members(model_name)
    for key, value in params.items():
        spec = members.get(key)
        if spec is None:
            raise ApiError("UnknownParameter", f"The parameter `{prefix}{key}` is not recognized.")
        if value is None:
            continue
        path = f"{prefix}{key}"
        if spec.is_list:
            if not isinstance(value, list):
                raise ApiError("InvalidParameter", f"The parameter `{path}` must be of type {_type_name(spec)}.")
            for index, item in enumerate(value):
                _check_scalar(item, TypeSpec(spec.kind, False, spec.model), f"{path}.{index}")
        else:
            _check_scalar(value, spec, path)
    for name in REQUIRED.get(model_name, ()):
        if params.get(name) in (None, []):
            raise ApiError("MissingParameter", f"The request is missing a required parameter `{prefix}{name}`.")


def validate_request(action: str, params: dict[str, Any]) -> None:
    """Check ``params`` against ``<action>Request``: unknown, missing and mistyped members."""
    validate_model(f"{action}Request", params)
    for name in REQUIRED.get(action, ()):
        if params.get(name) in (None, []):
            raise ApiError("MissingParameter", f"The request is missing a required parameter `{name}`.")
