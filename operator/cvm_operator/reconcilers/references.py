"""What an object names elsewhere: a Ready Image (its cloud image), a password in a Secret, its controller."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cvm_operator.api import API_VERSION, IMAGES
from cvm_operator.api import LoginSettings as LoginSpec
from cvm_operator.api.instance import USER_DATA_MAX, UserData
from cvm_operator.cloud import LoginSettings
from cvm_operator.kube import Forbidden
from cvm_operator.reconcilers.outcomes import Blocked, ObjectKey, Waiting
from cvm_operator.reconcilers.runtime import Runtime

IMAGE_KIND = "Image"


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """Names the object that controls another, so Kubernetes' garbage collector deletes it with its owner."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


@dataclass(frozen=True)
class ImageTarget:
    """A cloud image named by an object: its id and region."""

    image_id: str
    region: str


def is_ready(body: Mapping[str, Any]) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def ready_image(runtime: Runtime, namespace: str, name: str) -> ImageTarget:
    """The cloud image of a Ready Image object; Waiting (woken when the Image changes) otherwise."""
    key = ObjectKey(IMAGE_KIND, namespace, name)
    body = await runtime.read(IMAGES, key)
    if body is None:
        raise Waiting("ImageNotReady", f"Image {name!r} does not exist yet", on=key)
    image_id = (body.get("status") or {}).get("imageId")
    region = (body.get("spec") or {}).get("region")
    if not is_ready(body) or not image_id or not region:
        raise Waiting("ImageNotReady", f"waiting for Image {name!r} to be Ready", on=key)
    return ImageTarget(str(image_id), str(region))


def image_ready(body: Mapping[str, Any]) -> str | None:
    """The cloud image id of an Image object that is Ready, else None."""
    image_id = (body.get("status") or {}).get("imageId")
    return str(image_id) if is_ready(body) and image_id else None


def decode_secret_value(data: dict[str, str], key: str) -> str | None:
    """A Secret's data value (base64 on the wire) as text, or None when the key is absent."""
    encoded = data.get(key)
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise ValueError(f"key {key!r} is not base64-encoded UTF-8 text") from error


async def login_settings(
    runtime: Runtime, namespace: str, login: LoginSpec | None, field: str = "spec.loginSettings"
) -> LoginSettings:
    """The cloud login settings of a spec's loginSettings, reading the password Secret when it names one.
    Without loginSettings none are sent, and the cloud sets a random password."""
    if login is None:
        return LoginSettings()
    if login.key_ids:
        return LoginSettings(key_ids=tuple(login.key_ids))
    if login.keep_image_login:
        return LoginSettings(keep_image_login=True)
    ref = login.password_secret_ref
    assert ref is not None
    data = await runtime.secret_data(namespace, ref.name, f"{field}.passwordSecretRef")
    where = f"{field}.passwordSecretRef: Secret {ref.name!r}"
    if data is None:
        raise Blocked("SecretNotFound", f"{where} not found")
    try:
        password = decode_secret_value(data, ref.key)
    except ValueError as error:
        raise Blocked("InvalidSecret", f"{where}: {error}") from error
    if password is None:
        raise Blocked("SecretKeyNotFound", f"{where} has no key {ref.key!r}")
    return LoginSettings(password=password)


async def user_data(runtime: Runtime, namespace: str, spec: UserData, field: str = "spec.userData") -> str:
    """The user data a spec names, base64-encoded as the cloud takes it. Its content never goes into a
    message: only names, keys and sizes do."""
    if spec.secret_ref is not None:
        name, key = spec.secret_ref.name, spec.secret_ref.key
        where = f"{field}.secretRef: Secret {name!r}"
        data = await runtime.secret_data(namespace, name, f"{field}.secretRef")
        if data is None:
            raise Blocked("SecretNotFound", f"{where} not found")
        encoded = data.get(key)  # Secret data is base64 already
    else:
        assert spec.config_map_ref is not None
        name, key = spec.config_map_ref.name, spec.config_map_ref.key
        where = f"{field}.configMapRef: ConfigMap {name!r}"
        try:
            found = await runtime.kube.config_map_data(namespace, name)
        except Forbidden as error:
            raise Blocked(
                "ConfigMapForbidden",
                f"{where}: the operator may not read ConfigMaps in namespace {namespace!r} "
                "(grant get on configmaps there, e.g. with the tenant component)",
            ) from error
        if found is None:
            raise Blocked("ConfigMapNotFound", f"{where} not found")
        text, binary = found
        # data holds text, binaryData base64 already
        encoded = base64.b64encode(text[key].encode("utf-8")).decode("ascii") if key in text else binary.get(key)
    if encoded is None:
        raise Blocked("UserDataKeyNotFound", f"{where} has no key {key!r}")
    if len(encoded) > USER_DATA_MAX:
        raise Blocked(
            "UserDataTooLarge",
            f"{where} key {key!r}: the user data is {len(encoded)} bytes after base64, "
            f"more than the cloud's {USER_DATA_MAX}",
        )
    return encoded
