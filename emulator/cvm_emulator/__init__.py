"""cvm-emulator: a local Tencent Cloud CVM API (2017-03-12) server with SQLite persistence."""

__all__ = ["__version__"]
__version__ = "0.1.0"
