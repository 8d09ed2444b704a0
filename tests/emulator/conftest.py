from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.emulator import EmulatorProcess


@pytest.fixture(scope="session")
def shared_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator for tests that only add uniquely named resources (saves a process start per test)."""
    workdir: Path = tmp_path_factory.mktemp("shared-emulator")
    with EmulatorProcess(workdir) as process:
        yield process
