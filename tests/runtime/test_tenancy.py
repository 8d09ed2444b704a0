"""Which namespaces may use the default account: label selectors, the cached namespace gate, messages."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from cvm_operator.tenancy import (
    DEFAULT_ACCOUNT_SELECTOR,
    NamespaceGate,
    SelectorError,
    no_credentials_message,
    parse_selector,
    secret_forbidden_message,
)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (DEFAULT_ACCOUNT_SELECTOR, {"cvm.operator.dev/default-account": "allowed"}, True),
        (DEFAULT_ACCOUNT_SELECTOR, {"cvm.operator.dev/default-account": "denied"}, False),
        (DEFAULT_ACCOUNT_SELECTOR, {}, False),
        ("team==web", {"team": "web"}, True),
        ("team!=web", {}, True),
        ("team!=web", {"team": "web"}, False),
        ("team in (web, db)", {"team": "db"}, True),
        ("team in (web,db)", {"team": "ops"}, False),
        ("team notin (web,db)", {"team": "ops"}, True),
        ("team notin (web,db)", {}, True),
        ("team", {"team": ""}, True),
        ("!team", {"team": "x"}, False),
        ("!team", {}, True),
        ("env=prod, team in (web,db), !frozen", {"env": "prod", "team": "web"}, True),
        ("env=prod, team in (web,db), !frozen", {"env": "prod", "team": "web", "frozen": "1"}, False),
        ("example.com/tier=", {"example.com/tier": ""}, True),
    ],
)
def test_selectors_match_like_kubernetes(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(selector).matches(labels) is expected


@pytest.mark.parametrize(
    "selector", ["", "  ", "a=b,", "a in (b", "a in b)", "a=b=c", "-bad=1", "a=" + "x" * 64, "UPPER.com/x=1", "a b"]
)
def test_bad_selectors_are_refused(selector: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(selector)


def test_messages_name_the_label_and_the_grant() -> None:
    message = no_credentials_message("team-a", parse_selector(DEFAULT_ACCOUNT_SELECTOR))
    assert "kubectl label namespace team-a cvm.operator.dev/default-account=allowed" in message
    assert "credentialsSecretRef" in message
    forbidden = secret_forbidden_message("team-a", "keys", "spec.credentialsSecretRef")
    assert "manifests/components/tenant" in forbidden and "-n team-a" in forbidden
    assert forbidden.startswith("spec.credentialsSecretRef: the operator may not read Secret 'keys'")


async def test_the_gate_remembers_a_yes_and_asks_again_after_a_no() -> None:
    labels: dict[str, dict[str, str]] = {"a": {}, "b": {"cvm.operator.dev/default-account": "allowed"}}
    asked: list[str] = []
    now = [0.0]

    async def lookup(namespace: str) -> Mapping[str, str] | None:
        asked.append(namespace)
        return labels.get(namespace)

    gate = NamespaceGate(parse_selector(DEFAULT_ACCOUNT_SELECTOR), lookup, ttl=30, clock=lambda: now[0])
    assert not await gate.allows("a")
    assert not await gate.allows("missing")
    assert await gate.allows("b")
    assert await gate.allows("b")
    assert asked == ["a", "missing", "b"]
    labels["a"] = dict(labels["b"])
    assert await gate.allows("a")  # a no is never remembered
    labels["b"] = {}
    assert await gate.allows("b")  # a yes is, for the ttl
    now[0] = 31
    assert not await gate.allows("b")
    assert await gate.allows("a")
    labels["a"] = {}
    gate.forget("a")  # its watch event: the remembered yes goes at once
    assert not await gate.allows("a")
