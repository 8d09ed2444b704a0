"""Operator settings, resolved once from the command line and the environment."""

from __future__ import annotations

from dataclasses import dataclass

from cvm_operator.cloud import AnyCredentials
from cvm_operator.tenancy import LabelSelector


@dataclass(frozen=True)
class OperatorConfig:
    endpoint: str | None
    """CVM API endpoint URL (the emulator's, e.g. http://127.0.0.1:9000); None is Tencent Cloud."""
    default_credentials: AnyCredentials | None
    """Used by objects without credentialsSecretRef: keys, or a role's temporary keys."""
    poll_interval: float = 60.0
    """How often a settled object is compared with the cloud (drift detection)."""
    progress_interval: float = 5.0
    """How often an object is looked at while the cloud works on it or it waits for another object."""
    stalled_interval: float = 300.0
    """First retry of an error the user must fix; doubles up to ``stalled_interval_max``."""
    stalled_interval_max: float = 1800.0
    transient_backoff_cap: float = 120.0
    default_credentials_namespaces: LabelSelector | None = None
    """Only objects in namespaces matching this selector may use ``default_credentials``; None: all."""

    @classmethod
    def with_poll_interval(
        cls,
        endpoint: str | None,
        credentials: AnyCredentials | None,
        poll_interval: float,
        default_credentials_namespaces: LabelSelector | None = None,
        stalled_interval: float | None = None,
    ) -> OperatorConfig:
        """Progress is watched at least every 5 s, and more often when polling is faster."""
        if stalled_interval is None:
            stalled_interval = max(30.0, 10 * poll_interval)
        return cls(
            endpoint=endpoint,
            default_credentials=credentials,
            default_credentials_namespaces=default_credentials_namespaces,
            poll_interval=poll_interval,
            progress_interval=min(5.0, poll_interval),
            stalled_interval=min(stalled_interval, 1800.0),
        )
