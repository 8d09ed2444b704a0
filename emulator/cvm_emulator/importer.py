"""ImportImage: fetch the disk file (http, https, file) and recognise its format from the header."""

from __future__ import annotations

import asyncio
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import aiohttp

HEAD_BYTES = 64 * 1024  # covers the ISO volume descriptor at 0x8001
TAIL_BYTES = 512  # the VHD footer
FETCH_TIMEOUT_SECONDS = 120.0
MIN_RAW_BYTES = 512

QCOW2_MAGIC = b"QFI\xfb"
VHD_COOKIE = b"conectix"
VMDK_SPARSE_MAGIC = b"KDMV"
VMDK_DESCRIPTOR = b"# Disk DescriptorFile"
ISO_MAGIC = b"CD001"
ISO_MAGIC_OFFSET = 0x8001
_VMDK_EXTENT_RE = re.compile(rb"^\s*RW\s+(\d+)\s", re.MULTILINE)


@dataclass(frozen=True)
class DiskProbe:
    """The first bytes, the last bytes and the total size of a disk file."""

    head: bytes
    tail: bytes
    size: int


@dataclass(frozen=True)
class Detection:
    """``disk_format`` is None when the file is not a usable disk; ``reason`` says why."""

    disk_format: str | None
    virtual_size: int
    reason: str


def detect_format(probe: DiskProbe, force: bool) -> Detection:
    """Recognise qcow2, VHD, VMDK, raw (MBR or GPT) and ISO (accepted only with ``force``)."""
    head, tail = probe.head, probe.tail
    if head.startswith(QCOW2_MAGIC):
        if len(head) < 32:
            return Detection(None, 0, "qcow2 header is truncated")
        (version,) = struct.unpack(">I", head[4:8])
        (cluster_bits,) = struct.unpack(">I", head[20:24])
        (virtual_size,) = struct.unpack(">Q", head[24:32])
        if version not in (2, 3) or not 9 <= cluster_bits <= 21 or virtual_size == 0:
            return Detection(None, 0, f"qcow2 header is malformed (version {version}, cluster_bits {cluster_bits})")
        return Detection("qcow2", virtual_size, "")
    footer = tail[-512:] if len(tail) >= 512 else b""
    for candidate in (footer, head[:512]):
        if candidate.startswith(VHD_COOKIE) and len(candidate) >= 512:
            (current_size,) = struct.unpack(">Q", candidate[48:56])
            return Detection("vhd", current_size, "")
    if head.startswith(VMDK_SPARSE_MAGIC):
        if len(head) < 20:
            return Detection(None, 0, "vmdk header is truncated")
        (capacity_sectors,) = struct.unpack("<Q", head[12:20])
        return Detection("vmdk", capacity_sectors * 512, "")
    if head.startswith(VMDK_DESCRIPTOR):
        sectors = sum(int(m) for m in _VMDK_EXTENT_RE.findall(head))
        return Detection("vmdk", sectors * 512, "")
    if head[ISO_MAGIC_OFFSET : ISO_MAGIC_OFFSET + 5] == ISO_MAGIC:
        if not force:
            return Detection(None, 0, "ISO images must be imported with Force")
        return Detection("iso", probe.size, "")
    has_partition_table = head[510:512] == b"\x55\xaa" or head[512:520] == b"EFI PART"
    if probe.size >= MIN_RAW_BYTES and len(head) >= 512 and has_partition_table:
        return Detection("raw", probe.size, "")
    if force and probe.size >= MIN_RAW_BYTES:
        # Force skips the image checks; any file of plausible size is taken as raw.
        return Detection("raw", probe.size, "")
    return Detection(None, 0, "the file is not a qcow2, vhd, vmdk or raw disk image")


def size_in_gib(virtual_size: int) -> int:
    return max(1, math.ceil(virtual_size / 2**30))


class FetchError(Exception):
    pass


def _read_file(path: Path) -> DiskProbe:
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read(TAIL_BYTES)
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return DiskProbe(head, tail, size)


async def fetch_probe(url: str) -> DiskProbe:
    """Download ``url`` completely (keeping only its head and tail) or raise ``FetchError``."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return await asyncio.to_thread(_read_file, Path(unquote(parsed.path)))
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            if response.status != 200:
                raise FetchError(f"GET {url} answered HTTP {response.status}")
            head = bytearray()
            tail = b""
            size = 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if len(head) < HEAD_BYTES:
                    head.extend(chunk[: HEAD_BYTES - len(head)])
                tail = (tail + chunk)[-TAIL_BYTES:]
            return DiskProbe(bytes(head), tail, size)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise FetchError(f"GET {url} failed: {exc}") from exc
