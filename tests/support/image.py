"""hack/image.py loaded as a module, and podman run with its private containers.conf."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_image_module() -> ModuleType:
    """Import hack/image.py, the same code `make image` runs."""
    name = "cvm_image"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "hack" / "image.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def built_image() -> str:
    """The image `make image` tagged; a missing one fails the test (never skips)."""
    image = load_image_module()
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed, so the image was never built: run make image", pytrace=False)
    if not image.image_exists(image.IMAGE):
        pytest.fail(f"the image {image.IMAGE} is not built (or its scan failed): run make image", pytrace=False)
    return str(image.IMAGE)


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    image = load_image_module()
    result = subprocess.run(
        ["podman", *args], env=image.podman_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result
