"""Pure parts of hack/demo.py: the qcow2 disk it serves, readiness, the table and its options."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cvm_emulator.importer import DiskProbe, detect_format

ROOT = Path(__file__).resolve().parents[2]


def load_demo() -> ModuleType:
    name = "cvm_demo"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "hack" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


demo = load_demo()


def test_qcow2_disk_is_a_valid_v3_image() -> None:
    image = demo.qcow2_image(virtual_size=1 << 30)
    magic, version = struct.unpack(">4sI", image[:8])
    assert (magic, version) == (b"QFI\xfb", 3)
    cluster_bits, size = struct.unpack(">IQ", image[20:32])
    assert (cluster_bits, size) == (16, 1 << 30)
    l1_size, l1_offset, refcount_offset, refcount_clusters = struct.unpack(">IQQI", image[36:60])
    assert l1_size == 2  # 1 GiB / 512 MiB per L2 table
    assert l1_offset % (1 << cluster_bits) == 0 and refcount_offset % (1 << cluster_bits) == 0
    assert refcount_clusters == 1
    refcount_order, header_length = struct.unpack(">II", image[96:104])
    assert (refcount_order, header_length) == (4, 104)
    (block_offset,) = struct.unpack(">Q", image[refcount_offset : refcount_offset + 8])
    refcounts = struct.unpack(">4H", image[block_offset : block_offset + 8])
    assert refcounts == (1, 1, 1, 1)
    assert len(image) == 4 << cluster_bits


def test_the_emulator_recognises_the_demo_disk() -> None:
    image = demo.qcow2_image()
    detection = detect_format(DiskProbe(head=image[: 64 * 1024], tail=image[-512:], size=len(image)), force=False)
    assert (detection.disk_format, detection.virtual_size, detection.reason) == ("qcow2", 1 << 30, "")


def image(name: str, status: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "cvm-demo", "generation": generation}, "status": status or {}}


def condition(kind: str, status: str, reason: str, generation: int = 1, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "observedGeneration": generation}


def test_ready_row() -> None:
    row = demo.row_of(
        "Image",
        image("web", {"imageId": "img-1", "phase": "Available", "conditions": [condition("Ready", "True", "Ready")]}),
    )
    assert (row.phase, row.ready, row.reason, row.cloud_id, row.is_ready) == (
        "Available",
        "True",
        "Ready",
        "img-1",
        True,
    )


def test_ready_for_an_older_generation_is_not_ready() -> None:
    status = {"conditions": [condition("Ready", "True", "Ready", generation=1)]}
    assert not demo.row_of("Image", image("web", status, generation=2)).is_ready


def test_stalled_reason_explains_the_row() -> None:
    status = {
        "phase": "Failed",
        "conditions": [
            condition("Ready", "False", "Stalled", message="x"),
            condition("Stalled", "True", "ImageNotFound", message="img-x does not exist"),
            condition("Reconciling", "False", "Stalled"),
        ],
    }
    row = demo.row_of("Image", image("web", status))
    assert (row.ready, row.reason, row.message) == ("False", "ImageNotFound", "img-x does not exist")


def test_cloud_ids_per_kind() -> None:
    instance = demo.row_of("Instance", image("web-1", {"instanceId": "ins-1", "imageId": "img-1"}))
    copies = demo.row_of(
        "ImageCopy",
        image("c", {"sourceImageId": "img-0", "copies": [{"imageId": "img-a"}, {"region": "x"}, {"imageId": "img-b"}]}),
    )
    assert (instance.cloud_id, copies.cloud_id) == ("ins-1", "img-a,img-b")
    schedule = demo.row_of("ImageSchedule", image("s", {"latestImage": {"name": "s-1", "imageId": "img-s"}}))
    assert schedule.cloud_id == "img-s"
    fleet = demo.row_of("InstanceSet", image("f", {"updateImageId": "img-f", "readyReplicas": 2}))
    assert fleet.cloud_id == "img-f"


def test_all_ready_needs_every_expected_object() -> None:
    ready = demo.row_of("Image", image("a", {"conditions": [condition("Ready", "True", "Ready")]}))
    assert demo.all_ready([ready], [("Image", "cvm-demo", "a")])
    assert not demo.all_ready([ready], [("Image", "cvm-demo", "a"), ("Instance", "cvm-demo", "b")])
    assert not demo.all_ready([], [])
    summary = demo.not_ready_summary([ready], [("Instance", "cvm-demo", "b")])
    assert summary == ["Instance cvm-demo/b: not found"]


def test_table_columns_line_up() -> None:
    rows = [
        demo.row_of("Image", image("web-golden", {"imageId": "img-12345678", "phase": "Creating"})),
        demo.row_of("Instance", image("w", {"conditions": [condition("Reconciling", "True", "ImageNotReady")]})),
    ]
    lines = demo.render_table(rows, namespaces=False)
    assert lines[0].split() == ["KIND", "NAME", "PHASE", "READY", "REASON", "CLOUD", "ID"]
    assert lines[1].split() == ["Image", "web-golden", "Creating", "Unknown", "-", "img-12345678"]
    assert lines[2].split() == ["Instance", "w", "-", "Unknown", "ImageNotReady", "-"]
    assert len({line.index("PHASE") if i == 0 else None for i, line in enumerate(lines)} - {None}) == 1
    assert lines[1].index("Creating") == lines[0].index("PHASE")


def test_non_tty_view_prints_only_changes() -> None:
    class Stream:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

    stream = Stream()
    view = demo.TableView(stream, started=0.0)
    first = demo.row_of("Image", image("a", {"phase": "Creating"}))
    assert view.show([first], "footer") is True
    assert view.show([first], "footer") is False
    second = demo.row_of("Image", image("a", {"phase": "Available"}))
    assert view.show([second], "footer") is True
    assert stream.text.count("Image/a") == 2 and "phase=Available" in stream.text


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        ([], {}, ("fast", False, 300.0)),
        (["--realistic"], {}, ("realistic", False, 1800.0)),
        ([], {"DEMO_CLOCK": "realistic", "DEMO_EXIT": "1"}, ("realistic", True, 1800.0)),
        ([], {"DEMO_EXIT": "0", "DEMO_TIMEOUT": "42"}, ("fast", False, 42.0)),
        (["--clock", "10", "--exit", "--timeout", "7"], {}, ("10", True, 7.0)),
    ],
)
def test_options(argv: list[str], environ: dict[str, str], expected: tuple[str, bool, float]) -> None:
    options = demo.parse_options(argv, environ)
    assert (options.clock, options.exit_when_ready, options.timeout) == expected


def test_samples_default_to_the_demo_namespace(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n"
        "apiVersion: cvm.operator.dev/v1alpha1\nkind: Image\nmetadata: {name: i, namespace: other}\n"
    )
    documents = demo.read_samples(tmp_path, "cvm-demo")
    assert [(d["kind"], d["metadata"]["namespace"]) for d in documents] == [("Secret", "cvm-demo"), ("Image", "other")]


def test_the_shipped_samples_are_all_in_the_demo_namespace() -> None:
    documents = demo.read_samples(ROOT / "manifests" / "samples", "cvm-demo")
    kinds = {d["kind"] for d in documents}
    assert {"Image", "ImageShare", "ImageCopy", "Instance"} <= kinds
    assert {d["metadata"]["namespace"] for d in documents} == {"cvm-demo"}
