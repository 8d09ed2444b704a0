"""Static data: accounts, regions and zones, instance types, public and marketplace images, import OS list."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .backend.faults import FaultRate, parse_rates
from .identity import OidcProvider, Role, parse_providers, parse_roles

# The ImageType values of today's API; marketplace images are PUBLIC_IMAGE made by a vendor.
PUBLIC_IMAGE = "PUBLIC_IMAGE"
PRIVATE_IMAGE = "PRIVATE_IMAGE"
SHARED_IMAGE = "SHARED_IMAGE"
TENCENT_CREATOR = "tencent"

DEFAULT_CUSTOM_IMAGE_QUOTA = 500
DEFAULT_SHARE_LIMIT = 500


@dataclass(frozen=True)
class Account:
    account_id: str
    secret_id: str
    secret_key: str


BUILTIN_ACCOUNTS: tuple[Account, ...] = tuple(
    Account(f"{n}0000000000{n}", f"AKIDcvmEmulatorAccount00000000000{n}", f"cvmEmulatorSecretKey000000000000{n}")
    for n in (1, 2, 3)
)


@dataclass(frozen=True)
class Zone:
    zone: str
    name: str
    name_en: str
    zone_id: str
    region: str


@dataclass(frozen=True)
class Region:
    region: str
    name: str
    name_en: str
    zones: tuple[Zone, ...]


@dataclass(frozen=True)
class InstanceType:
    instance_type: str
    cpu: int
    memory: int
    architecture: str


@dataclass(frozen=True)
class CatalogueImage:
    image_id: str
    image_type: str
    image_name: str
    os_name: str
    platform: str
    architecture: str
    size_gb: int
    description: str
    family: str
    cloudinit: bool
    creator: str = TENCENT_CREATOR
    """ImageCreator: ``tencent`` for Tencent's public images, the vendor's account id for marketplace ones."""


@dataclass(frozen=True)
class ImportOs:
    os_type: str
    versions: tuple[str, ...]
    windows: bool


@dataclass
class Catalogue:
    regions: dict[str, Region]
    instance_types: dict[str, InstanceType]
    images: tuple[CatalogueImage, ...]
    import_os: dict[str, ImportOs]
    import_architectures: tuple[str, ...]
    zones: dict[str, Zone] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.zones = {z.zone: z for r in self.regions.values() for z in r.zones}


_CN_DIGITS = "零一二三四五六七八九十"


def _zone_names(region_name: str, region_name_en: str, number: int) -> tuple[str, str]:
    city = region_name.split("(")[-1].rstrip(")")
    city_en = region_name_en.split("(")[-1].rstrip(")")
    digit = _CN_DIGITS[number] if number <= 10 else str(number)
    return f"{city}{digit}区", f"{city_en} Zone {number}"


def _region(entry: dict[str, Any]) -> Region:
    name, name_en, region_id = str(entry["name"]), str(entry["nameEn"]), str(entry["region"])
    zones = []
    for number in entry["zones"]:
        zone_name, zone_name_en = _zone_names(name, name_en, int(number))
        zones.append(
            Zone(f"{region_id}-{number}", zone_name, zone_name_en, str(int(entry["zoneBase"]) + int(number)), region_id)
        )
    return Region(region_id, name, name_en, tuple(zones))


def load_catalogue(region_filter: list[Any] | None = None) -> Catalogue:
    """Load the packaged catalogue; ``region_filter`` (from the config) keeps or adds regions."""
    text = importlib.resources.files("cvm_emulator").joinpath("catalogue.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    regions = {r.region: r for r in (_region(e) for e in data["regions"])}
    if region_filter:
        chosen: dict[str, Region] = {}
        for item in region_filter:
            if isinstance(item, str):
                if item not in regions:
                    raise ValueError(f"unknown region {item!r} in config; give a full entry to add one")
                chosen[item] = regions[item]
            else:
                region = _region(item)
                chosen[region.region] = region
        regions = chosen
    types = {
        t["type"]: InstanceType(t["type"], int(t["cpu"]), int(t["memory"]), t["arch"]) for t in data["instanceTypes"]
    }
    images: list[CatalogueImage] = []
    for e in data["publicImages"]:
        images.append(
            CatalogueImage(
                e["id"],
                PUBLIC_IMAGE,
                e["name"],
                e["name"],
                e["platform"],
                e.get("arch", "x86_64"),
                int(e["size"]),
                e.get("description", e["name"]),
                e.get("family", ""),
                bool(e.get("cloudinit", True)),
            )
        )
    for e in data["marketImages"]:
        images.append(
            CatalogueImage(
                e["id"],
                PUBLIC_IMAGE,
                e["name"],
                e["osName"],
                e["platform"],
                e.get("arch", "x86_64"),
                int(e["size"]),
                e.get("description", e["name"]),
                e.get("family", ""),
                bool(e.get("cloudinit", True)),
                str(e["creator"]),
            )
        )
    import_os: dict[str, ImportOs] = {}
    for kind in ("linux", "windows"):
        for e in data["importOs"][kind]:
            import_os[e["os"]] = ImportOs(e["os"], tuple(str(v) for v in e["versions"]), kind == "windows")
    return Catalogue(regions, types, tuple(images), import_os, tuple(data["importOs"]["architectures"]))


@dataclass
class EmulatorConfig:
    """Everything ``--config`` may set; command-line flags override the matching keys."""

    accounts: tuple[Account, ...] = BUILTIN_ACCOUNTS
    regions: list[Any] | None = None
    clock: str = "fast"
    image_quota: int = DEFAULT_CUSTOM_IMAGE_QUOTA
    share_limit: int = DEFAULT_SHARE_LIMIT
    fail_rate: float = 0.0
    latency_ms: float = 0.0
    enforce_rate_limits: bool = False
    rate_limits: dict[str, int] = field(default_factory=dict)
    roles: tuple[Role, ...] = ()
    """CAM roles that STS AssumeRole and AssumeRoleWithWebIdentity can issue credentials for."""
    oidc_providers: tuple[OidcProvider, ...] = ()
    vpcs: list[dict[str, Any]] = field(default_factory=list)
    """VPCs beyond each account's default one: region, accountId, vpcId, name, cidrBlock, subnets."""
    security_groups: list[dict[str, Any]] = field(default_factory=list)
    projects: tuple[int, ...] = ()
    """Project ids beyond the default project 0 that launches may name."""
    allow_any_import_url: bool = False
    fault_rates: tuple[FaultRate, ...] = ()
    """Per action: the chance that a call is refused with a code or an operation ends failed."""
    """ImportImage takes any http(s) or file URL, not only the emulator's own object store."""


def load_config(path: Path | None) -> EmulatorConfig:
    config = EmulatorConfig()
    if path is None:
        return config
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a mapping")
    known = {
        "accounts",
        "regions",
        "clock",
        "imageQuota",
        "shareLimit",
        "failRate",
        "latencyMs",
        "enforceRateLimits",
        "rateLimits",
        "roles",
        "oidcProviders",
        "vpcs",
        "securityGroups",
        "projects",
        "faultRates",
        "allowAnyImportUrl",
    }
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    if "accounts" in data:
        accounts = []
        for entry in data["accounts"]:
            try:
                accounts.append(Account(str(entry["accountId"]), str(entry["secretId"]), str(entry["secretKey"])))
            except (KeyError, TypeError) as exc:
                raise ValueError(f"{path}: each account needs accountId, secretId and secretKey") from exc
        if not accounts:
            raise ValueError(f"{path}: accounts must not be empty")
        config.accounts = tuple(accounts)
    config.regions = data.get("regions")
    config.clock = str(data.get("clock", config.clock))
    config.image_quota = int(data.get("imageQuota", config.image_quota))
    config.share_limit = int(data.get("shareLimit", config.share_limit))
    config.fail_rate = float(data.get("failRate", config.fail_rate))
    config.latency_ms = float(data.get("latencyMs", config.latency_ms))
    config.enforce_rate_limits = bool(data.get("enforceRateLimits", config.enforce_rate_limits))
    config.rate_limits = {str(k): int(v) for k, v in (data.get("rateLimits") or {}).items()}
    for key in ("vpcs", "securityGroups"):
        entries = data.get(key) or []
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError(f"{path}: {key} must be a list of mappings")
    config.vpcs = list(data.get("vpcs") or [])
    config.security_groups = list(data.get("securityGroups") or [])
    config.projects = tuple(int(p) for p in data.get("projects") or ())
    config.allow_any_import_url = bool(data.get("allowAnyImportUrl", config.allow_any_import_url))
    try:
        config.fault_rates = parse_rates(data.get("faultRates"))
        config.oidc_providers = parse_providers(data.get("oidcProviders"))
        config.roles = parse_roles(
            data.get("roles"),
            [a.account_id for a in config.accounts],
            [p.provider_id for p in config.oidc_providers],
        )
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return config
