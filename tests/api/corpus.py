"""The samples and the invalid corpus, loaded for tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLES_DIR = ROOT / "manifests" / "samples"
INVALID_DIR = Path(__file__).resolve().parent / "invalid"
GROUP = "cvm.operator.dev"

_EXPECT = re.compile(r"^#\s*expect:\s*(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class InvalidItem:
    """A manifest the API must refuse; with two documents, the first is created and the second is the update."""

    path: Path
    expect: str
    documents: list[dict[str, Any]]

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def is_update(self) -> bool:
        return len(self.documents) == 2


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]


def invalid_items() -> list[InvalidItem]:
    items: list[InvalidItem] = []
    for path in sorted(INVALID_DIR.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        match = _EXPECT.search(text)
        if match is None:
            raise AssertionError(f"{path}: no '# expect: <field>' line")
        documents = load_documents(path)
        if len(documents) not in (1, 2):
            raise AssertionError(f"{path}: one document, or two for an update")
        items.append(InvalidItem(path, match.group(1), documents))
    return items


def sample_files() -> list[Path]:
    return sorted(SAMPLES_DIR.glob("*.yaml"))


def sample_objects() -> list[tuple[Path, dict[str, Any]]]:
    """Every cvm.operator.dev object of every sample file (Secrets and other kinds left out)."""
    return [
        (path, document)
        for path in sample_files()
        for document in load_documents(path)
        if str(document.get("apiVersion", "")).startswith(f"{GROUP}/")
    ]
