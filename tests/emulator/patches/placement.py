"""Spot placement scores (GetSpotPlacementScores): not in moto at all. The
scores are the test's: `spot_placement_scores` sets them per Availability
Zone (its name or its id), every other zone scores
`spot_placement_default_score` (10: the emulator's spot launches succeed
unless a test refuses them).

AWS (API reference, API_GetSpotPlacementScores.html and
API_SpotPlacementScore.html; user guide, spot-placement-score.html):
TargetCapacity is required; the compute requirements are InstanceTypes or
InstanceRequirementsWithMetadata, not both. The answer is the top 10
Regions, or with SingleAvailabilityZone the top 10 Availability Zones (each
with its Region and AvailabilityZoneId), scored 1 to 10, limited to
RegionNames when given. "If you specify instance types, you must specify at
least three different instance types, otherwise Amazon EC2 will return a low
Spot placement score. Similarly, if you specify instance attributes, they
must resolve to at least three different instance types": such a request
scores 1 here. "We can limit the number of new request configurations
within a 24-hour period [...] you can retry the request configurations that
you've already used, but you can't specify new request configurations until
the next 24-hour period": a configuration is the target capacity, its unit,
and the instance types or attributes ("Use the same configuration"); the
limit is not published, `spot_placement_configurations` sets it (10 by
default). Past it, MaxConfigLimitExceeded with the message AWS sends (as
users' logs of the error quote it; the code is in the SDKs' error lists).

botocore's model (strict.py) already refuses the documented ranges:
TargetCapacity 1 to 2,000,000,000, at most 10 RegionNames, MaxResults 10 to
1000, the unit and attribute enums. Not modelled: the target capacity
limit ("based on your recent Spot usage"; AWS documents no error for it),
a region score other than its best zone's, the attributes other than
VCpuCount, MemoryMiB and ArchitectureTypes when resolving instance types
(moto's instance type data), Local Zones (IncludeLocalZones), paging (the
answer is at most 10 scores, so never a NextToken). Not documented, chosen
here: both or neither of InstanceTypes and InstanceRequirementsWithMetadata
(InvalidParameterCombination), an unknown Region (InvalidParameterValue).
"""

from __future__ import annotations

import json
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend
from moto.ec2.responses.spot_instances import SpotInstances

from .core import DEFAULTS, lock, now, on_configure, on_reset, setting

DEFAULTS.update(
    {
        # The score of a zone no test has scored.
        "spot_placement_default_score": 10.0,
        # New configurations an account may ask about in 24 hours.
        "spot_placement_configurations": 10.0,
    }
)

DAY = 24 * 3600.0
TOP = 10
LOW = 1

# account -> zone id -> score
_scores: dict[str, dict[str, int]] = {}
# account -> configuration -> when it was first asked about
_configurations: dict[str, dict[str, float]] = {}


def _zones() -> dict[str, Any]:
    """Every Availability Zone moto knows, by name and by id."""
    out: dict[str, Any] = {}
    for zones in RegionsAndZonesBackend.zones.values():
        for zone in zones:
            if zone.zone_type == "availability-zone":
                out[zone.name] = out[zone.zone_id] = zone
    return out


def _configure_scores(account: str, scores: dict[str, Any]) -> None:
    zones = _zones()
    checked: dict[str, int] = {}
    for zone, score in scores.items():
        if zone not in zones:
            raise ValueError(f"no Availability Zone {zone!r} (a name such as eu-west-1a, or an id such as euw1-az3)")
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 10:
            raise ValueError(f"the score of {zone} must be an integer from 1 to 10, not {score!r}")
        checked[zones[zone].zone_id] = score
    with lock:
        _scores.setdefault(account, {}).update(checked)


on_configure("spot_placement_scores", _configure_scores)
on_reset(_scores.clear)
on_reset(_configurations.clear)


def _instance_types(requirements: dict[str, Any]) -> set[str]:
    """The instance types moto knows that meet the vCPU, memory and
    architecture requirements."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    needs = requirements.get("InstanceRequirements") or {}
    vcpus, memory = needs.get("VCpuCount") or {}, needs.get("MemoryMiB") or {}
    architectures = set(requirements.get("ArchitectureTypes") or [])

    def within(value: float, bounds: dict[str, Any]) -> bool:
        return float(bounds.get("Min", 0)) <= value <= float(bounds.get("Max", float("inf")))

    out = set()
    for name, info in INSTANCE_TYPES.items():
        if not within(info.get("VCpuInfo", {}).get("DefaultVCpus", 0), vcpus):
            continue
        if not within(info.get("MemoryInfo", {}).get("SizeInMiB", 0), memory):
            continue
        if architectures and not architectures & set(info.get("ProcessorInfo", {}).get("SupportedArchitectures", [])):
            continue
        out.add(name)
    return out


def _count_configuration(account: str, configuration: str) -> None:
    """Refuses a new configuration past the account's limit for 24 hours."""
    at = now()
    limit = int(setting(account, "spot_placement_configurations"))
    with lock:
        seen = _configurations.setdefault(account, {})
        for known, first in list(seen.items()):
            if at - first >= DAY:
                del seen[known]
        if configuration in seen:
            return
        if len(seen) >= limit:
            raise EC2ClientError(
                "MaxConfigLimitExceeded",
                "You have exceeded your maximum allowed Spot placement configurations. You can retry "
                "configurations that you used within the last 24 hours, or wait for 24 hours before "
                "specifying a new configuration.",
            )
        seen[configuration] = at


def _get_scores(self: SpotInstances) -> ActionResult:
    capacity = int(self._get_param("TargetCapacity"))
    unit = self._get_param("TargetCapacityUnitType") or "units"
    types = self._get_param("InstanceTypes", []) or []
    requirements = self._get_param("InstanceRequirementsWithMetadata")
    single_zone = self._get_bool_param("SingleAvailabilityZone", False)
    regions = self._get_param("RegionNames", []) or []
    if bool(types) == bool(requirements):
        raise EC2ClientError(
            "InvalidParameterCombination",
            "Specify either InstanceTypes or InstanceRequirementsWithMetadata, not both and not neither.",
        )
    known = RegionsAndZonesBackend.zones
    for region in regions:
        if region not in known:
            raise EC2ClientError("InvalidParameterValue", f"The Region '{region}' is not valid.")
    self.error_on_dryrun()
    resolved = set(types) if types else _instance_types(requirements)
    compute = sorted(resolved) if types else requirements
    account = self.current_account
    _count_configuration(account, json.dumps([capacity, unit, compute], sort_keys=True))

    default = int(setting(account, "spot_placement_default_score"))
    with lock:
        set_scores = dict(_scores.get(account, {}))

    def score(zone_id: str) -> int:
        return LOW if len(resolved) < 3 else set_scores.get(zone_id, default)

    scored: list[dict[str, Any]] = []
    for region in regions or sorted(known):
        zones = [z for z in known[region] if z.zone_type == "availability-zone"]
        if single_zone:
            scored += [{"Region": region, "AvailabilityZoneId": z.zone_id, "Score": score(z.zone_id)} for z in zones]
        elif zones:
            scored.append({"Region": region, "Score": max(score(z.zone_id) for z in zones)})
    scored.sort(key=lambda s: (-s["Score"], s["Region"], s.get("AvailabilityZoneId", "")))
    return ActionResult({"SpotPlacementScores": scored[:TOP]})


def apply() -> None:
    SpotInstances.get_spot_placement_scores = _get_scores  # type: ignore[attr-defined]
