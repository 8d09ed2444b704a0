"""Tencent Cloud API credentials: from the environment or from a Kubernetes Secret's data."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

ENV_SECRET_ID = "TENCENTCLOUD_SECRET_ID"
ENV_SECRET_KEY = "TENCENTCLOUD_SECRET_KEY"

#: Keys of a credentials Secret (``spec.credentialsSecretRef``).
SECRET_KEY_ID = "secretId"
SECRET_KEY_KEY = "secretKey"
#: Optional key for temporary (STS) credentials.
SECRET_KEY_TOKEN = "token"


class CredentialsError(ValueError):
    """Credentials are missing or malformed. The message never contains secret values."""


@dataclass(frozen=True)
class Credentials:
    """An API key pair. Hashable: it is part of the client cache key. Secrets are kept out of repr()."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.secret_id:
            raise CredentialsError("secret id is empty")
        if not self.secret_key:
            raise CredentialsError("secret key is empty")


def default_credentials(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials from ``TENCENTCLOUD_SECRET_ID``/``TENCENTCLOUD_SECRET_KEY``; None when neither is set."""
    env = os.environ if environ is None else environ
    secret_id = env.get(ENV_SECRET_ID, "").strip()
    secret_key = env.get(ENV_SECRET_KEY, "").strip()
    if not secret_id and not secret_key:
        return None
    if not secret_id:
        raise CredentialsError(f"{ENV_SECRET_KEY} is set but {ENV_SECRET_ID} is not")
    if not secret_key:
        raise CredentialsError(f"{ENV_SECRET_ID} is set but {ENV_SECRET_KEY} is not")
    return Credentials(secret_id, secret_key)


def _decode_secret_value(data: Mapping[str, str], key: str) -> str:
    raw = data[key]
    try:
        decoded = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        # ValueError also covers UnicodeDecodeError.
        raise CredentialsError(f"Secret key {key!r} is not valid base64-encoded UTF-8") from exc
    # `echo secret | base64` leaves a trailing newline; no valid key contains whitespace.
    value = decoded.strip()
    if not value:
        raise CredentialsError(f"Secret key {key!r} is empty")
    return value


def credentials_from_secret_data(data: Mapping[str, str] | None) -> Credentials:
    """Credentials from a Secret's ``data`` (base64 values) with keys ``secretId``, ``secretKey``
    and optionally ``token``."""
    data = data or {}
    missing = [key for key in (SECRET_KEY_ID, SECRET_KEY_KEY) if key not in data]
    if missing:
        present = ", ".join(sorted(data)) or "none"
        raise CredentialsError(f"Secret is missing key(s) {', '.join(missing)} (present: {present})")
    token = _decode_secret_value(data, SECRET_KEY_TOKEN) if data.get(SECRET_KEY_TOKEN) else None
    return Credentials(
        secret_id=_decode_secret_value(data, SECRET_KEY_ID),
        secret_key=_decode_secret_value(data, SECRET_KEY_KEY),
        token=token,
    )
