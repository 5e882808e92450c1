"""What IAM authorizes for one EC2 request: each resource it touches, with
the condition keys AWS puts in the request context for that resource.

AWS authorizes an EC2 action once per resource the request touches, each
with the condition keys of that resource type (Service Authorization
Reference, "Actions, resources, and condition keys for Amazon EC2": the
resource types of each action, and the keys of each type). A resource the
request creates is named with `*` for its id (`instance/*`) and carries the
request's tags (`aws:RequestTag/…`, `aws:TagKeys`); an existing one carries
its own tags (`aws:ResourceTag/…` and the older `ec2:ResourceTag/…`) and its
properties (EC2 User Guide, "Resource-level permissions" and "Grant
permission to tag Amazon EC2 resources during creation": tags given at
creation are also authorized as `ec2:CreateTags` on each created resource,
with `ec2:CreateAction` naming the creating action).

The resource types per action are the reference's required ones plus the
optional ones a lifeboat request engages (as infra/check_stack.py's
EXTRA_TYPES): RunInstances authorizes the image, the new instance, its
interface (new or the kept one), subnet, security groups, the volumes it
creates, the key pair and, for a spot launch, the spot request; it does not
authorize the image's snapshots (the user guide's RunInstances examples
grant none). `iam:PassRole` on the role of the instance profile a launch
names, with `iam:PassedToService`, is authorized beside it (IAM User Guide,
"Granting a user permissions to pass a role to an AWS service").

iam.py keeps of each context only the keys the reference defines for the
action on that resource type (AWS evaluates no other: RunInstances, for
one, has no aws:ResourceTag key for an existing network interface). Every
key a context below carries is listed in MODELLED per resource type;
a policy condition on a key the reference defines for the type but that is
not modelled here is recorded as not evaluated (see iam.py), never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iam_policy import AuthRequest


@dataclass
class Target:
    """One resource an EC2 request touches."""

    rtype: str
    arn: str
    context: dict[str, Any] = field(default_factory=dict)


# Keys each context below carries, besides aws:ResourceTag/*, ec2:ResourceTag/*,
# aws:RequestTag/* and aws:TagKeys, and the global keys of iam.py.
MODELLED = {
    "instance": {"ec2:instanceprofile", "ec2:metadatahttptokens", "ec2:metadatahttpputresponsehoplimit",
                 "ec2:instancetype", "ec2:instancemarkettype", "ec2:availabilityzone", "ec2:region",
                 "ec2:rootdevicetype", "ec2:tenancy", "ec2:instanceid", "ec2:createaction"},
    "image": {"ec2:owner", "ec2:public", "ec2:imagetype", "ec2:rootdevicetype", "ec2:region", "ec2:createaction"},
    "snapshot": {"ec2:owner", "ec2:volumesize", "ec2:parentvolume", "ec2:region", "ec2:createaction"},
    "volume": {"ec2:availabilityzone", "ec2:encrypted", "ec2:volumetype", "ec2:volumesize", "ec2:region",
               "ec2:parentsnapshot", "ec2:createaction"},
    "network-interface": {"ec2:vpc", "ec2:subnet", "ec2:networkinterfaceid", "ec2:availabilityzone", "ec2:region",
                          "ec2:createaction"},
    "subnet": {"ec2:vpc", "ec2:subnetid", "ec2:availabilityzone", "ec2:region"},
    "security-group": {"ec2:vpc", "ec2:securitygroupid", "ec2:region"},
    "key-pair": {"ec2:keypairname", "ec2:region"},
    "spot-instances-request": {"ec2:region", "ec2:createaction"},
    "replace-root-volume-task": {"ec2:region", "ec2:createaction"},
}


class Ec2:
    """The account's EC2 as moto holds it, for building request contexts."""

    def __init__(self, account: str, region: str) -> None:
        from moto.ec2.models import ec2_backends

        self.account, self.region = account, region
        self.backend = ec2_backends[account][region]

    def arn(self, rtype: str, rid: str) -> str:
        owner = "" if rtype in ("image", "snapshot") else self.account
        return f"arn:aws:ec2:{self.region}:{owner}:{rtype}/{rid}"

    def tags(self, rid: str) -> dict[str, Any]:
        context: dict[str, Any] = {}
        for key, value in self.backend.tags.get(rid, {}).items():
            context[f"aws:ResourceTag/{key}"] = value
            context[f"ec2:ResourceTag/{key}"] = value
        return context

    def existing(self, rtype: str, rid: str) -> Target:
        context = {"ec2:Region": self.region, **self.tags(rid)}
        b = self.backend
        if rtype == "instance":
            i = b.get_instance_by_id(rid)
            if i is not None:
                association = b.iam_instance_profile_associations.get(rid)
                if association is not None:
                    context["ec2:InstanceProfile"] = association.iam_instance_profile.arn
                context.update({
                    "ec2:MetadataHttpTokens": i.metadata_options.http_tokens,
                    "ec2:MetadataHttpPutResponseHopLimit": i.metadata_options.http_put_response_hop_limit,
                    "ec2:InstanceType": i.instance_type,
                    "ec2:InstanceMarketType": "spot" if i.lifecycle == "spot" else "on-demand",
                    "ec2:AvailabilityZone": i._placement.zone,
                    "ec2:RootDeviceType": "ebs",
                    "ec2:Tenancy": "default",
                    "ec2:InstanceID": rid,
                })
        elif rtype == "image":
            ami = b.amis.get(rid)
            if ami is not None:
                context.update({"ec2:Owner": ami.owner_id, "ec2:Public": "false", "ec2:ImageType": "machine",
                                "ec2:RootDeviceType": "ebs"})
        elif rtype == "snapshot":
            s = b.snapshots.get(rid)
            if s is not None:
                context.update({"ec2:Owner": s.owner_id, "ec2:VolumeSize": s.volume.size if s.volume else 0})
                if s.volume is not None:
                    context["ec2:ParentVolume"] = self.arn("volume", s.volume.id)
        elif rtype == "volume":
            v = b.volumes.get(rid)
            if v is not None:
                context.update({"ec2:AvailabilityZone": v.zone.name if hasattr(v.zone, "name") else v.zone,
                                "ec2:Encrypted": bool(v.encrypted), "ec2:VolumeType": v.volume_type,
                                "ec2:VolumeSize": v.size})
                if v.snapshot_id:
                    context["ec2:ParentSnapshot"] = self.arn("snapshot", v.snapshot_id)
        elif rtype == "network-interface":
            eni = b.enis.get(rid)
            if eni is not None:
                context.update({"ec2:Vpc": self.arn("vpc", eni.subnet.vpc_id),
                                "ec2:Subnet": self.arn("subnet", eni.subnet.id), "ec2:NetworkInterfaceID": rid,
                                "ec2:AvailabilityZone": eni.subnet.availability_zone})
        elif rtype == "subnet":
            s = self._subnet(rid)
            if s is not None:
                context.update({"ec2:Vpc": self.arn("vpc", s.vpc_id), "ec2:SubnetID": rid,
                                "ec2:AvailabilityZone": s.availability_zone})
        elif rtype == "security-group":
            g = b.get_security_group_from_id(rid)
            if g is not None:
                context.update({"ec2:Vpc": self.arn("vpc", g.vpc_id), "ec2:SecurityGroupID": rid})
        elif rtype == "key-pair":
            context["ec2:KeyPairName"] = rid
        return Target(rtype, self.arn(rtype, rid), context)

    def _subnet(self, rid: str) -> Any:
        try:
            return self.backend.get_subnet(rid)
        except Exception:  # noqa: BLE001 - an unknown subnet: EC2 answers that itself
            return None

    def created(self, rtype: str, tags: dict[str, str], **context: Any) -> Target:
        """A resource the request creates: `*` for its id, the request's tags."""
        out = {"ec2:Region": self.region, "aws:TagKeys": sorted(tags)}
        out.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
        out.update({k.replace("__", ":"): v for k, v in context.items() if v is not None})
        return Target(rtype, self.arn(rtype, "*"), out)


def _tag_specs(value: dict[str, Any]) -> dict[str, dict[str, str]]:
    """{resource type: {key: value}} of a request's TagSpecifications."""
    out: dict[str, dict[str, str]] = {}
    for spec in value.get("TagSpecifications") or []:
        tags = {t.get("Key", ""): t.get("Value", "") for t in spec.get("Tags") or []}
        out.setdefault(spec.get("ResourceType", ""), {}).update(tags)
    return out


def _ids(value: Any) -> list[str]:
    return [v for v in (value or []) if isinstance(v, str)]


def requests(account: str, region: str, operation: str, value: dict[str, Any]) -> list[AuthRequest] | None:
    """The authorization requests of one EC2 request; None when this module
    does not model the operation (the caller records it as not evaluated)."""
    ec2 = Ec2(account, region)
    action = f"ec2:{operation}"
    specs = _tag_specs(value)
    targets: list[Target]
    if operation.startswith("Describe"):
        return [AuthRequest(action, "*", {"ec2:Region": region})]
    if operation == "GetSpotPlacementScores":
        # As a Describe: no resource types and no action-specific condition
        # keys in the Service Authorization Reference, only "*".
        return [AuthRequest(action, "*", {"ec2:Region": region})]
    if operation == "RunInstances":
        return _run_instances(ec2, value, specs)
    if operation == "CreateTags":
        tags = {t.get("Key", ""): t.get("Value", "") for t in value.get("Tags") or []}
        out = []
        for rid in _ids(value.get("Resources")):
            target = ec2.existing(_type_of(rid), rid)
            target.context.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
            target.context["aws:TagKeys"] = sorted(tags)
            out.append(AuthRequest(action, target.arn, target.context))
        return out
    if operation == "CreateImage":
        iid = value.get("InstanceId", "")
        targets = [ec2.existing("instance", iid),
                   ec2.created("image", specs.get("image", {}), ec2__Owner=account),
                   ec2.created("snapshot", specs.get("snapshot", {}), ec2__Owner=account)]
        return _with_tag_on_create(action, operation, targets, specs)
    if operation == "CreateVolume":
        targets = [ec2.created("volume", specs.get("volume", {}), ec2__AvailabilityZone=value.get("AvailabilityZone"),
                               ec2__Encrypted=_bool(value.get("Encrypted")), ec2__VolumeType=value.get("VolumeType", "gp2"))]
        if value.get("SnapshotId"):
            targets.append(ec2.existing("snapshot", value["SnapshotId"]))
        return _with_tag_on_create(action, operation, targets, specs)
    if operation == "AttachVolume":
        targets = [ec2.existing("instance", value.get("InstanceId", "")), ec2.existing("volume", value.get("VolumeId", ""))]
    elif operation == "CreateReplaceRootVolumeTask":
        iid = value.get("InstanceId", "")
        targets = [ec2.existing("instance", iid), ec2.created("replace-root-volume-task", specs.get("replace-root-volume-task", {}))]
        # The reference's `volume` here is the root the task creates or swaps
        # in (aws:RequestTag keys): named as a volume, with the request's tags.
        volume = value.get("VolumeId")
        targets.append(Target("volume", ec2.arn("volume", volume or "*"),
                              {"ec2:Region": region, "aws:TagKeys": sorted(specs.get("volume", {}))}))
        if value.get("ImageId"):
            targets.append(ec2.existing("image", value["ImageId"]))
        if value.get("SnapshotId"):
            targets.append(ec2.existing("snapshot", value["SnapshotId"]))
        return _with_tag_on_create(action, operation, targets, specs)
    elif operation == "ModifyInstanceAttribute":
        iid = value.get("InstanceId", "")
        targets = [ec2.existing("instance", iid)]
        for mapping in value.get("BlockDeviceMappings") or []:
            vid = (mapping.get("Ebs") or {}).get("VolumeId") or _volume_at(ec2, iid, mapping.get("DeviceName", ""))
            if vid:
                targets.append(ec2.existing("volume", vid))
        targets += [ec2.existing("security-group", g) for g in _ids(value.get("Groups"))]
    elif operation == "ModifyNetworkInterfaceAttribute":
        eni_id = value.get("NetworkInterfaceId", "")
        targets = [ec2.existing("network-interface", eni_id)]
        eni = ec2.backend.enis.get(eni_id)
        # The instance the interface is attached to, when the request changes
        # the attachment (the reference lists `instance` for this action).
        if value.get("Attachment") and eni is not None and eni.instance is not None:
            targets.append(ec2.existing("instance", eni.instance.id))
        targets += [ec2.existing("security-group", g) for g in _ids(value.get("Groups"))]
    elif operation in ("TerminateInstances", "StopInstances", "StartInstances", "RebootInstances"):
        targets = [ec2.existing("instance", i) for i in _ids(value.get("InstanceIds"))]
    elif operation == "GetConsoleOutput":
        # The service authorization reference lists the instance resource
        # (with its aws:ResourceTag and ec2:ResourceTag keys) for it.
        targets = [ec2.existing("instance", value.get("InstanceId", ""))]
    elif operation == "DeregisterImage":
        targets = [ec2.existing("image", value.get("ImageId", ""))]
    elif operation == "DeleteSnapshot":
        targets = [ec2.existing("snapshot", value.get("SnapshotId", ""))]
    elif operation == "DeleteVolume":
        targets = [ec2.existing("volume", value.get("VolumeId", ""))]
    elif operation == "CreateNetworkInterface":
        subnet = ec2.existing("subnet", value.get("SubnetId", ""))
        targets = [subnet, ec2.created("network-interface", specs.get("network-interface", {}),
                                       ec2__Vpc=subnet.context.get("ec2:Vpc"), ec2__Subnet=subnet.arn)]
        targets += [ec2.existing("security-group", g) for g in _ids(value.get("Groups"))]
        return _with_tag_on_create(action, operation, targets, specs)
    else:
        return None
    return [AuthRequest(action, t.arn, t.context) for t in targets]


def _run_instances(ec2: Ec2, value: dict[str, Any], specs: dict[str, dict[str, str]]) -> list[AuthRequest]:
    action = "ec2:RunInstances"
    image = ec2.existing("image", value.get("ImageId", ""))
    market = (value.get("InstanceMarketOptions") or {}).get("MarketType")
    metadata = value.get("MetadataOptions") or {}
    interfaces = value.get("NetworkInterfaces") or []
    primary = next((n for n in interfaces if str(n.get("DeviceIndex", "0")) == "0"), interfaces[0] if interfaces else {})
    subnet_id = value.get("SubnetId") or primary.get("SubnetId")
    groups = _ids(value.get("SecurityGroupIds")) + _ids(primary.get("Groups"))
    targets = [image]
    if primary.get("NetworkInterfaceId"):
        eni = ec2.existing("network-interface", primary["NetworkInterfaceId"])
        targets.append(eni)
        moto_eni = ec2.backend.enis.get(primary["NetworkInterfaceId"])
        if moto_eni is not None:
            subnet_id = subnet_id or moto_eni.subnet.id
            groups += [g.id for g in moto_eni.group_set]
    subnet = ec2.existing("subnet", subnet_id) if subnet_id else None
    if not primary.get("NetworkInterfaceId"):
        targets.append(ec2.created("network-interface", specs.get("network-interface", {}),
                                   ec2__Vpc=subnet.context.get("ec2:Vpc") if subnet else None,
                                   ec2__Subnet=subnet.arn if subnet else None))
    if subnet is not None:
        targets.append(subnet)
    targets += [ec2.existing("security-group", g) for g in dict.fromkeys(groups)]
    profile = value.get("IamInstanceProfile") or {}
    profile_arn = profile.get("Arn") or (_profile_arn(ec2.account, profile["Name"]) if profile.get("Name") else None)
    zone = subnet.context.get("ec2:AvailabilityZone") if subnet else None
    targets.append(ec2.created(
        "instance", specs.get("instance", {}),
        ec2__InstanceProfile=profile_arn,
        ec2__MetadataHttpTokens=metadata.get("HttpTokens", "optional"),
        ec2__MetadataHttpPutResponseHopLimit=int(metadata.get("HttpPutResponseHopLimit", 1)),
        ec2__InstanceType=value.get("InstanceType", "m1.small"),
        ec2__InstanceMarketType="spot" if market == "spot" else "on-demand",
        ec2__AvailabilityZone=zone, ec2__RootDeviceType="ebs", ec2__Tenancy="default",
    ))
    targets.append(ec2.created("volume", specs.get("volume", {}), ec2__AvailabilityZone=zone))
    if value.get("KeyName"):
        targets.append(ec2.existing("key-pair", value["KeyName"]))
    if market == "spot":
        targets.append(ec2.created("spot-instances-request", specs.get("spot-instances-request", {})))
    out = _with_tag_on_create(action, "RunInstances", targets, specs)
    role = _role_of(ec2.account, profile_arn) if profile_arn else None
    if role is not None:
        out.append(AuthRequest("iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"}))
    return out


def _with_tag_on_create(action: str, operation: str, targets: list[Target], specs: dict[str, dict[str, str]]) -> list[AuthRequest]:
    """The action on each target, then ec2:CreateTags (ec2:CreateAction) on
    each created resource the request tags."""
    out = [AuthRequest(action, t.arn, t.context) for t in targets]
    for t in targets:
        if t.arn.endswith("/*") and specs.get(t.rtype):
            out.append(AuthRequest("ec2:CreateTags", t.arn, {**t.context, "ec2:CreateAction": operation}))
    return out


def _type_of(rid: str) -> str:
    prefix = rid.split("-", 1)[0]
    return {"i": "instance", "ami": "image", "snap": "snapshot", "vol": "volume", "eni": "network-interface",
            "subnet": "subnet", "sg": "security-group", "vpc": "vpc"}.get(prefix, prefix)


def _volume_at(ec2: Ec2, instance_id: str, device: str) -> str | None:
    instance = ec2.backend.get_instance_by_id(instance_id)
    if instance is None:
        return None
    mapping = instance.block_device_mapping.get(device)
    return mapping.volume_id if mapping is not None else None


def _bool(value: Any) -> bool | None:
    return None if value is None else str(value).lower() == "true"


def _profile_arn(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:instance-profile/{name}"


def _role_of(account: str, profile_arn: str) -> str | None:
    """The ARN of the role inside an instance profile (what EC2 passes), if it has one."""
    from moto.iam.models import iam_backends

    for backend in iam_backends[account].values():
        for profile in backend.instance_profiles.values():
            if profile.arn == profile_arn and profile.roles:
                return profile.roles[0].arn
    return None


def kms_key_used(account: str, region: str, operation: str, value: Any) -> str | None:
    """The customer managed key EC2 would use as the caller for this request
    (EBS User Guide, "How EBS encryption works": EC2 calls KMS with the
    caller's credentials when it creates or attaches an encrypted volume),
    which the emulator does not model; None when no such key is involved."""
    if not isinstance(value, dict):
        return None
    ec2 = Ec2(account, region)
    volumes = [value.get("VolumeId")] if operation in ("AttachVolume", "CreateReplaceRootVolumeTask") else []
    snapshots = [value.get("SnapshotId")] if operation in ("CreateVolume", "CreateReplaceRootVolumeTask") else []
    if operation in ("RunInstances", "CreateReplaceRootVolumeTask") and value.get("ImageId"):
        from patches.images import image_snapshots

        ami = ec2.backend.amis.get(value["ImageId"])
        snapshots += image_snapshots(ami) if ami is not None else []
    for vid in filter(None, volumes):
        volume = ec2.backend.volumes.get(vid)
        if volume is not None and volume.encrypted and volume.kms_key_id:
            return volume.kms_key_id
    for sid in filter(None, snapshots):
        snapshot = ec2.backend.snapshots.get(sid)
        if snapshot is not None and snapshot.encrypted and getattr(snapshot, "kms_key_id", None):
            return snapshot.kms_key_id
    if value.get("KmsKeyId"):
        return str(value["KmsKeyId"])
    return None
