# The emulator fixtures, until tests/conftest.py registers tests.support.emulator for every folder.
from tests.support.emulator import disk_server, emulator, emulator_factory

__all__ = ["disk_server", "emulator", "emulator_factory"]
