"""The CVM API endpoint: a URL such as ``http://127.0.0.1:9000``, or None for Tencent Cloud itself."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

ENV_ENDPOINT = "CVM_ENDPOINT"


class EndpointError(ValueError):
    """The endpoint URL cannot be used."""


@dataclass(frozen=True)
class Endpoint:
    """What the SDK's ``HttpProfile`` needs: ``protocol`` and ``host`` (``host[:port]``, no scheme:
    the SDK signs the Host header and would otherwise put the scheme into it)."""

    protocol: str
    host: str

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host}"


def parse_endpoint(url: str | None) -> Endpoint | None:
    """Parse an endpoint URL. None or an empty string means the real Tencent Cloud endpoint."""
    if url is None or not url.strip():
        return None
    text = url.strip()
    example = "a URL such as http://127.0.0.1:9000 or https://cvm.tencentcloudapi.com"
    if "://" not in text:
        raise EndpointError(f"endpoint {text!r} has no scheme; expected {example}")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise EndpointError(f"endpoint {text!r}: scheme must be http or https")
    if not parts.hostname:
        raise EndpointError(f"endpoint {text!r} has no host; expected {example}")
    if parts.username is not None or parts.password is not None:
        raise EndpointError(f"endpoint {parts.scheme}://{parts.hostname}: credentials in the URL are not supported")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise EndpointError(f"endpoint {text!r}: a path, query or fragment is not supported")
    try:
        port = parts.port
    except ValueError as exc:
        raise EndpointError(f"endpoint {text!r}: invalid port") from exc
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None:
        host = f"{host}:{port}"
    return Endpoint(protocol=parts.scheme, host=host)


def endpoint_from_options(option: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The endpoint URL from ``--endpoint`` if given, else ``CVM_ENDPOINT``, else None."""
    if option:
        return option
    env = os.environ if environ is None else environ
    return env.get(ENV_ENDPOINT) or None
