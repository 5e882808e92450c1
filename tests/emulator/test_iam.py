"""iam.py: the emulator refuses what each lifeboat role's policy refuses, as
AWS answers it, on a live emulator reached with boto3.

.venv/bin/python -m unittest discover -s tests/emulator
"""

from __future__ import annotations

import json
import threading
import unittest
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

import iam  # first: it puts infra/ on the path
import check_stack  # noqa: E402
import render_policies  # noqa: E402

REGION = "eu-west-1"
_server: Any = None


def setUpModule() -> None:
    global _server
    import emulator
    import patches
    import services
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    patches.apply()
    services.apply()
    _server = make_server("127.0.0.1", 0, emulator.Emulator(DomainDispatcherApplication(create_backend_app)), threaded=True)
    threading.Thread(target=_server.serve_forever, daemon=True).start()


def tearDownModule() -> None:
    _server.shutdown()


_next = iter(range(100, 100000))


def client(service: str, account: str, identity: str = "EMULATOR") -> Any:
    return boto3.client(
        service, region_name=REGION, endpoint_url=f"http://127.0.0.1:{_server.server_port}",
        aws_access_key_id=f"LB{account}{identity}", aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )


# The drill's role and instance profile as the stack deploys them for the
# test account (check_stack's Stack.physical names).
DRILL_ROLE = "lifeboat-DrillInstanceRole-SAMPLE"
DRILL_PROFILE = "lifeboat-DrillInstanceProfile-SAMPLE"


class Account:
    """A fresh account with a node: an instance tagged lifeboat:node, launched
    with the instance profile k8s-node holding the role k8s-node; and the
    stack's drill instance profile."""

    def __init__(self) -> None:
        self.id = f"{next(_next):012d}"
        admin = client("ec2", self.id)
        iam_client = client("iam", self.id)
        iam_client.create_role(RoleName="k8s-node", AssumeRolePolicyDocument="{}")
        iam_client.create_instance_profile(InstanceProfileName="k8s-node")
        iam_client.add_role_to_instance_profile(InstanceProfileName="k8s-node", RoleName="k8s-node")
        iam_client.create_role(RoleName=DRILL_ROLE, AssumeRolePolicyDocument="{}")
        iam_client.create_instance_profile(InstanceProfileName=DRILL_PROFILE)
        iam_client.add_role_to_instance_profile(InstanceProfileName=DRILL_PROFILE, RoleName=DRILL_ROLE)
        vpc = admin.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnet = admin.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        self.node = self.launch({"lifeboat:node": "k8s-master"})
        self.other = self.launch({"Name": "web"})

    def launch(self, tags: dict[str, str]) -> str:
        out = client("ec2", self.id).run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.medium", SubnetId=self.subnet,
            IamInstanceProfile={"Name": "k8s-node"},
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )
        return out["Instances"][0]["InstanceId"]

    def ec2(self, identity: str) -> Any:
        return client("ec2", self.id, identity)


def refused(call: Any) -> dict[str, Any]:
    try:
        call()
    except ClientError as e:
        return {"code": e.response["Error"]["Code"], "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                "message": e.response["Error"].get("Message", "")}
    raise AssertionError("the call was allowed")


class TheDeployedPolicies(unittest.TestCase):
    def test_the_evaluated_policies_are_the_templates_and_the_rendered_files(self) -> None:
        # What the emulator evaluates is the template's statements for the
        # test deployment; the iam-policy-<function>.json files that `make
        # deploy-lambda` uses render to the same statements.
        account = "000000000001"
        stack = iam.deployed_stack(account, REGION, "lifeboat", {})
        evaluated = iam.function_policies(stack)
        self.assertEqual(sorted(evaluated), sorted(check_stack.FUNCTIONS))
        for function, statements in evaluated.items():
            values = render_policies.values(
                partition="aws", region=REGION, account=account, stack="lifeboat",
                node_role_arn=f"arn:aws:iam::{account}:role/k8s-node",
                topic_arn=f"arn:aws:sns:{REGION}:{account}:lifeboat",
                topic_key_arn=stack.physical("TopicKey", "Arn"),
                drill_role_arn=stack.physical("DrillInstanceRole", "Arn"),
                drill_instance_profile_arn=stack.physical("DrillInstanceProfile", "Arn"),
            )
            rendered = render_policies.render(json.loads(render_policies.policy_path(function).read_text()), values)
            key = lambda s: json.dumps(s, sort_keys=True)  # noqa: E731
            self.assertEqual(sorted(map(key, statements)), sorted(map(key, rendered["Statement"])), function)


class Enforcement(unittest.TestCase):
    def test_the_tests_own_credentials_are_not_restricted(self) -> None:
        a = Account()
        a.ec2("EMULATOR").create_tags(Resources=[a.other], Tags=[{"Key": "x", "Value": "y"}])

    def test_ec2_refuses_with_unauthorized_operation_naming_the_action_and_resource(self) -> None:
        a = Account()
        e = refused(lambda: a.ec2("INTERRUPTIONHANDLER").create_tags(
            Resources=[a.other], Tags=[{"Key": "lifeboat:state-source", "Value": "backup"}]))
        self.assertEqual((e["code"], e["status"]), ("UnauthorizedOperation", 403))
        self.assertIn(f"ec2:CreateTags on resource: arn:aws:ec2:{REGION}:{a.id}:instance/{a.other}", e["message"])
        denials = iam.control("GET", "/lifeboat/iam/denials", a.id, {}, REGION)
        self.assertEqual(denials[-1]["action"], "ec2:CreateTags")

    def test_a_grant_conditioned_on_the_resources_tag_applies_to_node_instances_only(self) -> None:
        a = Account()
        a.ec2("INTERRUPTIONHANDLER").create_tags(Resources=[a.node], Tags=[{"Key": "lifeboat:state-source", "Value": "backup"}])
        refused(lambda: a.ec2("INTERRUPTIONHANDLER").create_tags(
            Resources=[a.node], Tags=[{"Key": "Name", "Value": "renamed"}]))

    def test_the_pruner_deletes_only_node_tagged_images(self) -> None:
        a = Account()
        admin = a.ec2("EMULATOR")
        image = admin.create_image(InstanceId=a.other, Name="web-1")["ImageId"]
        e = refused(lambda: a.ec2("RETENTIONPRUNER").deregister_image(ImageId=image))
        self.assertEqual(e["code"], "UnauthorizedOperation")
        admin.create_tags(Resources=[image], Tags=[{"Key": "lifeboat:node", "Value": "k8s-master"}])
        a.ec2("RETENTIONPRUNER").deregister_image(ImageId=image)

    def test_a_function_may_not_call_what_its_role_lacks(self) -> None:
        a = Account()
        refused(lambda: a.ec2("SCHEDULEDBACKUP").terminate_instances(InstanceIds=[a.node]))
        refused(lambda: a.ec2("INTERRUPTIONHANDLER").terminate_instances(InstanceIds=[a.node]))

    def test_a_launch_passes_only_the_node_role_with_imdsv2(self) -> None:
        a = Account()
        admin = client("iam", a.id)
        admin.create_role(RoleName="admin", AssumeRolePolicyDocument="{}")
        admin.create_instance_profile(InstanceProfileName="admin")
        admin.add_role_to_instance_profile(InstanceProfileName="admin", RoleName="admin")
        image = a.ec2("EMULATOR").create_image(
            InstanceId=a.node, Name="k8s-master-1",
            TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "lifeboat:node", "Value": "k8s-master"}]}])["ImageId"]

        def launch(profile: str, tokens: str, interface_tagged: bool = True) -> Any:
            tagged = ("instance", "volume", "network-interface") if interface_tagged else ("instance", "volume")
            return a.ec2("INTERRUPTIONHANDLER").run_instances(
                ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.medium", SubnetId=a.subnet,
                IamInstanceProfile={"Name": profile}, MetadataOptions={"HttpTokens": tokens},
                TagSpecifications=[{"ResourceType": t, "Tags": [{"Key": "lifeboat:node", "Value": "k8s-master"}]}
                                   for t in tagged])

        e = refused(lambda: launch("k8s-node", "required", interface_tagged=False))
        self.assertIn(f"ec2:RunInstances on resource: arn:aws:ec2:{REGION}:{a.id}:network-interface/*", e["message"])
        e = refused(lambda: launch("admin", "required"))
        self.assertIn(f"iam:PassRole on resource: arn:aws:iam::{a.id}:role/admin", e["message"])
        e = refused(lambda: launch("k8s-node", "optional"))
        self.assertIn("ec2:RunInstances on resource: arn:aws:ec2", e["message"])
        self.assertIn(":instance/*", e["message"])
        launch("k8s-node", "required")

    def test_a_clone_launches_only_with_the_drill_profile_and_hop_limit_1_and_a_node_never_with_it(self) -> None:
        a = Account()
        image = a.ec2("EMULATOR").create_image(
            InstanceId=a.node, Name="k8s-master-1",
            TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "lifeboat:node", "Value": "k8s-master"}]}])["ImageId"]

        def launch(tag: str, profile: str, hops: int) -> Any:
            return a.ec2("INTERRUPTIONHANDLER").run_instances(
                ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.medium", SubnetId=a.subnet,
                IamInstanceProfile={"Name": profile},
                MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": hops},
                TagSpecifications=[{"ResourceType": t, "Tags": [{"Key": tag, "Value": "k8s-master"}]}
                                   for t in ("instance", "volume", "network-interface")])

        instance = f"ec2:RunInstances on resource: arn:aws:ec2:{REGION}:{a.id}:instance/*"
        # A clone with the node's profile (its credentials): refused.
        e = refused(lambda: launch("lifeboat:drill-of", "k8s-node", 1))
        self.assertEqual(e["code"], "UnauthorizedOperation")
        self.assertIn(instance, e["message"])
        # With the drill's profile but a hop limit a pod can cross: refused.
        self.assertIn(instance, refused(lambda: launch("lifeboat:drill-of", DRILL_PROFILE, 2))["message"])
        # A node with the drill's profile: refused.
        self.assertIn(instance, refused(lambda: launch("lifeboat:node", DRILL_PROFILE, 2))["message"])
        # As a drill launches its clone, and as a relaunch launches a node.
        launch("lifeboat:drill-of", DRILL_PROFILE, 1)
        launch("lifeboat:node", "k8s-node", 2)
        # The drill's role may be passed only to EC2, and is: no other role is.
        statements = iam.deployment(a.id, REGION).policies["interruption-handler"]
        passed = [s["Resource"] for s in statements if s["Action"] == "iam:PassRole"]
        self.assertEqual(passed, [f"arn:aws:iam::{a.id}:role/k8s-node", f"arn:aws:iam::{a.id}:role/{DRILL_ROLE}"])

    def test_ssm_refuses_commands_to_untagged_instances_and_other_documents(self) -> None:
        a = Account()
        ssm = client("ssm", a.id, "INTERRUPTIONHANDLER")
        iam.deployment(a.id, REGION)  # the stack's documents
        e = refused(lambda: ssm.send_command(DocumentName="lifeboat-health", InstanceIds=[a.other]))
        self.assertEqual(e["code"], "AccessDeniedException")
        e = refused(lambda: ssm.send_command(DocumentName="AWS-RunShellScript", InstanceIds=[a.node],
                                             Parameters={"commands": ["id"]}))
        self.assertIn(f"arn:aws:ssm:{REGION}::document/AWS-RunShellScript", e["message"])

    def test_the_operator_may_send_the_repairs_dry_run_to_a_node_and_nothing_else(self) -> None:
        a = Account()
        ssm = client("ssm", a.id, "OPERATOR")
        iam.deployment(a.id, REGION)  # the stack's documents
        dry_run = {"args": ["--dry-run --timeout 60"], "executionTimeout": ["120"]}
        sent = ssm.send_command(DocumentName="lifeboat-repair", DocumentVersion="$LATEST", InstanceIds=[a.node],
                                Parameters=dry_run)
        self.assertEqual(sent["Command"]["DocumentName"], "lifeboat-repair")
        e = refused(lambda: ssm.send_command(DocumentName="lifeboat-repair", InstanceIds=[a.other], Parameters=dry_run))
        self.assertEqual(e["code"], "AccessDeniedException")
        e = refused(lambda: ssm.send_command(DocumentName="lifeboat-health", InstanceIds=[a.node],
                                             Parameters={"args": ["k8s-master --timeout 120"]}))
        self.assertIn(f"arn:aws:ssm:{REGION}:{a.id}:document/lifeboat-health", e["message"])

    def test_sns_refuses_another_topic_with_authorization_error(self) -> None:
        a = Account()
        sns = client("sns", a.id)
        other = sns.create_topic(Name="other")["TopicArn"]
        e = refused(lambda: client("sns", a.id, "INTERRUPTIONHANDLER").publish(TopicArn=other, Message="m", Subject="s"))
        self.assertEqual((e["code"], e["status"]), ("AuthorizationError", 403))

    def test_a_planted_policy_replaces_the_deployed_one(self) -> None:
        a = Account()
        statements = iam.deployment(a.id, REGION).policies["interruption-handler"]
        kept = [s for s in statements if s.get("Sid") != "TagReplacementsState"]
        iam.control("POST", "/lifeboat/iam/policy", a.id, {"function": "interruption-handler", "statements": kept}, REGION)
        refused(lambda: a.ec2("INTERRUPTIONHANDLER").create_tags(
            Resources=[a.node], Tags=[{"Key": "lifeboat:state-source", "Value": "backup"}]))
