"""The error every action raises to answer with ``Response.Error``."""

from __future__ import annotations


class ApiError(Exception):
    """An API error answered as ``{"Response": {"Error": {"Code", "Message"}}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def invalid_state_code(state: str) -> str:
    """``UnsupportedOperation.InstanceState<State>`` for an instance state such as ``LAUNCH_FAILED``."""
    camel = "".join(part.capitalize() for part in state.split("_"))
    return f"UnsupportedOperation.InstanceState{camel}"
