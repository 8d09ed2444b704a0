"""CAM roles, OIDC identity providers and temporary credentials (STS sessions): who may act as which
account, and for how long.

A role belongs to one account and trusts other accounts (``AssumeRole``) and OIDC providers
(``AssumeRoleWithWebIdentity``). Assuming it issues a session: a temporary SecretId, SecretKey and
token that act as the role's account until they expire. Web identity tokens are RS256 JWTs checked
against the provider's keys (a JWKS, as Kubernetes serves at ``/openid/v1/jwks``) with the standard
library only: RSASSA-PKCS1-v1_5 verification is one modular exponentiation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

DEFAULT_DURATION = 7200
MAX_DURATION = 43200
# Leeway for the token's exp and nbf against the emulator's clock.
TOKEN_LEEWAY_SECONDS = 60
# Expired sessions are kept this long (so an expired token is told apart from an unknown key), then dropped.
SESSION_RETENTION_SECONDS = 86400

_ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,128}$")
_SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,128}$")
_ROLE_ARN_RE = re.compile(r"^qcs::cam::uin/(?P<account>\d+):roleName/(?P<name>[\w+=,.@-]+)$")
_KEY_ALPHABET = string.ascii_letters + string.digits
# DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def role_arn(account_id: str, name: str) -> str:
    return f"qcs::cam::uin/{account_id}:roleName/{name}"


@dataclass(frozen=True)
class RsaKey:
    """An RSA public key of a JWKS (``kty: RSA``)."""

    kid: str
    n: int
    e: int

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8


@dataclass(frozen=True)
class OidcProvider:
    """An OIDC identity provider the account trusts (a TKE cluster's service-account issuer)."""

    provider_id: str
    issuer: str
    audiences: tuple[str, ...]
    """Accepted ``aud`` values; a token must name one of them."""
    keys: tuple[RsaKey, ...]


@dataclass(frozen=True)
class Role:
    account_id: str
    name: str
    trusted_accounts: tuple[str, ...]
    """Accounts whose keys may call AssumeRole."""
    oidc_providers: tuple[str, ...]
    """Providers whose tokens may call AssumeRoleWithWebIdentity."""
    oidc_subjects: tuple[str, ...] = ()
    """When set, only tokens with one of these ``sub`` claims (e.g. one ServiceAccount)."""
    max_session_duration: int = MAX_DURATION

    @property
    def arn(self) -> str:
        return role_arn(self.account_id, self.name)


@dataclass(frozen=True)
class Session:
    """Temporary credentials issued by AssumeRole or AssumeRoleWithWebIdentity."""

    secret_id: str
    secret_key: str
    token: str
    account_id: str
    role_arn: str
    session_name: str
    created_at: float
    expires_at: float


# ------------------------------------------------------------------ configuration


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url_int(text: str) -> int:
    return int.from_bytes(_b64url_decode(text), "big")


def parse_jwks(data: Any, where: str) -> tuple[RsaKey, ...]:
    """The RSA keys of a JWKS (``{"keys": [...]}``) or of a plain list of JWKs."""
    entries = data.get("keys") if isinstance(data, Mapping) else data
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{where}: jwks must be a JWKS ({{keys: [...]}}) or a list of JWKs")
    keys = []
    for entry in entries:
        if not isinstance(entry, Mapping) or entry.get("kty") != "RSA" or "n" not in entry or "e" not in entry:
            raise ValueError(f"{where}: only RSA keys (kty RSA with n and e) are supported")
        try:
            keys.append(RsaKey(str(entry.get("kid") or ""), _b64url_int(str(entry["n"])), _b64url_int(str(entry["e"]))))
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{where}: key {entry.get('kid')!r} is not valid base64url") from exc
    return tuple(keys)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{where} must be a list")
    return tuple(str(item) for item in value)


def parse_providers(entries: Any) -> tuple[OidcProvider, ...]:
    """``oidcProviders`` of the config: providerId, issuer, audiences and jwks."""
    providers = []
    for index, entry in enumerate(entries or ()):
        where = f"oidcProviders[{index}]"
        try:
            provider_id, issuer = str(entry["providerId"]), str(entry["issuer"])
            keys = parse_jwks(entry["jwks"], where)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{where} needs providerId, issuer and jwks") from exc
        audiences = _strings(entry.get("audiences"), f"{where}.audiences")
        providers.append(OidcProvider(provider_id, issuer, audiences, keys))
    return tuple(providers)


def parse_roles(entries: Any, account_ids: Sequence[str], provider_ids: Sequence[str]) -> tuple[Role, ...]:
    """``roles`` of the config: accountId, roleName, and a trust of accounts and OIDC providers."""
    roles = []
    for index, entry in enumerate(entries or ()):
        where = f"roles[{index}]"
        try:
            account_id, name = str(entry["accountId"]), str(entry["roleName"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{where} needs accountId and roleName") from exc
        if account_id not in account_ids:
            raise ValueError(f"{where}: account {account_id} is not one of the configured accounts")
        if not _ROLE_NAME_RE.match(name):
            raise ValueError(f"{where}: roleName {name!r} may hold letters, digits and +=,.@_- only")
        trust = entry.get("trust") or {}
        providers = _strings(trust.get("oidcProviders"), f"{where}.trust.oidcProviders")
        unknown = sorted(set(providers) - set(provider_ids))
        if unknown:
            raise ValueError(f"{where}: unknown OIDC providers {unknown}")
        # Without a trust, a role trusts its own account (as a new CAM role does).
        accounts = _strings(trust.get("accounts"), f"{where}.trust.accounts") or (() if providers else (account_id,))
        duration = int(entry.get("maxSessionDuration", MAX_DURATION))
        if not 1 <= duration <= MAX_DURATION:
            raise ValueError(f"{where}: maxSessionDuration must be 1..{MAX_DURATION}")
        roles.append(
            Role(
                account_id,
                name,
                accounts,
                providers,
                _strings(trust.get("oidcSubjects"), f"{where}.trust.oidcSubjects"),
                duration,
            )
        )
    return tuple(roles)


# ------------------------------------------------------------------ rules


def find_role(roles: Sequence[Role], arn: str) -> Role:
    match = _ROLE_ARN_RE.match(arn)
    role = next((r for r in roles if r.arn == arn), None) if match else None
    if role is None:
        raise ApiError("ResourceNotFound.RoleNotFound", f"The role `{arn}` does not exist.")
    return role


def find_provider(providers: Sequence[OidcProvider], provider_id: str) -> OidcProvider:
    provider = next((p for p in providers if p.provider_id == provider_id), None)
    if provider is None:
        raise ApiError(
            "InvalidParameter.WebIdentityTokenError", f"The identity provider `{provider_id}` does not exist."
        )
    return provider


def check_session_request(role: Role, session_name: str, duration: int | None) -> int:
    """The session duration to grant, or the error for a bad name or duration."""
    if not _SESSION_NAME_RE.match(session_name):
        raise ApiError(
            "InvalidParameter.ParamError",
            "RoleSessionName must be 2-128 characters of letters, digits and =,.@_-.",
        )
    limit = min(MAX_DURATION, role.max_session_duration)
    seconds = min(DEFAULT_DURATION, limit) if duration is None else duration
    if seconds < 1:
        raise ApiError("InvalidParameter.ParamError", "DurationSeconds must be positive.")
    if seconds > limit:
        raise ApiError("InvalidParameter.OverTimeError", f"DurationSeconds exceeds the role's limit of {limit}s.")
    return seconds


def check_account_trust(role: Role, caller_account_id: str) -> None:
    if caller_account_id not in role.trusted_accounts:
        raise ApiError(
            "UnauthorizedOperation",
            f"Account {caller_account_id} is not allowed to assume the role `{role.arn}`.",
        )


def check_web_identity_trust(role: Role, provider: OidcProvider, claims: Mapping[str, Any]) -> None:
    if provider.provider_id not in role.oidc_providers:
        raise ApiError(
            "UnauthorizedOperation",
            f"The role `{role.arn}` does not trust the identity provider `{provider.provider_id}`.",
        )
    if role.oidc_subjects and str(claims.get("sub")) not in role.oidc_subjects:
        raise ApiError("UnauthorizedOperation", f"The role `{role.arn}` does not trust this token's subject.")


def verify_rs256(key: RsaKey, message: bytes, signature: bytes) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2.2)."""
    size = key.size
    if len(signature) != size:
        return False
    value = int.from_bytes(signature, "big")
    if value >= key.n:
        return False
    encoded = pow(value, key.e, key.n).to_bytes(size, "big")
    digest = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    padding = size - len(digest) - 3
    if padding < 8:
        return False
    return hmac.compare_digest(encoded, b"\x00\x01" + b"\xff" * padding + b"\x00" + digest)


def _token_error(reason: str) -> ApiError:
    return ApiError("InvalidParameter.WebIdentityTokenError", f"The web identity token is invalid: {reason}.")


def verify_web_identity(provider: OidcProvider, token: str, now: float) -> dict[str, Any]:
    """The claims of an RS256 JWT signed by one of the provider's keys, issued by it for one of its
    audiences and valid now; the error otherwise. Messages never repeat the token."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise _token_error("not a JWT")
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (binascii.Error, ValueError) as exc:
        raise _token_error("not a JWT") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _token_error("not a JWT")
    if header.get("alg") != "RS256":
        raise _token_error(f"algorithm {header.get('alg')!r} is not RS256")
    kid = header.get("kid")
    keys = [k for k in provider.keys if not kid or not k.kid or k.kid == kid]
    signed = f"{parts[0]}.{parts[1]}".encode("ascii")
    if not any(verify_rs256(key, signed, signature) for key in keys):
        raise _token_error("the signature does not match the provider's keys")
    if claims.get("iss") != provider.issuer:
        raise _token_error("the issuer is not the provider's")
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
    if provider.audiences and not set(audiences) & set(provider.audiences):
        raise _token_error("the audience is not one the provider accepts")
    expiry = claims.get("exp")
    if not isinstance(expiry, int | float) or now > expiry + TOKEN_LEEWAY_SECONDS:
        raise _token_error("it has expired")
    not_before = claims.get("nbf")
    if isinstance(not_before, int | float) and now + TOKEN_LEEWAY_SECONDS < not_before:
        raise _token_error("it is not valid yet")
    return claims


# ------------------------------------------------------------------ sessions


def _random(length: int) -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(length))


def issue_session(conn: sqlite3.Connection, role: Role, session_name: str, seconds: int, now: float) -> Session:
    session = Session(
        secret_id=f"AKID{_random(32)}",
        secret_key=_random(40),
        token=_random(160),
        account_id=role.account_id,
        role_arn=role.arn,
        session_name=session_name,
        created_at=now,
        expires_at=float(int(now) + seconds),
    )
    conn.execute("DELETE FROM sts_sessions WHERE expires_at < ?", (now - SESSION_RETENTION_SECONDS,))
    conn.execute(
        "INSERT INTO sts_sessions (secret_id, secret_key, token, account_id, role_arn, session_name, created_at, "
        "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            session.secret_id,
            session.secret_key,
            session.token,
            session.account_id,
            session.role_arn,
            session.session_name,
            session.created_at,
            session.expires_at,
        ),
    )
    return session


def load_session(conn: sqlite3.Connection, secret_id: str) -> Session | None:
    row = conn.execute("SELECT * FROM sts_sessions WHERE secret_id = ?", (secret_id,)).fetchone()
    if row is None:
        return None
    return Session(
        row["secret_id"],
        row["secret_key"],
        row["token"],
        row["account_id"],
        row["role_arn"],
        row["session_name"],
        float(row["created_at"]),
        float(row["expires_at"]),
    )


def check_session_token(session: Session, token: str, now: float) -> None:
    """Temporary keys sign only together with their own, unexpired token (``X-TC-Token``)."""
    if not token:
        raise ApiError("AuthFailure.TokenFailure", "Temporary credentials need their token in the X-TC-Token header.")
    if not hmac.compare_digest(token.encode(), session.token.encode()):
        raise ApiError("AuthFailure.TokenFailure", "The token does not belong to the SecretId.")
    if now >= session.expires_at:
        raise ApiError("AuthFailure.TokenFailure", "The token has expired.")
