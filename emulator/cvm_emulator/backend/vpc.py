"""VPC networks, subnets and security groups of each account and region, and private address allocation.

Every account has in every region a default VPC (172.16.0.0/16, as the cloud creates it) with one
default subnet per zone and a default security group; ``vpcs`` and ``securityGroups`` in the config add
more. The network objects are fixed for the emulator's lifetime (the read-only VPC actions are served),
so they live in memory; the addresses instances take live in the store with the instances.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..catalogue import Account, Catalogue
from ..errors import ApiError
from ..store import Store

VPC_ID_RE = re.compile(r"^vpc-[a-z0-9]{8}$")
SUBNET_ID_RE = re.compile(r"^subnet-[a-z0-9]{8}$")
SG_ID_RE = re.compile(r"^sg-[a-z0-9]{8}$")
DEFAULT_VPC_CIDR = "172.16.0.0/16"
DEFAULT_SUBNET_PREFIX = 20
# Network address, gateway and broadcast address are never handed to an instance.
RESERVED_ADDRESSES = 3
CREATED_AT = 1704067200.0  # 2024-01-01T00:00:00Z, like the catalogue's images

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def stable_id(prefix: str, *parts: str) -> str:
    """The same id for the same account, region and name on every start (the store keeps references)."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return f"{prefix}-" + "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:8])


@dataclass(frozen=True)
class Vpc:
    vpc_id: str
    owner: str
    region: str
    name: str
    cidr: ipaddress.IPv4Network
    is_default: bool


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    owner: str
    region: str
    zone: str
    name: str
    cidr: ipaddress.IPv4Network
    is_default: bool

    @property
    def total_addresses(self) -> int:
        return int(self.cidr.num_addresses) - RESERVED_ADDRESSES

    def usable(self, address: ipaddress.IPv4Address) -> bool:
        first = int(self.cidr.network_address) + 2
        last = int(self.cidr.broadcast_address) - 1
        return first <= int(address) <= last


@dataclass(frozen=True)
class SecurityGroup:
    security_group_id: str
    owner: str
    region: str
    name: str
    description: str
    project_id: int
    is_default: bool


@dataclass(frozen=True)
class NetworkPlacement:
    """Where a launch puts its instances: one subnet, its security groups, one address per instance."""

    vpc: Vpc
    subnet: Subnet
    security_group_ids: tuple[str, ...]
    private_ips: tuple[str, ...]


def _network(text: Any, where: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(str(text))
    except ValueError as exc:
        raise ValueError(f"{where}: {text!r} is not an IPv4 CIDR block") from exc


class VpcBackend:
    """Networks per (account, region); ``allocate`` checks a launch's network and picks its addresses."""

    def __init__(
        self,
        store: Store,
        catalogue: Catalogue,
        accounts: Sequence[Account],
        vpcs: Sequence[dict[str, Any]] = (),
        security_groups: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.vpcs: dict[str, Vpc] = {}
        self.subnets: dict[str, Subnet] = {}
        self.security_groups: dict[str, SecurityGroup] = {}
        for account in accounts:
            for region in catalogue.regions.values():
                self._add_defaults(account.account_id, region.region)
        default_owner = accounts[0].account_id if accounts else ""
        for index, entry in enumerate(vpcs):
            self._add_vpc(entry, f"vpcs[{index}]", default_owner)
        for index, entry in enumerate(security_groups):
            self._add_security_group(entry, f"securityGroups[{index}]", default_owner)

    # ------------------------------------------------------------ building

    def _add_defaults(self, owner: str, region: str) -> None:
        vpc = Vpc(
            stable_id("vpc", owner, region, "default"),
            owner,
            region,
            "Default-VPC",
            ipaddress.IPv4Network(DEFAULT_VPC_CIDR),
            True,
        )
        self.vpcs[vpc.vpc_id] = vpc
        blocks = vpc.cidr.subnets(new_prefix=DEFAULT_SUBNET_PREFIX)
        for zone, block in zip(self.catalogue.regions[region].zones, blocks, strict=False):
            subnet = Subnet(
                stable_id("subnet", owner, region, zone.zone, "default"),
                vpc.vpc_id,
                owner,
                region,
                zone.zone,
                "Default-Subnet",
                block,
                True,
            )
            self.subnets[subnet.subnet_id] = subnet
        group = SecurityGroup(
            stable_id("sg", owner, region, "default"),
            owner,
            region,
            "default",
            "System created security group",
            0,
            True,
        )
        self.security_groups[group.security_group_id] = group

    def _region(self, entry: dict[str, Any], where: str) -> str:
        region = str(entry.get("region", ""))
        if region not in self.catalogue.regions:
            raise ValueError(f"{where}: unknown region {region!r}")
        return region

    def _add_vpc(self, entry: dict[str, Any], where: str, default_owner: str) -> None:
        region = self._region(entry, where)
        owner = str(entry.get("accountId", default_owner))
        name = str(entry.get("name", "vpc"))
        vpc_id = str(entry.get("vpcId") or stable_id("vpc", owner, region, name))
        if not VPC_ID_RE.match(vpc_id) or vpc_id in self.vpcs:
            raise ValueError(f"{where}: vpcId {vpc_id!r} is malformed or taken")
        vpc = Vpc(vpc_id, owner, region, name, _network(entry.get("cidrBlock"), where), False)
        self.vpcs[vpc_id] = vpc
        zones = {z.zone for z in self.catalogue.regions[region].zones}
        for number, item in enumerate(entry.get("subnets") or ()):
            here = f"{where}.subnets[{number}]"
            zone = str(item.get("zone", ""))
            if zone not in zones:
                raise ValueError(f"{here}: zone {zone!r} is not in {region}")
            cidr = _network(item.get("cidrBlock"), here)
            if not cidr.subnet_of(vpc.cidr):
                raise ValueError(f"{here}: {cidr} is not inside the VPC's {vpc.cidr}")
            subnet_name = str(item.get("name", f"{name}-{zone}"))
            subnet_id = str(item.get("subnetId") or stable_id("subnet", owner, region, vpc_id, subnet_name))
            if not SUBNET_ID_RE.match(subnet_id) or subnet_id in self.subnets:
                raise ValueError(f"{here}: subnetId {subnet_id!r} is malformed or taken")
            self.subnets[subnet_id] = Subnet(subnet_id, vpc_id, owner, region, zone, subnet_name, cidr, False)

    def _add_security_group(self, entry: dict[str, Any], where: str, default_owner: str) -> None:
        region = self._region(entry, where)
        owner = str(entry.get("accountId", default_owner))
        name = str(entry.get("name", "sg"))
        group_id = str(entry.get("securityGroupId") or stable_id("sg", owner, region, name))
        if not SG_ID_RE.match(group_id) or group_id in self.security_groups:
            raise ValueError(f"{where}: securityGroupId {group_id!r} is malformed or taken")
        self.security_groups[group_id] = SecurityGroup(
            group_id, owner, region, name, str(entry.get("description", "")), int(entry.get("projectId", 0)), False
        )

    # ------------------------------------------------------------ queries

    def vpcs_of(self, owner: str, region: str) -> list[Vpc]:
        return [v for v in self.vpcs.values() if v.owner == owner and v.region == region]

    def subnets_of(self, owner: str, region: str) -> list[Subnet]:
        return [s for s in self.subnets.values() if s.owner == owner and s.region == region]

    def security_groups_of(self, owner: str, region: str) -> list[SecurityGroup]:
        return [g for g in self.security_groups.values() if g.owner == owner and g.region == region]

    def default_vpc(self, owner: str, region: str) -> Vpc:
        return next(v for v in self.vpcs_of(owner, region) if v.is_default)

    def default_subnet(self, owner: str, region: str, zone: str) -> Subnet:
        return next(s for s in self.subnets_of(owner, region) if s.is_default and s.zone == zone)

    def default_security_group(self, owner: str, region: str) -> SecurityGroup:
        return next(g for g in self.security_groups_of(owner, region) if g.is_default)

    def taken_addresses(self, vpc: Vpc) -> set[str]:
        # A VPC is one account's in one region: the owner index narrows the scan to its instances.
        rows = self.store.conn.execute(
            "SELECT private_ip FROM instances WHERE owner = ? AND region = ? AND state != 'TERMINATED' "
            "AND json_extract(details, '$.VirtualPrivateCloud.VpcId') = ?",
            (vpc.owner, vpc.region, vpc.vpc_id),
        ).fetchall()
        return {str(r["private_ip"]) for r in rows}

    def used_in_subnet(self, subnet: Subnet) -> int:
        row = self.store.conn.execute(
            "SELECT COUNT(*) FROM instances WHERE owner = ? AND region = ? AND state != 'TERMINATED' "
            "AND json_extract(details, '$.VirtualPrivateCloud.SubnetId') = ?",
            (subnet.owner, subnet.region, subnet.subnet_id),
        ).fetchone()
        return int(row[0])

    # ------------------------------------------------------------ rules

    def check_security_groups(self, owner: str, region: str, group_ids: Sequence[str]) -> tuple[str, ...]:
        """The groups, each one of the caller's in ``region`` (another region's or account's is unknown here)."""
        for group_id in group_ids:
            group = self.security_groups.get(group_id)
            if group is None or group.owner != owner or group.region != region:
                raise ApiError(
                    "InvalidSecurityGroupId.NotFound", f"The security group `{group_id}` does not exist in {region}."
                )
        return tuple(dict.fromkeys(group_ids))

    def allocate(
        self,
        owner: str,
        region: str,
        zone: str,
        vpc_id: str | None,
        subnet_id: str | None,
        group_ids: Sequence[str],
        private_ips: Sequence[str],
        count: int,
    ) -> NetworkPlacement:
        """Check the launch's network against the cloud's rules and pick ``count`` free addresses."""
        if vpc_id is None:
            vpc = self.default_vpc(owner, region)
            subnet = self.default_subnet(owner, region, zone)
        else:
            vpc, subnet = self._vpc_and_subnet(owner, region, zone, vpc_id, subnet_id or "")
        groups = self.check_security_groups(owner, region, group_ids) or (
            self.default_security_group(owner, region).security_group_id,
        )
        taken = self.taken_addresses(vpc)
        if private_ips:
            if len(private_ips) != count:
                raise ApiError(
                    "InvalidParameterValue",
                    f"`VirtualPrivateCloud.PrivateIpAddresses` needs one address per instance ({count}).",
                )
            chosen = tuple(self._check_address(subnet, text, taken) for text in private_ips)
            if len(set(chosen)) != len(chosen):
                raise ApiError("InvalidParameterValue.Duplicate", "`PrivateIpAddresses` lists an address twice.")
        else:
            chosen = self._free_addresses(subnet, taken, count)
        return NetworkPlacement(vpc, subnet, groups, chosen)

    def _vpc_and_subnet(self, owner: str, region: str, zone: str, vpc_id: str, subnet_id: str) -> tuple[Vpc, Subnet]:
        if not VPC_ID_RE.match(vpc_id):
            raise ApiError("InvalidParameterValue.VpcIdMalformed", f"The VPC id `{vpc_id}` is malformed.")
        if not SUBNET_ID_RE.match(subnet_id):
            raise ApiError("InvalidParameterValue.SubnetIdMalformed", f"The subnet id `{subnet_id}` is malformed.")
        vpc = self.vpcs.get(vpc_id)
        if vpc is None or vpc.owner != owner or vpc.region != region:
            raise ApiError("InvalidParameterValue.VpcIdNotExist", f"The VPC `{vpc_id}` does not exist in {region}.")
        subnet = self.subnets.get(subnet_id)
        if subnet is None or subnet.owner != owner or subnet.region != region:
            raise ApiError(
                "InvalidParameterValue.SubnetNotExist", f"The subnet `{subnet_id}` does not exist in {region}."
            )
        if subnet.vpc_id != vpc_id:
            raise ApiError(
                "InvalidParameterValue.VpcIdSubnetIdNotMatch", f"The subnet `{subnet_id}` is not in `{vpc_id}`."
            )
        if subnet.zone != zone:
            raise ApiError(
                "InvalidParameterValue.SubnetIdZoneIdNotMatch",
                f"The subnet `{subnet_id}` is in {subnet.zone}, not in the launch zone {zone}.",
            )
        return vpc, subnet

    def _check_address(self, subnet: Subnet, text: str, taken: set[str]) -> str:
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            raise ApiError("InvalidParameterValue.IPAddressMalformed", f"{text!r} is not an IPv4 address.") from None
        if address not in subnet.cidr or not subnet.usable(address):
            raise ApiError("VpcAddrNotInSubNet", f"The address {text} is not a usable address of {subnet.subnet_id}.")
        if str(address) in taken:
            raise ApiError("VpcIpIsUsed", f"The address {text} is already in use in {subnet.vpc_id}.")
        return str(address)

    def _free_addresses(self, subnet: Subnet, taken: set[str], count: int) -> tuple[str, ...]:
        # Addresses go round the subnet from where the last launch stopped, as DHCP pools do.
        key = f"ip:{subnet.subnet_id}"
        row = self.store.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        size = subnet.total_addresses
        start = int(row["value"]) if row else 0
        first = int(subnet.cidr.network_address) + 2
        chosen: list[str] = []
        for step in range(size):
            candidate = str(ipaddress.IPv4Address(first + (start + step) % size))
            if candidate not in taken:
                chosen.append(candidate)
                if len(chosen) == count:
                    self.store.conn.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str((start + step + 1) % size))
                    )
                    return tuple(chosen)
        raise ApiError(
            "FailedOperation.NoAvailableIpAddressCountInSubnet",
            f"The subnet {subnet.subnet_id} has {len(chosen)} free addresses, {count} are needed.",
        )
