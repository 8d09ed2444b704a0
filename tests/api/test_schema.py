"""CRD generation: the schema conversion, the committed crds/ files and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from cvm_operator.api import KINDS
from cvm_operator.api.common import SpecModel, cel, with_rules
from cvm_operator.api.crd import (
    SchemaError,
    crd_files,
    crds_yaml,
    custom_resource_definitions,
    model_schema,
)
from cvm_operator.cli import main

ROOT = Path(__file__).resolve().parents[2]


class _Child(SpecModel):
    """A child."""

    model_config = with_rules(cel("self.a != 'x'", "spec.child.a: must not be x"))

    a: str = Field(description="A.", pattern="^[a-z]$")


class _Parent(SpecModel):
    """A parent."""

    child: _Child | None = Field(
        default=None,
        description="The child.",
        json_schema_extra={"x-kubernetes-validations": [cel("self == oldSelf", "spec.child is immutable")]},
    )
    items: list[str] = Field(
        default_factory=list, max_length=3, description="Items.", json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    count: int = Field(default=2, ge=1, le=5, description="Count.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")


def test_refs_are_inlined_and_optional_members_unwrapped() -> None:
    schema = model_schema(_Parent, "spec")
    child = schema["properties"]["child"]
    assert child["type"] == "object"
    assert child["description"] == "The child."  # the field's description wins over the docstring
    assert child["properties"]["a"] == {"description": "A.", "type": "string", "pattern": "^[a-z]$"}
    assert child["required"] == ["a"]
    # the model's rule and the field's rule both apply
    assert [rule["message"] for rule in child["x-kubernetes-validations"]] == [
        "spec.child.a: must not be x",
        "spec.child is immutable",
    ]
    assert "required" not in schema


def test_bounds_defaults_lists_and_maps_are_kept() -> None:
    properties = model_schema(_Parent, "spec")["properties"]
    assert properties["items"] == {
        "description": "Items.",
        "type": "array",
        "maxItems": 3,
        "items": {"type": "string"},
        "x-kubernetes-list-type": "set",
    }
    assert properties["count"] == {"description": "Count.", "type": "integer", "default": 2, "minimum": 1, "maximum": 5}
    assert properties["labels"]["additionalProperties"] == {"type": "string"}


def _walk(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found.extend(_walk(child, f"{path}.{name}"))
    if "items" in node:
        found.extend(_walk(node["items"], f"{path}[]"))
    if isinstance(node.get("additionalProperties"), dict):
        found.extend(_walk(node["additionalProperties"], f"{path}.*"))
    return found


def test_generated_schemas_are_structural_and_fully_described() -> None:
    forbidden = {"title", "$ref", "anyOf", "allOf", "oneOf", "$defs", "const", "nullable"}
    for crd in custom_resource_definitions():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _walk(schema, crd["spec"]["names"]["kind"]):
            assert not forbidden & set(node), f"{path}: {forbidden & set(node)}"
            int_or_string = node.get("x-kubernetes-int-or-string") is True
            assert "type" in node or int_or_string or path.endswith(".metadata"), f"{path}: no type"
            assert node.get("default", "") is not None, f"{path}: null default"
            if node.get("additionalProperties") is False:
                raise AssertionError(f"{path}: additionalProperties false is not structural")
            is_property = not path.endswith(("[]", ".*")) and path.count(".") >= 1
            if is_property and not path.endswith((".metadata", ".apiVersion", ".kind")):
                assert node.get("description"), f"{path}: no description"
            for rule in node.get("x-kubernetes-validations", []):
                assert rule["message"].startswith("spec."), f"{path}: message must name the field: {rule}"


def test_a_field_without_description_is_refused() -> None:
    class Undescribed(BaseModel):
        """Undescribed."""

        x: int

    with pytest.raises(SchemaError, match="x: every field needs a description"):
        model_schema(Undescribed, "")


def test_crd_metadata() -> None:
    crds = {crd["spec"]["names"]["kind"]: crd for crd in custom_resource_definitions()}
    assert set(crds) == {"Image", "ImageShare", "ImageCopy", "Instance", "ImageSchedule", "InstanceSet"}
    fleet = crds.pop("InstanceSet")["spec"]["versions"][0]
    assert fleet["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    fleet_columns = [column["name"] for column in fleet["additionalPrinterColumns"] if not column.get("priority")]
    assert fleet_columns == ["Desired", "Ready", "Up-To-Date", "Image", "Age"]
    for crd in crds.values():
        spec = crd["spec"]
        assert spec["group"] == "cvm.operator.dev" and spec["scope"] == "Namespaced"
        assert spec["names"]["categories"] == ["cvm"]
        assert spec["names"]["shortNames"][0].startswith("cvm")
        version = spec["versions"][0]
        assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
        columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
        assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
        assert {"ID", "Region", "Phase", "Ready", "Age"} <= set(columns)
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True
        assert status["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_committed_crds_equal_generated_output() -> None:
    generated = crd_files()
    committed = {path.name: path.read_text(encoding="utf-8") for path in (ROOT / "crds").glob("*.yaml")}
    assert committed == generated, "crds/ is stale: run `make crds` (.venv/bin/cvm-operator crds --output-dir crds)"


def test_cli_prints_all_crds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds"]) == 0
    printed = capsys.readouterr().out
    assert printed == crds_yaml()
    documents = [document for document in yaml.safe_load_all(printed) if document]
    assert [document["spec"]["names"]["kind"] for document in documents] == [info.kind for info in KINDS]


def test_cli_writes_one_file_per_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "cvm.operator.dev_gone.yaml"
    stale.write_text("old", encoding="utf-8")
    unrelated = tmp_path / "kustomization.yaml"
    unrelated.write_text("resources: []\n", encoding="utf-8")
    assert main(["crds", "--output-dir", str(tmp_path)]) == 0
    written = {path.name for path in tmp_path.glob("cvm.operator.dev_*.yaml")}
    assert written == set(crd_files())
    assert not stale.exists() and unrelated.exists()
    capsys.readouterr()


def test_cli_requires_a_subcommand() -> None:
    with pytest.raises(SystemExit):
        main([])
