"""Pure rules of roles, OIDC providers and web identity tokens (no server)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from cvm_emulator import identity
from cvm_emulator.catalogue import load_config
from cvm_emulator.errors import ApiError
from tests.support.oidc import PROVIDER_ID, Issuer, role_config

ISSUER = Issuer()
OWNER = "100000000001"


def provider() -> identity.OidcProvider:
    (parsed,) = identity.parse_providers([ISSUER.provider_config()])
    return parsed


def test_rs256_verification_matches_a_real_signer() -> None:
    (key,) = provider().keys
    token = ISSUER.token()
    head, body, _ = token.split(".")
    signature = identity._b64url_decode(token.split(".")[2])
    assert identity.verify_rs256(key, f"{head}.{body}".encode(), signature)
    assert not identity.verify_rs256(key, f"{head}.{body}x".encode(), signature)
    assert not identity.verify_rs256(key, f"{head}.{body}".encode(), signature[:-1])
    assert not identity.verify_rs256(key, f"{head}.{body}".encode(), bytes(len(signature)))


def test_verified_claims_and_leeway() -> None:
    claims = identity.verify_web_identity(provider(), ISSUER.token("me"), time.time())
    assert claims["sub"] == "me"
    # Within the leeway an expired token still passes; beyond it, it does not.
    token = ISSUER.token("me", lifetime=-30)
    assert identity.verify_web_identity(provider(), token, time.time())
    with pytest.raises(ApiError, match="expired"):
        identity.verify_web_identity(provider(), ISSUER.token("me", lifetime=-120), time.time())


def test_a_token_without_kid_is_tried_against_every_key() -> None:
    token = ISSUER.sign({"alg": "RS256"}, {"iss": ISSUER.issuer, "aud": "sts.cloud.tencent.com", "exp": 2**40})
    assert identity.verify_web_identity(provider(), token, time.time())


def test_session_request_rules() -> None:
    (role,) = identity.parse_roles([{**role_config(OWNER, "r"), "maxSessionDuration": 3600}], [OWNER], [])
    assert identity.check_session_request(role, "ok", None) == 3600  # the default, capped by the role
    assert identity.check_session_request(role, "a=b,c.d@e_f-g", 60) == 60
    with pytest.raises(ApiError) as info:
        identity.check_session_request(role, "ok", 3601)
    assert info.value.code == "InvalidParameter.OverTimeError"


def test_roles_trust_their_own_account_unless_a_provider_is_named() -> None:
    own, oidc = identity.parse_roles(
        [role_config(OWNER, "keys"), role_config(OWNER, "oidc", providers=[PROVIDER_ID])], [OWNER], [PROVIDER_ID]
    )
    assert own.trusted_accounts == (OWNER,) and own.oidc_providers == ()
    assert oidc.trusted_accounts == () and oidc.oidc_providers == (PROVIDER_ID,)
    assert own.arn == f"qcs::cam::uin/{OWNER}:roleName/keys"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"roles": [role_config("999", "r")]}, "not one of the configured accounts"),
        ({"roles": [role_config(OWNER, "r", providers=["nope"])]}, "unknown OIDC providers"),
        ({"roles": [role_config(OWNER, "bad name")]}, "roleName"),
        ({"roles": [{"roleName": "r"}]}, "needs accountId and roleName"),
        ({"oidcProviders": [{"providerId": "p", "issuer": "i"}]}, "needs providerId, issuer and jwks"),
        ({"oidcProviders": [{"providerId": "p", "issuer": "i", "jwks": {"keys": [{"kty": "EC"}]}}]}, "RSA"),
    ],
)
def test_config_errors_name_the_entry(tmp_path: Path, config: dict[str, object], message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=message):
        load_config(path)
