"""Which namespace may act as which account: the namespaces allowed to use the operator's default
credentials (a label selector), and what an object is told when it may not use them or when RBAC keeps
its Secret from the operator.

The selector grammar is Kubernetes' (``key=value``, ``key!=value``, ``key in (a,b)``, ``key notin (a)``,
``key``, ``!key``, joined by commas), parsed and matched here so that a typo fails at start-up.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

DEFAULT_ACCOUNT_LABEL = "cvm.operator.dev/default-account"
DEFAULT_ACCOUNT_SELECTOR = f"{DEFAULT_ACCOUNT_LABEL}=allowed"
TENANT_COMPONENT = "manifests/components/tenant"

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY_RE = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}$")
_VALUE_RE = re.compile(rf"^({_NAME})?$")
_EXISTS_RE = re.compile(r"^(?P<negate>!)?\s*(?P<key>[^\s!=(),]+)$")
_EQUALITY_RE = re.compile(r"^(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)$")
_SET_RE = re.compile(r"^(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")


class SelectorError(ValueError):
    """The label selector cannot be parsed."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    """``in``, ``notin``, ``exists`` or ``!exists`` (``=`` is ``in`` with one value, ``!=`` is ``notin``)."""
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator == "in":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    def __str__(self) -> str:
        return self.text


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in {text!r}")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise SelectorError(f"unbalanced '(' in {text!r}")
    parts.append(current)
    return [part.strip() for part in parts]


def _key(key: str, text: str) -> str:
    if len(key) > 316 or not _KEY_RE.match(key):
        raise SelectorError(f"{key!r} is not a valid label key in {text!r}")
    return key


def _values(values: list[str], text: str) -> frozenset[str]:
    for value in values:
        if not _VALUE_RE.match(value):
            raise SelectorError(f"{value!r} is not a valid label value in {text!r}")
    return frozenset(values)


def parse_selector(text: str) -> LabelSelector:
    """Parse a label selector; raises :class:`SelectorError` with the offending part."""
    if not text.strip():
        raise SelectorError("the selector is empty (it would allow every namespace)")
    requirements = []
    for part in _split(text):
        if not part:
            raise SelectorError(f"empty requirement in {text!r}")
        if match := _SET_RE.match(part):
            values = [value.strip() for value in match["values"].split(",")]
            requirements.append(Requirement(_key(match["key"], text), match["op"], _values(values, text)))
        elif match := _EQUALITY_RE.match(part):
            operator = "notin" if match["op"] == "!=" else "in"
            requirements.append(Requirement(_key(match["key"], text), operator, _values([match["value"]], text)))
        elif match := _EXISTS_RE.match(part):
            operator = "!exists" if match["negate"] else "exists"
            requirements.append(Requirement(_key(match["key"], text), operator))
        else:
            raise SelectorError(f"cannot parse {part!r} in {text!r}")
    return LabelSelector(text.strip(), tuple(requirements))


def no_credentials_message(namespace: str, selector: LabelSelector) -> str:
    return (
        f"no credentialsSecretRef, and namespace {namespace!r} may not use the operator's default account: "
        f"only namespaces matching {selector} may (e.g. `kubectl label namespace {namespace} "
        f"{_example_label(selector)}`); or name a Secret with the account's keys in spec.credentialsSecretRef"
    )


def _example_label(selector: LabelSelector) -> str:
    for requirement in selector.requirements:
        if requirement.operator == "in" and len(requirement.values) == 1:
            return f"{requirement.key}={next(iter(requirement.values))}"
    return str(selector)


def secret_forbidden_message(namespace: str, name: str, field: str) -> str:
    return (
        f"{field}: the operator may not read Secret {name!r} in namespace {namespace!r} (RBAC). "
        f"Grant it in this namespace with the kustomize component {TENANT_COMPONENT} "
        f"(a Role with get on secrets, bound to the operator's ServiceAccount), or with "
        f"`kubectl create role cvm-operator-secrets --verb=get --resource=secrets -n {namespace}` "
        f"and `kubectl create rolebinding cvm-operator-secrets --role=cvm-operator-secrets "
        f"--serviceaccount=cvm-operator-system:cvm-operator -n {namespace}`"
    )


LabelsLookup = Callable[[str], Awaitable[Mapping[str, str] | None]]


class NamespaceGate:
    """Answers "may this namespace use the default account?" from the namespace's labels.

    A yes is remembered for ``ttl`` seconds (objects of an allowed namespace poll often), or until the
    namespace changes; a no is asked again each time. The operator watches namespaces, so labelling one
    runs its objects that were refused again at once.
    """

    def __init__(
        self,
        selector: LabelSelector,
        labels: LabelsLookup,
        *,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.selector = selector
        self._labels = labels
        self._ttl = ttl
        self._clock = clock
        self._allowed_until: dict[str, float] = {}

    async def allows(self, namespace: str) -> bool:
        now = self._clock()
        if self._allowed_until.get(namespace, 0.0) > now:
            return True
        labels = await self._labels(namespace)
        allowed = labels is not None and self.selector.matches(labels)
        if allowed:
            self._allowed_until[namespace] = now + self._ttl
        else:
            self._allowed_until.pop(namespace, None)
        return allowed

    def forget(self, namespace: str) -> None:
        """The namespace changed (its labels may have): ask again at the next pass."""
        self._allowed_until.pop(namespace, None)
