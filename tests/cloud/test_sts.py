"""STS in the cloud layer: the caller's account id, asked once per credentials and cached."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from cvm_operator.cloud import CallerIdentity, CloudError, CloudPool, Credentials, ErrorClass
from tests.support.emulator import EmulatorProcess, free_port


def credentials(emulator: EmulatorProcess, account: int = 0) -> Credentials:
    acc = emulator.accounts[account]
    return Credentials(acc.secret_id, acc.secret_key)


def calls_counted(code: str) -> float:
    labels = {"action": "GetCallerIdentity", "result": code}
    return REGISTRY.get_sample_value("cvm_operator_cloud_api_calls_total", labels) or 0.0


# ---------------------------------------------------------------- pure parts


def test_caller_identity_reads_the_response() -> None:
    identity = CallerIdentity.from_api(
        {"AccountId": "100000000001", "UserId": "7", "PrincipalId": "8", "Type": "CAMUser",
         "Arn": "qcs::cam::uin/100000000001:uin/7", "RequestId": "r"}
    )  # fmt: skip
    assert identity == CallerIdentity("100000000001", "7", "8", "CAMUser", "qcs::cam::uin/100000000001:uin/7")
    for bad in ({}, {"AccountId": ""}, {"AccountId": "uin/1"}):
        with pytest.raises(CloudError) as info:
            CallerIdentity.from_api(bad)
        assert info.value.action == "GetCallerIdentity" and info.value.error_class is ErrorClass.TRANSIENT


# ---------------------------------------------------------------- against the emulator


@pytest.fixture
async def pool(emulator: EmulatorProcess) -> AsyncIterator[CloudPool]:
    async with CloudPool(emulator.endpoint) as cloud_pool:
        yield cloud_pool


@pytest.mark.emulator
async def test_account_id_is_asked_once_per_credentials(pool: CloudPool, emulator: EmulatorProcess) -> None:
    first, second = credentials(emulator, 0), credentials(emulator, 1)
    sent_before = emulator.request_count("GetCallerIdentity", "OK")
    counted_before = calls_counted("OK")

    # Concurrent first callers share one call.
    answers = await asyncio.gather(*(pool.account_id(first) for _ in range(5)))
    assert answers == [emulator.accounts[0].account_id] * 5
    assert await pool.account_id(first) == emulator.accounts[0].account_id
    assert emulator.request_count("GetCallerIdentity", "OK") == sent_before + 1
    assert calls_counted("OK") == counted_before + 1

    # Other credentials are other accounts, asked on their own.
    assert await pool.account_id(second) == emulator.accounts[1].account_id
    assert emulator.request_count("GetCallerIdentity", "OK") == sent_before + 2


@pytest.mark.emulator
async def test_account_id_failures_are_classified_and_not_cached(pool: CloudPool, emulator: EmulatorProcess) -> None:
    good = credentials(emulator)
    wrong_key = Credentials(good.secret_id, "not-the-secret-key")
    with pytest.raises(CloudError) as info:
        await pool.account_id(wrong_key)
    assert info.value.code == "AuthFailure.SignatureFailure" and info.value.action == "GetCallerIdentity"
    assert info.value.error_class is ErrorClass.USER and info.value.request_id
    assert calls_counted("AuthFailure.SignatureFailure") >= 1
    with pytest.raises(CloudError) as info:
        await pool.account_id(Credentials("AKIDnobodyHasThisKey", "secret"))
    assert info.value.code == "AuthFailure.SecretIdNotFound"
    # A failure is asked again next time, and then succeeds with the right key.
    before = emulator.request_count("GetCallerIdentity")
    with pytest.raises(CloudError):
        await pool.account_id(wrong_key)
    assert emulator.request_count("GetCallerIdentity") == before + 1
    assert await pool.account_id(good) == emulator.accounts[0].account_id


async def test_account_id_without_a_server_is_transient() -> None:
    async with CloudPool(f"http://127.0.0.1:{free_port()}", request_timeout=5) as pool:
        with pytest.raises(CloudError) as info:
            await pool.account_id(Credentials("AKIDsomeone", "secret"))
    assert info.value.transient and info.value.action == "GetCallerIdentity"


@pytest.mark.emulator
async def test_pool_close_closes_sts_clients(emulator: EmulatorProcess) -> None:
    pool = CloudPool(emulator.endpoint)
    await pool.account_id(credentials(emulator))
    sts = pool._sts_apis[credentials(emulator)]
    await pool.close()
    assert sts._client.http_client.is_closed
    with pytest.raises(RuntimeError):
        await pool.account_id(credentials(emulator, 1))
