"""Request validation against the official SDK's request models (member names and types).

One :class:`RequestValidator` per API (CVM, Tag): each reads its own SDK models module.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tencentcloud.cvm.v20170312 import models as sdk_models
from tencentcloud.sts.v20180813 import models as sts_models
from tencentcloud.tag.v20180813 import models as tag_models
from tencentcloud.vpc.v20170312 import models as vpc_models

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
    "VirtualPrivateCloud": ("VpcId", "SubnetId"),
    "DataDisk": ("DiskSize",),
    "ModifyInstancesAttribute": ("InstanceIds",),
}

# The same for the Tag API (2018-08-13); its Tag model names its members TagKey/TagValue.
TAG_REQUIRED: dict[str, tuple[str, ...]] = {
    "ModifyResourceTags": ("Resource",),
    "TagResources": ("ResourceList", "Tags"),
    "UnTagResources": ("ResourceList", "TagKeys"),
    "Tag": ("TagKey", "TagValue"),
    "TagKeyObject": ("TagKey",),
    "TagFilter": ("TagKey",),
}

STS_REQUIRED: dict[str, tuple[str, ...]] = {
    "AssumeRole": ("RoleArn", "RoleSessionName"),
    "AssumeRoleWithWebIdentity": ("ProviderId", "WebIdentityToken", "RoleArn", "RoleSessionName"),
}


@dataclass(frozen=True)
class TypeSpec:
    """``kind`` is str, int, bool, float or model; ``is_list`` for ``list of X``."""

    kind: str
    is_list: bool
    model: str = ""


def _type_name(spec: TypeSpec) -> str:
    base = (
        spec.model
        if spec.kind == "model"
        else {"str": "String", "int": "Integer", "bool": "Boolean", "float": "Float"}.get(spec.kind, "Any")
    )
    return f"Array of {base}" if spec.is_list else base


class RequestValidator:
    """Checks request bodies against ``<Action>Request`` models of one SDK models module."""

    def __init__(self, models: ModuleType, required: Mapping[str, tuple[str, ...]]) -> None:
        self.models = models
        self.required = required
        self.model_members = functools.cache(self._model_members)

    def _parse_type(self, text: str) -> TypeSpec:
        text = text.strip()
        is_list = text.startswith("list of ")
        if is_list:
            text = text[len("list of ") :].strip()
        class_match = _CLASS_RE.search(text)
        if class_match:
            return TypeSpec("model", is_list, class_match.group(1))
        if text in ("str", "int", "bool", "float"):
            return TypeSpec(text, is_list)
        if hasattr(self.models, text):
            return TypeSpec("model", is_list, text)
        return TypeSpec("any", is_list)

    def _model_members(self, model_name: str) -> dict[str, TypeSpec]:
        """Members of an SDK model class, read from its documented ``:type`` lines."""
        cls = getattr(self.models, model_name, None)
        if cls is None:
            raise KeyError(model_name)
        doc = cls.__init__.__doc__ or ""
        return {name: self._parse_type(text) for name, text in _TYPE_RE.findall(doc)}

    def _check_scalar(self, value: Any, spec: TypeSpec, path: str) -> None:
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
            self.validate_model(spec.model, value, path + ".")
            return
        if not ok:
            raise ApiError("InvalidParameter", f"The parameter `{path}` must be of type {_type_name(spec)}.")

    def validate_model(self, model_name: str, params: dict[str, Any], prefix: str = "") -> None:
        members = self.model_members(model_name)
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
                    self._check_scalar(item, TypeSpec(spec.kind, False, spec.model), f"{path}.{index}")
            else:
                self._check_scalar(value, spec, path)
        for name in self.required.get(model_name, ()):
            if params.get(name) in (None, []):
                raise ApiError("MissingParameter", f"The request is missing a required parameter `{prefix}{name}`.")

    def validate_request(self, action: str, params: dict[str, Any]) -> None:
        """Check ``params`` against ``<action>Request``: unknown, missing and mistyped members."""
        self.validate_model(f"{action}Request", params)
        for name in self.required.get(action, ()):
            if params.get(name) in (None, []):
                raise ApiError("MissingParameter", f"The request is missing a required parameter `{name}`.")


CVM_VALIDATOR = RequestValidator(sdk_models, REQUIRED)
TAG_VALIDATOR = RequestValidator(tag_models, TAG_REQUIRED)
STS_VALIDATOR = RequestValidator(sts_models, STS_REQUIRED)
VPC_VALIDATOR = RequestValidator(vpc_models, {"Filter": ("Name", "Values")})


def model_members(model_name: str) -> dict[str, TypeSpec]:
    """Members of a CVM SDK model class."""
    return CVM_VALIDATOR.model_members(model_name)


def validate_model(model_name: str, params: dict[str, Any], prefix: str = "") -> None:
    CVM_VALIDATOR.validate_model(model_name, params, prefix)


def validate_request(action: str, params: dict[str, Any]) -> None:
    """Check a CVM request body against ``<action>Request``."""
    CVM_VALIDATOR.validate_request(action, params)
