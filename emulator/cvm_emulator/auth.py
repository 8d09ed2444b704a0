"""TC3-HMAC-SHA256 request signature verification."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from tencentcloud.common.sign import Sign

from .catalogue import Account
from .errors import ApiError

MAX_CLOCK_SKEW_SECONDS = 300
ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "cvm"

_AUTH_RE = re.compile(
    r"^TC3-HMAC-SHA256\s+Credential=(?P<secret_id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[^/]+)"
    r"/tc3_request,\s*SignedHeaders=(?P<signed>[a-z0-9;._-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class SignedRequest:
    """What the signature covers: method, path, query, headers (case-insensitive) and body."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


def canonical_request(req: SignedRequest, signed_headers: list[str], payload_hash: str) -> str:
    canonical_headers = "".join(f"{name}:{req.headers.get(name, '').strip()}\n" for name in signed_headers)
    return "\n".join(
        [
            req.method.upper(),
            req.path or "/",
            req.query,
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def signature_for(
    secret_key: str, req: SignedRequest, timestamp: int, date: str, signed_headers: list[str], service: str = SERVICE
) -> str:
    if req.headers.get("x-tc-content-sha256") == "UNSIGNED-PAYLOAD":
        payload_hash = hashlib.sha256(b"UNSIGNED-PAYLOAD").hexdigest()
    else:
        payload_hash = hashlib.sha256(req.body).hexdigest()
    canonical = canonical_request(req, signed_headers, payload_hash)
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            str(timestamp),
            f"{date}/{service}/tc3_request",
            hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        ]
    )
    return str(Sign.sign_tc3(secret_key, date, service, string_to_sign))


def scope_service(authorization: str) -> str | None:
    """The service named in an Authorization header's credential scope, None when unreadable."""
    match = _AUTH_RE.match(authorization.strip())
    return match["service"] if match is not None else None


TemporaryKeys = Callable[[str, str], Account | None]
"""(SecretId, X-TC-Token) → the account temporary keys act for, with their SecretKey; None for an unknown
SecretId; raises ``AuthFailure.TokenFailure`` for a missing, wrong or expired token."""


def authenticate(
    req: SignedRequest,
    accounts_by_secret_id: Mapping[str, Account],
    now: float,
    service: str = SERVICE,
    temporary: TemporaryKeys | None = None,
) -> Account:
    """Return the calling account or raise the ``AuthFailure.*`` error the real service gives.

    ``service`` is the one the request is addressed to (``cvm``, ``tag`` or ``sts``): the credential scope must
    name it, and the signature is computed with it. ``temporary`` looks up keys issued by STS.
    """
    authorization = req.headers.get("authorization", "")
    if not authorization:
        raise ApiError("AuthFailure.SignatureFailure", "The request is missing the Authorization header.")
    match = _AUTH_RE.match(authorization.strip())
    if match is None:
        raise ApiError(
            "AuthFailure.SignatureFailure", "The Authorization header is not a valid TC3-HMAC-SHA256 authorization."
        )
    raw_timestamp = req.headers.get("x-tc-timestamp", "")
    if not raw_timestamp.isdigit():
        raise ApiError("MissingParameter", "The request is missing a valid X-TC-Timestamp header.")
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > MAX_CLOCK_SKEW_SECONDS:
        raise ApiError(
            "AuthFailure.SignatureExpire",
            f"Signature expired, timestamp {timestamp} is more than {MAX_CLOCK_SKEW_SECONDS}s away "
            f"from the server time {int(now)}.",
        )
    token = req.headers.get("x-tc-token", "").strip()
    account = accounts_by_secret_id.get(match["secret_id"])
    if account is not None and token:
        raise ApiError("AuthFailure.TokenFailure", "A token was sent with permanent keys.")
    if account is None and temporary is not None:
        account = temporary(match["secret_id"], token)
    if account is None:
        raise ApiError(
            "AuthFailure.SecretIdNotFound", "The SecretId is not found, please ensure that your SecretId is correct."
        )
    signed_headers = match["signed"].split(";")
    if "host" not in signed_headers or "content-type" not in signed_headers:
        raise ApiError("AuthFailure.SignatureFailure", "SignedHeaders must include content-type and host.")
    date = datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")
    if match["date"] != date or match["service"] != service:
        raise ApiError(
            "AuthFailure.SignatureFailure", "The credential scope does not match the request date or service."
        )
    expected = signature_for(account.secret_key, req, timestamp, date, signed_headers, service)
    if not hmac.compare_digest(expected, match["signature"]):
        raise ApiError(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is correct.",
        )
    return account
