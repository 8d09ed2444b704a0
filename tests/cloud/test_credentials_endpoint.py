"""Credentials decoding and endpoint parsing (pure)."""

from __future__ import annotations

import base64

import pytest

from cvm_operator.cloud.credentials import (
    Credentials,
    CredentialsError,
    credentials_from_secret_data,
    default_credentials,
)
from cvm_operator.cloud.endpoint import Endpoint, EndpointError, endpoint_from_options, parse_endpoint


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_credentials_from_secret_data_decodes_and_strips_newline() -> None:
    creds = credentials_from_secret_data({"secretId": b64("AKIDabc\n"), "secretKey": b64("key123")})
    assert creds == Credentials("AKIDabc", "key123")
    assert creds.token is None


def test_credentials_from_secret_data_with_token() -> None:
    creds = credentials_from_secret_data({"secretId": b64("a"), "secretKey": b64("b"), "token": b64("t")})
    assert creds.token == "t"


def test_credentials_missing_key_names_it_without_values() -> None:
    with pytest.raises(CredentialsError, match="secretKey") as info:
        credentials_from_secret_data({"secretId": b64("AKIDvisible")})
    assert "AKIDvisible" not in str(info.value)
    with pytest.raises(CredentialsError, match="secretId, secretKey"):
        credentials_from_secret_data(None)


@pytest.mark.parametrize("bad", ["not base64!!", b64("   "), base64.b64encode(b"\xff\xfe").decode()])
def test_credentials_reject_undecodable_or_empty(bad: str) -> None:
    with pytest.raises(CredentialsError, match="secretKey"):
        credentials_from_secret_data({"secretId": b64("id"), "secretKey": bad})


def test_credentials_repr_hides_secrets() -> None:
    creds = Credentials("AKIDpublic", "very-secret-key", "session-token")
    text = repr(creds)
    assert "AKIDpublic" in text
    assert "very-secret-key" not in text and "session-token" not in text


def test_credentials_are_hashable_cache_keys() -> None:
    assert len({Credentials("a", "b"), Credentials("a", "b"), Credentials("a", "c")}) == 2


def test_default_credentials_from_environment() -> None:
    env = {"TENCENTCLOUD_SECRET_ID": "AKIDx", "TENCENTCLOUD_SECRET_KEY": "k"}
    assert default_credentials(env) == Credentials("AKIDx", "k")
    assert default_credentials({}) is None
    with pytest.raises(CredentialsError, match="TENCENTCLOUD_SECRET_ID"):
        default_credentials({"TENCENTCLOUD_SECRET_KEY": "k"})
    with pytest.raises(CredentialsError, match="TENCENTCLOUD_SECRET_KEY"):
        default_credentials({"TENCENTCLOUD_SECRET_ID": "AKIDx"})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9000", Endpoint("http", "127.0.0.1:9000")),
        ("http://127.0.0.1:9000/", Endpoint("http", "127.0.0.1:9000")),
        ("https://cvm.tencentcloudapi.com", Endpoint("https", "cvm.tencentcloudapi.com")),
        ("HTTP://LocalHost:8080", Endpoint("http", "localhost:8080")),
        ("http://[::1]:9000", Endpoint("http", "[::1]:9000")),
        ("  http://emulator.svc:80  ", Endpoint("http", "emulator.svc:80")),
    ],
)
def test_parse_endpoint(url: str, expected: Endpoint) -> None:
    assert parse_endpoint(url) == expected


def test_parse_endpoint_none_means_real_cloud() -> None:
    assert parse_endpoint(None) is None
    assert parse_endpoint("") is None


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:9000",
        "ftp://127.0.0.1:9000",
        "http://",
        "http://user:pw@127.0.0.1:9000",
        "http://127.0.0.1:9000/api",
        "http://127.0.0.1:9000?x=1",
        "http://127.0.0.1:notaport",
    ],
)
def test_parse_endpoint_rejects(url: str) -> None:
    with pytest.raises(EndpointError):
        parse_endpoint(url)


def test_endpoint_round_trips_to_url() -> None:
    endpoint = parse_endpoint("http://127.0.0.1:9000")
    assert endpoint is not None and endpoint.url == "http://127.0.0.1:9000"


def test_endpoint_option_wins_over_environment() -> None:
    env = {"CVM_ENDPOINT": "http://127.0.0.1:1"}
    assert endpoint_from_options("http://127.0.0.1:2", env) == "http://127.0.0.1:2"
    assert endpoint_from_options(None, env) == "http://127.0.0.1:1"
    assert endpoint_from_options(None, {}) is None
