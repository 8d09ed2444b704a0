"""The read-only VPC API subset (2017-03-12): DescribeVpcs, DescribeSubnets, DescribeSecurityGroups.

Enough for a user to find the ids a launch names. The VPC API has its own error codes: filters it
does not know are ``InvalidParameter.FilterInvalidKey``, ids with filters ``InvalidParameter.Coexist``,
malformed ids ``InvalidParameterValue.Malformed`` and unknown ones ``ResourceNotFound``; its
``Offset`` and ``Limit`` are strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .backend.emulator import Emulator
from .backend.vpc import CREATED_AT, SG_ID_RE, SUBNET_ID_RE, VPC_ID_RE, SecurityGroup, Subnet, Vpc
from .context import Call, iso_time
from .errors import ApiError

SERVICE = "vpc"
API_VERSION = "2017-03-12"
MAX_FILTERS = 10
MAX_LIMIT = 100
DEFAULT_LIMIT = 20

T = TypeVar("T")
Matcher = Callable[[T, tuple[str, ...]], bool]


def _paging(params: dict[str, Any]) -> tuple[int, int]:
    try:
        offset = int(params.get("Offset") or 0)
        limit = int(params.get("Limit") or DEFAULT_LIMIT)
    except ValueError:
        raise ApiError("InvalidParameterValue.Malformed", "`Offset` and `Limit` must be integers.") from None
    if offset < 0 or not 1 <= limit <= MAX_LIMIT:
        raise ApiError("InvalidParameterValue.Range", f"`Offset` must be >= 0 and `Limit` 1-{MAX_LIMIT}.")
    return offset, limit


def _select(
    items: Sequence[T],
    params: dict[str, Any],
    ids_member: str,
    id_of: Callable[[T], str],
    id_re: re.Pattern[str],
    matchers: dict[str, Matcher[T]],
) -> tuple[int, list[T]]:
    """The page of ``items`` the request's ids or filters pick."""
    ids: list[str] = params.get(ids_member) or []
    filters: list[dict[str, Any]] = params.get("Filters") or []
    if ids and filters:
        raise ApiError("InvalidParameter.Coexist", f"`{ids_member}` and `Filters` cannot be given together.")
    if len(filters) > MAX_FILTERS:
        raise ApiError("LimitExceeded.NumberOfFilters", f"At most {MAX_FILTERS} filters are allowed.")
    chosen = list(items)
    if ids:
        for item_id in ids:
            if not id_re.match(item_id):
                raise ApiError("InvalidParameterValue.Malformed", f"The id `{item_id}` is malformed.")
        by_id = {id_of(i): i for i in items}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise ApiError("ResourceNotFound", f"The resource `{missing[0]}` does not exist.")
        chosen = [by_id[i] for i in dict.fromkeys(ids)]
    for flt in filters:
        name, values = str(flt["Name"]), tuple(str(v) for v in flt["Values"])
        if name.startswith("tag:") or name == "tag-key":
            chosen = []  # these networks carry no tags
            continue
        matcher = matchers.get(name)
        if matcher is None:
            raise ApiError(
                "InvalidParameter.FilterInvalidKey",
                f"The filter `{name}` is not supported; supported: {', '.join(sorted(matchers))}, tag-key, tag:<key>.",
            )
        chosen = [i for i in chosen if matcher(i, values)]
    offset, limit = _paging(params)
    return len(chosen), chosen[offset : offset + limit]


def _bool(values: tuple[str, ...], actual: bool) -> bool:
    return any(v.lower() == str(actual).lower() or v == str(int(actual)) for v in values)


def vpc_to_api(vpc: Vpc) -> dict[str, Any]:
    return {
        "VpcName": vpc.name,
        "VpcId": vpc.vpc_id,
        "CidrBlock": str(vpc.cidr),
        "IsDefault": vpc.is_default,
        "EnableMulticast": False,
        "CreatedTime": iso_time(CREATED_AT).replace("T", " ").rstrip("Z"),
        "DnsServerSet": ["183.60.83.19", "183.60.82.98"],
        "DomainName": "",
        "DhcpOptionsId": "",
        "EnableDhcp": True,
        "Ipv6CidrBlock": "",
        "TagSet": [],
        "AssistantCidrSet": [],
    }


def subnet_to_api(subnet: Subnet, used: int) -> dict[str, Any]:
    return {
        "VpcId": subnet.vpc_id,
        "SubnetId": subnet.subnet_id,
        "SubnetName": subnet.name,
        "CidrBlock": str(subnet.cidr),
        "IsDefault": subnet.is_default,
        "EnableBroadcast": False,
        "Zone": subnet.zone,
        "RouteTableId": "rtb-" + subnet.vpc_id[4:],
        "CreatedTime": iso_time(CREATED_AT).replace("T", " ").rstrip("Z"),
        "AvailableIpAddressCount": subnet.total_addresses - used,
        "Ipv6CidrBlock": "",
        "NetworkAclId": "",
        "IsRemoteVpcSnat": False,
        "TotalIpAddressCount": subnet.total_addresses,
        "TagSet": [],
        "CdcId": "",
        "IsCdcSubnet": 0,
    }


def security_group_to_api(group: SecurityGroup) -> dict[str, Any]:
    created = iso_time(CREATED_AT).replace("T", " ").rstrip("Z")
    return {
        "SecurityGroupId": group.security_group_id,
        "SecurityGroupName": group.name,
        "SecurityGroupDesc": group.description,
        "ProjectId": str(group.project_id),
        "IsDefault": group.is_default,
        "CreatedTime": created,
        "UpdateTime": created,
        "TagSet": [],
    }


def describe_vpcs(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    matchers: dict[str, Matcher[Vpc]] = {
        "vpc-id": lambda v, values: v.vpc_id in values,
        "vpc-name": lambda v, values: any(x in v.name for x in values),
        "is-default": lambda v, values: _bool(values, v.is_default),
        "cidr-block": lambda v, values: str(v.cidr) in values,
    }
    total, page = _select(
        emu.vpc.vpcs_of(call.account.account_id, call.region),
        params,
        "VpcIds",
        lambda v: v.vpc_id,
        VPC_ID_RE,
        matchers,
    )
    return {"TotalCount": total, "VpcSet": [vpc_to_api(v) for v in page]}


def describe_subnets(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    matchers: dict[str, Matcher[Subnet]] = {
        "subnet-id": lambda s, values: s.subnet_id in values,
        "vpc-id": lambda s, values: s.vpc_id in values,
        "cidr-block": lambda s, values: str(s.cidr) in values or str(s.cidr.network_address) in values,
        "is-default": lambda s, values: _bool(values, s.is_default),
        "is-remote-vpc-snat": lambda s, values: _bool(values, False),
        "subnet-name": lambda s, values: any(x in s.name for x in values),
        "zone": lambda s, values: s.zone in values,
    }
    total, page = _select(
        emu.vpc.subnets_of(call.account.account_id, call.region),
        params,
        "SubnetIds",
        lambda s: s.subnet_id,
        SUBNET_ID_RE,
        matchers,
    )
    return {"TotalCount": total, "SubnetSet": [subnet_to_api(s, emu.vpc.used_in_subnet(s)) for s in page]}


def describe_security_groups(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    matchers: dict[str, Matcher[SecurityGroup]] = {
        "security-group-id": lambda g, values: g.security_group_id in values,
        "project-id": lambda g, values: str(g.project_id) in values,
        "security-group-name": lambda g, values: any(x in g.name for x in values),
    }
    total, page = _select(
        emu.vpc.security_groups_of(call.account.account_id, call.region),
        params,
        "SecurityGroupIds",
        lambda g: g.security_group_id,
        SG_ID_RE,
        matchers,
    )
    return {"TotalCount": total, "SecurityGroupSet": [security_group_to_api(g) for g in page]}


ACTIONS = {
    "DescribeVpcs": describe_vpcs,
    "DescribeSubnets": describe_subnets,
    "DescribeSecurityGroups": describe_security_groups,
}
READ_ONLY = frozenset(ACTIONS)
