"""A stand-in OIDC issuer for tests: an RSA key, its JWKS, and RS256 tokens (like a cluster's
service-account issuer), plus emulator config entries that trust it."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

AUDIENCE = "sts.cloud.tencent.com"
PROVIDER_ID = "test-cluster"
ISSUER = "https://oidc.test-cluster.example"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass
class Issuer:
    issuer: str = ISSUER
    kid: str = "key-1"
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {
            "keys": [
                {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                 "n": _int_b64url(numbers.n), "e": _int_b64url(numbers.e)}
            ]
        }  # fmt: skip

    def sign(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def token(
        self,
        subject: str = "system:serviceaccount:cvm-operator-system:cvm-operator",
        audience: str | list[str] = AUDIENCE,
        lifetime: float = 3600,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "sub": subject, "aud": audience, "iat": now, "nbf": now,
                "exp": int(now + lifetime), **claims}  # fmt: skip
        return self.sign({"alg": "RS256", "typ": "JWT", "kid": self.kid}, body)

    def provider_config(self, provider_id: str = PROVIDER_ID) -> dict[str, Any]:
        return {"providerId": provider_id, "issuer": self.issuer, "audiences": [AUDIENCE], "jwks": self.jwks()}


def role_config(
    account_id: str,
    name: str,
    *,
    accounts: list[str] | None = None,
    providers: list[str] | None = None,
    subjects: list[str] | None = None,
) -> dict[str, Any]:
    trust: dict[str, Any] = {}
    if accounts is not None:
        trust["accounts"] = accounts
    if providers is not None:
        trust["oidcProviders"] = providers
    if subjects is not None:
        trust["oidcSubjects"] = subjects
    return {"accountId": account_id, "roleName": name, "trust": trust}


def role_arn(account_id: str, name: str) -> str:
    return f"qcs::cam::uin/{account_id}:roleName/{name}"
