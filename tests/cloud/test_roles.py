"""Role-based default credentials in the cloud layer: the SDK's STSAssumeRoleCredential and
OIDCRoleArnCredential against the emulator's STS, renewed before expiry, off the event loop, and sent
with X-TC-Token."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from cvm_operator.cloud import (
    CloudError,
    CloudPool,
    Credentials,
    CredentialsError,
    RoleCredentials,
    RoleSettings,
    build_default_credentials,
    plan_default_credentials,
)
from cvm_operator.cloud.roles import CREDENTIALS_UNAVAILABLE, AssumeRolePlan, WebIdentityPlan
from tests.support.emulator import BUILTIN_ACCOUNTS, EmulatorProcess
from tests.support.oidc import PROVIDER_ID, Issuer, role_arn, role_config

OWNER = BUILTIN_ACCOUNTS[0].account_id
KEYS = {"TENCENTCLOUD_SECRET_ID": BUILTIN_ACCOUNTS[1].secret_id, "TENCENTCLOUD_SECRET_KEY": "k"}
OPERATOR_ROLE = role_arn(OWNER, "operator")
WORKLOAD_ROLE = role_arn(OWNER, "workload")
ISSUER = Issuer()


# ---------------------------------------------------------------- which credentials (pure)


def tke_env(token_file: str = "/var/run/token") -> dict[str, str]:
    return {"TKE_REGION": "ap-guangzhou", "TKE_PROVIDER_ID": PROVIDER_ID, "TKE_WEB_IDENTITY_TOKEN_FILE": token_file,
            "TKE_ROLE_ARN": WORKLOAD_ROLE}  # fmt: skip


def test_plans_follow_the_sdk_order() -> None:
    none = RoleSettings()
    assert plan_default_credentials(none, {}) is None
    assert plan_default_credentials(none, KEYS) == Credentials(KEYS["TENCENTCLOUD_SECRET_ID"], "k")
    # Keys in the environment win over a web identity, as in the SDK's DefaultCredentialProvider.
    assert isinstance(plan_default_credentials(none, {**KEYS, **tke_env()}), Credentials)
    assert plan_default_credentials(none, tke_env()) == WebIdentityPlan(WORKLOAD_ROLE, "cvm-operator", 7200)
    assume = RoleSettings(OPERATOR_ROLE, "ops", 900)
    assert plan_default_credentials(assume, KEYS) == AssumeRolePlan(
        Credentials(KEYS["TENCENTCLOUD_SECRET_ID"], "k"), OPERATOR_ROLE, "ops", 900
    )


def test_plan_errors_say_what_is_missing() -> None:
    with pytest.raises(CredentialsError, match="needs TENCENTCLOUD_SECRET_ID"):
        plan_default_credentials(RoleSettings(OPERATOR_ROLE), {})
    partial = {key: value for key, value in tke_env().items() if key != "TKE_ROLE_ARN"}
    with pytest.raises(CredentialsError, match="TKE_ROLE_ARN not"):
        plan_default_credentials(RoleSettings(), partial)


def test_role_settings_from_flags_and_environment() -> None:
    env = {"TENCENTCLOUD_ASSUME_ROLE_ARN": OPERATOR_ROLE, "TENCENTCLOUD_ASSUME_ROLE_SESSION_DURATION": "900"}
    assert RoleSettings.from_options(None, None, None, env) == RoleSettings(OPERATOR_ROLE, "cvm-operator", 900)
    assert RoleSettings.from_options("arn-flag", "s", 60, env) == RoleSettings("arn-flag", "s", 60)
    with pytest.raises(CredentialsError):
        RoleSettings.from_options(None, None, 43201, {})
    with pytest.raises(CredentialsError):
        RoleSettings.from_options(None, None, None, {"TENCENTCLOUD_ASSUME_ROLE_SESSION_DURATION": "2h"})


def test_role_credentials_never_show_keys() -> None:
    credentials = RoleCredentials(object(), action="AssumeRole", role_arn=OPERATOR_ROLE)
    assert repr(credentials) == f"RoleCredentials({OPERATOR_ROLE!r}, AssumeRole)"
    with pytest.raises(CloudError) as info:
        credentials.get_credential_info()
    assert info.value.code == CREDENTIALS_UNAVAILABLE


# ---------------------------------------------------------------- against the emulator


def sts_config(**extra: Any) -> dict[str, Any]:
    return {
        "oidcProviders": [ISSUER.provider_config()],
        "roles": [
            role_config(OWNER, "operator", accounts=[OWNER, BUILTIN_ACCOUNTS[1].account_id]),
            role_config(OWNER, "workload", providers=[PROVIDER_ID]),
        ],
        **extra,
    }


def sessions(emulator: EmulatorProcess) -> list[tuple[float, float]]:
    """(issued, expires) of every session the emulator issued, oldest first."""
    with sqlite3.connect(emulator.db) as conn:
        return [(float(a), float(b)) for a, b in conn.execute(
            "SELECT created_at, expires_at FROM sts_sessions ORDER BY created_at")]  # fmt: skip


def web_identity(emulator: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, duration: int) -> Any:
    token_file = tmp_path / "token"
    token_file.write_text(ISSUER.token())
    for key, value in tke_env(str(token_file)).items():
        monkeypatch.setenv(key, value)  # the SDK class reads the TKE_* variables itself
    plan = plan_default_credentials(RoleSettings(duration=duration), tke_env(str(token_file)))
    return build_default_credentials(plan, emulator.endpoint)


@pytest.mark.emulator
async def test_assume_role_keys_act_as_the_role_account(emulator_factory: Any) -> None:
    emulator: EmulatorProcess = emulator_factory(config=sts_config())
    keys = BUILTIN_ACCOUNTS[1]
    plan = AssumeRolePlan(Credentials(keys.secret_id, keys.secret_key), OPERATOR_ROLE, "cvm-operator", 900)
    credentials = build_default_credentials(plan, emulator.endpoint)
    assert isinstance(credentials, RoleCredentials)
    async with CloudPool(emulator.endpoint) as pool:
        assert await pool.account_id(credentials) == OWNER
        zones = await pool.api(credentials, "ap-guangzhou").describe_zones()
        assert zones
    assert credentials.renewals == 1
    assert emulator.request_count("AssumeRole", "OK") == 1
    assert emulator.request_count(code="AuthFailure.TokenFailure") == 0


@pytest.mark.emulator
async def test_web_identity_keys_are_renewed_before_they_expire(
    emulator_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator: EmulatorProcess = emulator_factory(config=sts_config())
    # The SDK class renews with a tenth of the lifetime left, on whole seconds: 20 s keys last 18-19 s.
    credentials = web_identity(emulator, tmp_path, monkeypatch, duration=20)
    assert isinstance(credentials, RoleCredentials)
    async with CloudPool(emulator.endpoint) as pool:
        api = pool.api(credentials, "ap-guangzhou")
        deadline = time.monotonic() + 23
        while time.monotonic() < deadline:
            assert await api.describe_zones()
            await asyncio.sleep(0.2)
    issued = sessions(emulator)
    assert credentials.renewals == len(issued) == 2, issued
    for (_, expires), (renewed, _) in itertools.pairwise(issued):
        assert renewed < expires, issued
    assert emulator.request_count("AssumeRoleWithWebIdentity", "OK") == len(issued)
    assert emulator.request_count(code="AuthFailure.TokenFailure") == 0


@pytest.mark.emulator
async def test_renewal_runs_off_the_event_loop(
    emulator_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator: EmulatorProcess = emulator_factory(config=sts_config(latencyMs=400))
    credentials = web_identity(emulator, tmp_path, monkeypatch, duration=900)
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await credentials.refresh_if_due()
    ticker.cancel()
    assert credentials.renewals == 1
    assert max(gaps) < 0.2, f"the event loop stalled for {max(gaps):.3f}s during a renewal"


@pytest.mark.emulator
async def test_a_refused_role_is_a_user_error_never_a_missing_resource(
    emulator_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator: EmulatorProcess = emulator_factory(config=sts_config())
    keys = BUILTIN_ACCOUNTS[2]  # not trusted by the role
    plan = AssumeRolePlan(Credentials(keys.secret_id, keys.secret_key), OPERATOR_ROLE, "cvm-operator", 900)
    credentials = build_default_credentials(plan, emulator.endpoint)
    async with CloudPool(emulator.endpoint) as pool:
        with pytest.raises(CloudError) as info:
            await pool.api(credentials, "ap-guangzhou").describe_instance("ins-12345678")  # type: ignore[arg-type]
    error = info.value
    assert error.code == CREDENTIALS_UNAVAILABLE and "UnauthorizedOperation" in str(error)
    assert not error.transient and not error.not_found
    assert error.request_id

    # A web identity whose token file is gone is refused the same way, at the next renewal.
    web = web_identity(emulator, tmp_path, monkeypatch, duration=1)
    await web.refresh_if_due()
    (tmp_path / "token").unlink()
    await asyncio.sleep(1.1)
    with pytest.raises(CloudError) as info:
        await web.refresh_if_due()
    assert info.value.code == CREDENTIALS_UNAVAILABLE and "token" in str(info.value)
