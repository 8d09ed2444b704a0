"""The operator's ClusterRole grants what it uses and nothing else (`kubectl auth can-i --as` the ServiceAccount)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ship.conftest import SERVICE_ACCOUNT_USER
from tests.support.kube import kubectl

KINDS = ("images", "imageshares", "imagecopies", "instances", "imageschedules", "instancesets")
GROUP = "cvm.operator.dev"

ALLOWED = [
    *[(verb, f"{kind}.{GROUP}", None) for kind in KINDS for verb in ("get", "list", "watch", "patch", "update")],
    *[("patch", f"{kind}.{GROUP}", "status") for kind in KINDS],
    ("create", f"images.{GROUP}", None),  # an ImageCopy and an ImageSchedule make Image objects
    ("delete", f"images.{GROUP}", None),
    ("create", f"imagecopies.{GROUP}", None),  # an ImageSchedule copies and shares its images
    ("create", f"imageshares.{GROUP}", None),
    ("delete", f"imageshares.{GROUP}", None),  # an Image being deleted removes the shares it owns
    ("create", f"instances.{GROUP}", None),  # an InstanceSet makes and removes its replicas
    ("delete", f"instances.{GROUP}", None),
    ("get", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("list", "namespaces", None),
    ("watch", "namespaces", None),
    ("create", "events", None),
    ("patch", "events", None),
    # Kopf's peering between replicas: the first one makes the peering object.
    *[
        (verb, f"{kind}.kopf.dev", None)
        for kind in ("clusterkopfpeerings", "kopfpeerings")
        for verb in ("get", "list", "watch", "patch", "create")
    ],
]

DENIED = [
    # No Secret anywhere: a namespace grants get on its own with the tenant component (test_tenant.py).
    ("get", "secrets", None),
    ("list", "secrets", None),
    ("watch", "secrets", None),
    ("create", "secrets", None),
    ("update", "secrets", None),
    ("delete", "secrets", None),
    # Kinds it does not manage.
    ("get", "configmaps", None),
    ("get", "pods", None),
    ("create", "pods", None),
    ("get", "deployments.apps", None),
    ("patch", "deployments.apps", None),
    ("get", "serviceaccounts", None),
    ("create", "serviceaccounts", "token"),
    ("get", "nodes", None),
    ("delete", "namespaces", None),
    ("create", "clusterroles.rbac.authorization.k8s.io", None),
    ("create", "rolebindings.rbac.authorization.k8s.io", None),
    ("create", "leases.coordination.k8s.io", None),
    # Its own kinds: it never creates or deletes what users own, except the objects of ImageCopy, ImageSchedule
    # and InstanceSet.
    *[(verb, f"{kind}.{GROUP}", None) for kind in ("imageschedules", "instancesets") for verb in ("create", "delete")],
    ("update", f"instancesets.{GROUP}", "scale"),
    ("delete", f"imagecopies.{GROUP}", None),
    ("update", f"images.{GROUP}", "status"),
    ("update", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("get", "events", None),
    ("delete", "events", None),
    ("delete", "clusterkopfpeerings.kopf.dev", None),
    ("update", "kopfpeerings.kopf.dev", None),
]


def can_i(verb: str, resource: str, subresource: str | None, namespace: str) -> str:
    args = ["auth", "can-i", verb, resource, f"--as={SERVICE_ACCOUNT_USER}", "-n", namespace]
    if subresource:
        args.append(f"--subresource={subresource}")
    return kubectl(*args, check=False).stdout.strip()


@pytest.mark.parametrize(("verb", "resource", "subresource"), ALLOWED)
def test_service_account_can(
    operator_rbac: Any, namespace: str, verb: str, resource: str, subresource: str | None
) -> None:
    assert can_i(verb, resource, subresource, namespace) == "yes"


@pytest.mark.parametrize(("verb", "resource", "subresource"), DENIED)
def test_service_account_cannot(
    operator_rbac: Any, namespace: str, verb: str, resource: str, subresource: str | None
) -> None:
    assert can_i(verb, resource, subresource, namespace) == "no"


def test_everything_granted_is_listed(operator_rbac: Any, namespace: str) -> None:
    """`can-i --list` shows no rule beyond the ones tested above (plus what every authenticated user has)."""
    listing = kubectl("auth", "can-i", "--list", f"--as={SERVICE_ACCOUNT_USER}", "-n", namespace).stdout
    granted = {line.split()[0] for line in listing.splitlines()[1:] if line.strip()}
    expected = {f"{resource}/{sub}" if sub else resource for _, resource, sub in ALLOWED}
    everyone = {
        "selfsubjectreviews.authentication.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
    }
    extra = {resource for resource in granted if not resource.startswith("[") and resource not in expected | everyone}
    assert not extra, f"the ServiceAccount is granted more than the operator uses: {sorted(extra)}\n{listing}"
