"""The pydantic models accept every sample and refuse every corpus item, naming the same field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cvm_operator.api import (
    Image,
    ImageCopy,
    ImageShare,
    check_update,
    parse_image,
    parse_instance,
    parse_object,
)
from tests.api.corpus import InvalidItem, invalid_items, sample_files, sample_objects

INVALID = invalid_items()
SAMPLES = sample_objects()


def test_corpus_is_large_and_covers_every_kind() -> None:
    assert len(INVALID) >= 60
    kinds = {item.documents[-1]["kind"] for item in INVALID}
    assert kinds == {"Image", "ImageShare", "ImageCopy", "Instance", "ImageSchedule", "InstanceSet"}
    assert sum(item.is_update for item in INVALID) >= 10


def test_samples_cover_every_use_case() -> None:
    kinds = {document["kind"] for _, document in SAMPLES}
    assert kinds == {"Image", "ImageShare", "ImageCopy", "Instance", "ImageSchedule", "InstanceSet"}
    for path in sample_files():
        first_line = path.read_text(encoding="utf-8").splitlines()[0]
        assert first_line.startswith("# ") and len(first_line) > 20, f"{path.name}: first line must say what it does"


@pytest.mark.parametrize(("path", "document"), SAMPLES, ids=[f"{p.stem}/{d['metadata']['name']}" for p, d in SAMPLES])
def test_sample_is_accepted(path: Path, document: dict[str, Any]) -> None:
    parse_object(document)


def _pydantic_errors(item: InvalidItem) -> str:
    """The pydantic refusal of a corpus item, as text; empty when the models accept it."""
    try:
        models = [parse_object(document) for document in item.documents]
    except ValidationError as error:
        return str(error)
    if item.is_update:
        return "\n".join(check_update(models[0], models[1]))
    return ""


@pytest.mark.parametrize("item", INVALID, ids=[item.id for item in INVALID])
def test_invalid_item_is_rejected_naming_the_field(item: InvalidItem) -> None:
    if item.is_update:
        parse_object(item.documents[0])  # the original must be valid for the update to mean anything
    errors = _pydantic_errors(item)
    assert errors, f"{item.path.name}: accepted by the models"
    assert item.expect in errors, f"{item.path.name}: {item.expect!r} not named in:\n{errors}"


def test_defaults_match_the_api_contract() -> None:
    base = {"apiVersion": "cvm.operator.dev/v1alpha1", "metadata": {"name": "x"}}
    image = parse_object(
        {
            **base,
            "kind": "Image",
            "spec": {"region": "ap-guangzhou", "source": {"existing": {"imageId": "img-487zeit5"}}},
        }
    )
    share = parse_object({**base, "kind": "ImageShare", "spec": {"imageRef": {"name": "a"}, "accountIds": ["12345"]}})
    copy = parse_object(
        {**base, "kind": "ImageCopy", "spec": {"sourceRef": {"name": "a"}, "destinationRegions": ["ap-shanghai"]}}
    )
    instance = parse_instance(
        {
            **base,
            "kind": "Instance",
            "spec": {
                "region": "ap-guangzhou",
                "zone": "ap-guangzhou-3",
                "instanceType": "S5.SMALL1",
                "imageId": "img-487zeit5",
                "loginSettings": {"keepImageLogin": True},
            },
        }
    )
    assert isinstance(image, Image) and image.spec.deletion_policy == "Delete"
    assert isinstance(share, ImageShare) and share.spec.deletion_policy == "Delete"
    assert isinstance(copy, ImageCopy) and copy.spec.deletion_policy == "Retain" and copy.spec.encrypt is False
    assert instance.spec.deletion_policy == "Delete"
    assert instance.spec.run_state == "Running"
    assert instance.spec.reimage_policy == "Never"
    assert (instance.spec.system_disk.disk_type, instance.spec.system_disk.size_gb) == ("CLOUD_PREMIUM", 50)


def test_import_defaults() -> None:
    image = parse_image(
        {
            "apiVersion": "cvm.operator.dev/v1alpha1",
            "kind": "Image",
            "metadata": {"name": "x"},
            "spec": {
                "region": "ap-guangzhou",
                "source": {"fromImport": {"url": "file:///disk.raw", "osType": "CentOS", "osVersion": "7"}},
            },
        }
    )
    source = image.spec.source.from_import
    assert source is not None
    assert (source.architecture, source.boot_mode, source.license_type, source.force) == (
        "x86_64",
        "Legacy BIOS",
        "TencentCloud",
        False,
    )


def test_wire_form_is_camel_case_and_round_trips() -> None:
    _, document = next((p, d) for p, d in SAMPLES if d["kind"] == "Instance")
    instance = parse_instance(document)
    wire = instance.to_wire()
    assert "loginSettings" in wire["spec"] and "login_settings" not in wire["spec"]
    assert wire["spec"]["systemDisk"]["sizeGB"] == instance.spec.system_disk.size_gb
    assert parse_instance(wire) == instance


def test_snake_case_keys_are_not_accepted_from_the_api() -> None:
    with pytest.raises(ValidationError, match="image_id"):
        parse_object(
            {
                "apiVersion": "cvm.operator.dev/v1alpha1",
                "kind": "Image",
                "metadata": {"name": "x"},
                "spec": {"region": "ap-guangzhou", "source": {"existing": {"image_id": "img-487zeit5"}}},
            }
        )


def test_status_tolerates_unknown_fields_and_parses_conditions() -> None:
    image = parse_image(
        {
            "apiVersion": "cvm.operator.dev/v1alpha1",
            "kind": "Image",
            "metadata": {"name": "x", "generation": 3},
            "spec": {"region": "ap-guangzhou", "source": {"existing": {"imageId": "img-487zeit5"}}},
            "status": {
                "kopf": {"progress": {}},
                "imageId": "img-487zeit5",
                "sizeGB": 20,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Available",
                        "observedGeneration": 3,
                        "lastTransitionTime": "2026-01-02T03:04:05Z",
                    }
                ],
            },
        }
    )
    assert image.status.image_id == "img-487zeit5"
    assert image.status.size_gb == 20
    assert image.status.conditions[0].last_transition_time.year == 2026
    assert image.status.to_wire()["conditions"][0]["lastTransitionTime"] == "2026-01-02T03:04:05Z"


def test_null_fields_are_treated_as_absent_like_the_api_server() -> None:
    image = parse_image(
        {
            "apiVersion": "cvm.operator.dev/v1alpha1",
            "kind": "Image",
            "metadata": {"name": "x"},
            "spec": {
                "region": "ap-guangzhou",
                "deletionPolicy": None,
                "source": {"existing": {"imageId": "img-487zeit5", "lookup": None}},
            },
        }
    )
    assert image.spec.deletion_policy == "Delete"


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        parse_object({"kind": "Pod"})


def test_an_unchanged_update_passes_the_transition_checks() -> None:
    for _, document in SAMPLES:
        model = parse_object(document)
        assert check_update(model, parse_object(document)) == []
