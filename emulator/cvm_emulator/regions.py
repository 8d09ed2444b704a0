"""DescribeRegions and DescribeZones."""

from __future__ import annotations

from typing import Any

from .backend.emulator import Emulator
from .context import Call


def describe_regions(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    english = call.language == "en-US"
    regions = [
        {"Region": r.region, "RegionName": r.name_en if english else r.name, "RegionState": "AVAILABLE"}
        for r in emu.catalogue.regions.values()
    ]
    return {"TotalCount": len(regions), "RegionSet": regions}


def describe_zones(emu: Emulator, call: Call, params: dict[str, Any]) -> dict[str, Any]:
    english = call.language == "en-US"
    zones = [
        {"Zone": z.zone, "ZoneName": z.name_en if english else z.name, "ZoneId": z.zone_id, "ZoneState": "AVAILABLE"}
        for z in emu.catalogue.regions[call.region].zones
    ]
    return {"TotalCount": len(zones), "ZoneSet": zones}


ACTIONS = {"DescribeRegions": describe_regions, "DescribeZones": describe_zones}
