"""A small COS-style object store: the disk files ImportImage reads.

Objects are PUT and GET under ``/<bucket>/<key>`` on the emulator's own address, or host-style with a
``Host: <bucket>.cos.<region>.myqcloud.com`` header; they live in files beside the database. ImportImage
takes the URLs COS gives its objects (``https://<bucket>.cos.<region>.myqcloud.com/<key>``, read from
here) and path-style URLs on the emulator's address. Any other URL is refused as the cloud refuses a
URL that is not a COS object, unless the emulator runs with ``--allow-any-import-url``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import ApiError

COS_HOST_RE = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9-]{0,49})\.cos\.(?P<region>[a-z0-9-]+)\.myqcloud\.com$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str


def split_path(path: str) -> ObjectRef | None:
    """``/<bucket>/<key>`` of a path-style request, or None."""
    parts = unquote(path).lstrip("/").split("/", 1)
    if len(parts) != 2 or not BUCKET_RE.match(parts[0]) or not parts[1]:
        return None
    return ObjectRef(parts[0], parts[1])


def bucket_of_host(host: str) -> str | None:
    """The bucket a host-style request names in its Host header (port ignored), or None."""
    match = COS_HOST_RE.match(host.rsplit(":", 1)[0] if host.count(":") == 1 else host)
    return match.group("bucket") if match else None


class ObjectStore:
    def __init__(self, root: Path, allow_any_url: bool = False) -> None:
        self.root = root
        self.allow_any_url = allow_any_url
        self.hosts: set[str] = set()
        self.port = 0

    def listen(self, host: str, port: int) -> None:
        """The address the emulator serves on: path-style URLs naming it point at this store."""
        self.hosts = set(LOOPBACK) | {host}
        self.port = port

    def path(self, ref: ObjectRef) -> Path:
        target = (self.root / ref.bucket / ref.key).resolve()
        if not target.is_relative_to(self.root.resolve() / ref.bucket):
            raise ValueError(f"the key {ref.key!r} leaves its bucket")
        return target

    def ref_of_url(self, url: str) -> ObjectRef | None:
        """The stored object a URL names: a COS host-style URL, or a path-style one on this emulator."""
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return None
        bucket = bucket_of_host(parsed.hostname)
        if bucket is not None:
            key = unquote(parsed.path).lstrip("/")
            return ObjectRef(bucket, key) if key else None
        if parsed.hostname in self.hosts and parsed.port == self.port and self.port:
            return split_path(parsed.path)
        return None

    def local_file(self, url: str) -> Path | None:
        ref = self.ref_of_url(url)
        if ref is None:
            return None
        try:
            return self.path(ref)
        except ValueError:
            return None

    def check_import_url(self, url: str, region: str) -> None:
        if self.ref_of_url(url) is not None or self.allow_any_url:
            return
        raise ApiError(
            "InvalidParameter.InvalidParameterUrlError",
            f"`ImageUrl` must be the URL of a COS object (https://<bucket>.cos.{region}.myqcloud.com/<key>), "
            f"got {url!r}.",
        )
