"""iam_policy.evaluate against AWS's documented examples and edge cases.

.venv/bin/python -m unittest discover -s tests/emulator -p 'test_iam_policy.py' -v

Pages named in comments are from the AWS IAM User Guide unless said otherwise
("EC2 UG" is the Amazon EC2 User Guide).
"""

from __future__ import annotations

import unittest
from collections.abc import Mapping
from typing import Any

from iam_policy import AuthRequest, Decision, Unevaluable, evaluate

ACCOUNT = "111122223333"
INSTANCE = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0"
VOLUME = f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-0123456789abcdef0"
IMAGE = "arn:aws:ec2:us-east-1::image/ami-0123456789abcdef0"


def policy(*statements: Mapping[str, Any], version: str | None = "2012-10-17") -> dict[str, Any]:
    document: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        document["Version"] = version
    return document


def check(
    policies: Mapping[str, Any] | list[Mapping[str, Any]],
    action: str,
    resource: str = "*",
    context: Mapping[str, Any] | None = None,
) -> Decision:
    documents = policies if isinstance(policies, list) else [policies]
    return evaluate(documents, AuthRequest(action, resource, context or {}))


def holds(condition: Mapping[str, Any], context: Mapping[str, Any] | None = None, version: str | None = "2012-10-17") -> bool:
    """Whether an Allow statement with only this condition allows s3:GetObject."""
    statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": condition}
    return check(policy(statement, version=version), "s3:GetObject", "arn:aws:s3:::b/k", context).allowed


ALLOW_ALL = policy({"Effect": "Allow", "Action": "*", "Resource": "*"})


# --- (a) calibration: AWS documentation examples ---------------------------------------


class Ec2TagOnCreate(unittest.TestCase):
    # EC2 UG "Grant permission to tag Amazon EC2 resources during creation" (first example,
    # which has no Version element).
    DOC = {
        "Statement": [
            {"Effect": "Allow", "Action": ["ec2:RunInstances"], "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": ["ec2:CreateTags"],
                "Resource": f"arn:aws:ec2:us-east-1:{ACCOUNT}:*/*",
                "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
            },
        ]
    }

    def test_tags_applied_by_run_instances_are_allowed(self) -> None:
        decision = check(self.DOC, "ec2:CreateTags", VOLUME, {"ec2:CreateAction": "RunInstances"})
        self.assertTrue(decision.allowed)
        self.assertEqual(decision.statements, ("#1",))

    def test_existing_resources_cannot_be_tagged(self) -> None:
        # "Users are not permitted to tag any existing resources (they cannot call the
        # ec2:CreateTags action directly)": the key is absent from a direct CreateTags.
        decision = check(self.DOC, "ec2:CreateTags", INSTANCE)
        self.assertFalse(decision.allowed)
        self.assertFalse(decision.explicit_deny)
        self.assertEqual(decision.reason, f"no statement allows ec2:CreateTags on {INSTANCE}")

    def test_tags_applied_by_another_create_action_are_refused(self) -> None:
        self.assertFalse(check(self.DOC, "ec2:CreateTags", VOLUME, {"ec2:CreateAction": "CreateVolume"}).allowed)

    def test_tags_in_another_account_are_refused(self) -> None:
        other = "arn:aws:ec2:us-east-1:999999999999:instance/i-1"
        self.assertFalse(check(self.DOC, "ec2:CreateTags", other, {"ec2:CreateAction": "RunInstances"}).allowed)

    def test_run_instances_on_any_resource(self) -> None:
        self.assertTrue(check(self.DOC, "ec2:RunInstances", IMAGE).allowed)


class Ec2SpecificTags(unittest.TestCase):
    # EC2 UG "Example policies for working with the AWS CLI or an AWS SDK", "Launch instances
    # (RunInstances) > Tags": "If instances are tagged on creation, they must be tagged with a
    # specific tag".
    DOC = policy(
        {"Effect": "Allow", "Action": ["ec2:RunInstances"], "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": ["ec2:CreateTags"],
            "Resource": f"arn:aws:ec2:us-east-1:{ACCOUNT}:*/*",
            "Condition": {
                "StringEquals": {"aws:RequestTag/purpose": "test", "ec2:CreateAction": "RunInstances"},
                "ForAllValues:StringEquals": {"aws:TagKeys": "purpose"},
            },
        },
    )

    def context(self, tags: dict[str, str]) -> dict[str, Any]:
        context: dict[str, Any] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
        return context | {"aws:TagKeys": list(tags), "ec2:CreateAction": "RunInstances"}

    def test_the_one_tag_is_allowed(self) -> None:
        self.assertTrue(check(self.DOC, "ec2:CreateTags", INSTANCE, self.context({"purpose": "test"})).allowed)

    def test_no_other_tags_are_allowed(self) -> None:
        context = self.context({"purpose": "test", "owner": "x"})
        self.assertFalse(check(self.DOC, "ec2:CreateTags", INSTANCE, context).allowed)

    def test_another_value_is_refused(self) -> None:
        self.assertFalse(check(self.DOC, "ec2:CreateTags", INSTANCE, self.context({"purpose": "prod"})).allowed)

    def test_tag_key_case_is_enforced_only_by_tag_keys(self) -> None:
        # EC2 UG "Grant permission to tag ... during creation": "the condition key is not
        # case-sensitive and the condition value is case-sensitive. Therefore, to enforce the
        # case-sensitivity of a tag key, use the aws:TagKeys condition key".
        context = self.context({"Purpose": "test"})
        self.assertFalse(check(self.DOC, "ec2:CreateTags", INSTANCE, context).allowed)
        without_tag_keys = policy({**self.DOC["Statement"][1], "Condition": {"StringEquals": {"aws:RequestTag/purpose": "test"}}})
        self.assertTrue(check(without_tag_keys, "ec2:CreateTags", INSTANCE, context).allowed)


class Ec2RequiredTags(unittest.TestCase):
    # EC2 UG "Example policies ...", "Tag instances and volumes on creation with at least one
    # specific tag" (ForAnyValue) and "... with specific tags" (aws:RequestTag).
    ANY_TAG = policy(
        {
            "Effect": "Allow",
            "Action": ["ec2:RunInstances"],
            "Resource": ["arn:aws:ec2:us-east-1::image/*", f"arn:aws:ec2:us-east-1:{ACCOUNT}:subnet/*"],
        },
        {
            "Effect": "Allow",
            "Action": ["ec2:RunInstances"],
            "Resource": [f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/*", f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*"],
            "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": ["environment", "webserver"]}},
        },
    )
    SPECIFIC_TAGS = policy(
        {
            "Effect": "Allow",
            "Action": ["ec2:RunInstances"],
            "Resource": [f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/*", f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*"],
            "Condition": {
                "StringEquals": {"aws:RequestTag/environment": "production", "aws:RequestTag/purpose": "webserver"}
            },
        }
    )

    def test_at_least_one_tag_is_required(self) -> None:
        self.assertFalse(check(self.ANY_TAG, "ec2:RunInstances", INSTANCE).allowed)
        self.assertFalse(check(self.ANY_TAG, "ec2:RunInstances", INSTANCE, {"aws:TagKeys": []}).allowed)
        self.assertFalse(check(self.ANY_TAG, "ec2:RunInstances", INSTANCE, {"aws:TagKeys": ["owner"]}).allowed)
        self.assertTrue(check(self.ANY_TAG, "ec2:RunInstances", INSTANCE, {"aws:TagKeys": ["owner", "webserver"]}).allowed)

    def test_untagged_resources_need_no_tags(self) -> None:
        self.assertTrue(check(self.ANY_TAG, "ec2:RunInstances", IMAGE).allowed)

    def test_both_specific_tags_are_required(self) -> None:
        both = {"aws:RequestTag/environment": "production", "aws:RequestTag/purpose": "webserver"}
        self.assertTrue(check(self.SPECIFIC_TAGS, "ec2:RunInstances", VOLUME, both).allowed)
        one = {"aws:RequestTag/environment": "production"}
        self.assertFalse(check(self.SPECIFIC_TAGS, "ec2:RunInstances", VOLUME, one).allowed)


class RequestTagsAndTagKeys(unittest.TestCase):
    # "Controlling access to AWS resources using tags", "Controlling access during AWS requests".
    DOC = policy(
        {
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": {
                "StringEquals": {"aws:RequestTag/environment": ["preprod", "production"]},
                "ForAllValues:StringEquals": {"aws:TagKeys": "environment"},
            },
        }
    )

    def test_environment_tag_with_allowed_value(self) -> None:
        context = {"aws:RequestTag/environment": "preprod", "aws:TagKeys": ["environment"]}
        self.assertTrue(check(self.DOC, "ec2:CreateTags", INSTANCE, context).allowed)

    def test_accidental_capitalised_key_is_stopped_by_tag_keys(self) -> None:
        # "This stops users from including other keys, such as accidentally using Environment
        # instead of environment."
        context = {"aws:RequestTag/Environment": "preprod", "aws:TagKeys": ["Environment"]}
        self.assertFalse(check(self.DOC, "ec2:CreateTags", INSTANCE, context).allowed)

    def test_other_value_is_refused(self) -> None:
        context = {"aws:RequestTag/environment": "test", "aws:TagKeys": ["environment"]}
        self.assertFalse(check(self.DOC, "ec2:CreateTags", INSTANCE, context).allowed)


class ForAllValuesPitfall(unittest.TestCase):
    # "Controlling access to AWS resources using tags", "Controlling access based on tag keys",
    # with the warning of "Creating a condition with multiple keys or values": ForAllValues
    # "returns true if there are no keys in the request, or if the key values resolve to a null
    # data set".
    DOC = policy(
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:CreateSecret", "secretsmanager:TagResource"],
            "Resource": "*",
            "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}},
        }
    )

    def test_request_without_tags_is_allowed(self) -> None:
        self.assertTrue(check(self.DOC, "secretsmanager:CreateSecret").allowed)
        self.assertTrue(check(self.DOC, "secretsmanager:CreateSecret", context={"aws:TagKeys": []}).allowed)

    def test_listed_keys_are_allowed(self) -> None:
        context = {"aws:TagKeys": ["cost-center", "environment"]}
        self.assertTrue(check(self.DOC, "secretsmanager:CreateSecret", context=context).allowed)

    def test_an_unlisted_key_is_refused(self) -> None:
        context = {"aws:TagKeys": ["environment", "owner"]}
        self.assertFalse(check(self.DOC, "secretsmanager:CreateSecret", context=context).allowed)


class MultivaluedDynamoDbExamples(unittest.TestCase):
    # "Creating a condition with multiple keys or values", "Evaluation logic for multiple values
    # with condition set operators".
    def test_for_all_values_needs_every_request_value_listed(self) -> None:
        doc = policy(
            {
                "Effect": "Allow",
                "Action": "dynamodb:GetItem",
                "Resource": "arn:aws:dynamodb:*:*:table/Thread",
                "Condition": {"ForAllValues:StringEquals": {"dynamodb:Attributes": ["PostDateTime", "Message", "Tags"]}},
            }
        )
        table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/Thread"
        self.assertFalse(check(doc, "dynamodb:GetItem", table, {"dynamodb:Attributes": ["PostDateTime", "UserName"]}).allowed)
        self.assertTrue(check(doc, "dynamodb:GetItem", table, {"dynamodb:Attributes": ["PostDateTime", "Tags"]}).allowed)

    def test_for_any_value_deny(self) -> None:
        deny = policy(
            {
                "Effect": "Deny",
                "Action": "dynamodb:PutItem",
                "Resource": "arn:aws:dynamodb:*:*:table/Thread",
                "Condition": {"ForAnyValue:StringEquals": {"dynamodb:Attributes": ["ID", "PostDateTime"]}},
            }
        )
        table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/Thread"
        denied = check([ALLOW_ALL, deny], "dynamodb:PutItem", table, {"dynamodb:Attributes": ["UserName", "Message", "PostDateTime"]})
        self.assertTrue(denied.explicit_deny)
        self.assertEqual(denied.statements, ("#1",))
        allowed = check([ALLOW_ALL, deny], "dynamodb:PutItem", table, {"dynamodb:Attributes": ["UserName"]})
        self.assertTrue(allowed.allowed)


class PassRole(unittest.TestCase):
    # "IAM: Pass an IAM role to a specific AWS service".
    DOC = policy(
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": "*",
            "Condition": {"StringEquals": {"iam:PassedToService": "cloudwatch.amazonaws.com"}},
        }
    )
    ROLE = f"arn:aws:iam::{ACCOUNT}:role/lifeboat-node"

    def test_passing_to_the_named_service(self) -> None:
        self.assertTrue(check(self.DOC, "iam:PassRole", self.ROLE, {"iam:PassedToService": "cloudwatch.amazonaws.com"}).allowed)

    def test_passing_to_another_service(self) -> None:
        self.assertFalse(check(self.DOC, "iam:PassRole", self.ROLE, {"iam:PassedToService": "ec2.amazonaws.com"}).allowed)
        self.assertFalse(check(self.DOC, "iam:PassRole", self.ROLE).allowed)

    def test_resource_restricts_the_roles(self) -> None:
        # "Granting a user permissions to pass a role to an AWS service", example 1.
        doc = policy(
            {
                "Effect": "Allow",
                "Action": ["iam:GetRole", "iam:PassRole"],
                "Resource": f"arn:aws:iam::{ACCOUNT}:role/EC2-roles-for-XYZ-*",
            }
        )
        self.assertTrue(check(doc, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/EC2-roles-for-XYZ-web").allowed)
        self.assertFalse(check(doc, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin").allowed)


class NotActionExamples(unittest.TestCase):
    # "IAM JSON policy elements: NotAction".
    def test_allow_not_action_is_scoped_by_resource(self) -> None:
        doc = policy({"Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "arn:aws:s3:::*"})
        self.assertTrue(check(doc, "s3:GetObject", "arn:aws:s3:::bucket/key").allowed)
        self.assertFalse(check(doc, "s3:DeleteBucket", "arn:aws:s3:::bucket").allowed)
        # "This does not allow users to use the ListAllMyBuckets S3 API operation, because that
        # action requires the "*" resource", nor "actions in other services".
        self.assertFalse(check(doc, "s3:ListAllMyBuckets", "*").allowed)
        self.assertFalse(check(doc, "ec2:RunInstances", INSTANCE).allowed)

    def test_everything_except_iam(self) -> None:
        doc = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
        self.assertTrue(check(doc, "ec2:RunInstances", INSTANCE).allowed)
        self.assertFalse(check(doc, "iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/x").allowed)

    def test_deny_not_action_without_mfa(self) -> None:
        deny = policy(
            {
                "Sid": "DenyAllUsersNotUsingMFA",
                "Effect": "Deny",
                "NotAction": "iam:*",
                "Resource": "*",
                "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
            }
        )
        without_key = check([ALLOW_ALL, deny], "ec2:RunInstances", INSTANCE)
        self.assertTrue(without_key.explicit_deny)
        self.assertEqual(without_key.reason, "explicitly denied by DenyAllUsersNotUsingMFA")
        self.assertTrue(check([ALLOW_ALL, deny], "ec2:RunInstances", INSTANCE, {"aws:MultiFactorAuthPresent": False}).explicit_deny)
        self.assertTrue(check([ALLOW_ALL, deny], "ec2:RunInstances", INSTANCE, {"aws:MultiFactorAuthPresent": True}).allowed)
        self.assertTrue(check([ALLOW_ALL, deny], "iam:ListUsers").allowed)


class NotResourceExample(unittest.TestCase):
    # "IAM JSON policy elements: NotResource" (HRPayroll).
    DENY = policy(
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "NotResource": ["arn:aws:s3:::HRBucket/Payroll", "arn:aws:s3:::HRBucket/Payroll/*"],
        }
    )

    def test_only_the_payroll_folder_escapes_the_deny(self) -> None:
        self.assertTrue(check([ALLOW_ALL, self.DENY], "s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/2024.csv").allowed)
        self.assertTrue(check([ALLOW_ALL, self.DENY], "s3:GetObject", "arn:aws:s3:::OtherBucket/x").explicit_deny)
        self.assertTrue(check([ALLOW_ALL, self.DENY], "s3:GetObject", "arn:aws:s3:::HRBucket/payroll/x").explicit_deny)

    def test_the_deny_does_not_reach_other_services(self) -> None:
        self.assertTrue(check([ALLOW_ALL, self.DENY], "ec2:RunInstances", INSTANCE).allowed)

    def test_the_deny_grants_nothing(self) -> None:
        self.assertFalse(check(self.DENY, "s3:GetObject", "arn:aws:s3:::HRBucket/Payroll").allowed)


class ExplicitDenyWithCondition(unittest.TestCase):
    # "AWS: Denies access to AWS based on the source IP".
    DENY_IP = policy(
        {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]},
                "Bool": {"aws:ViaAWSService": "false"},
            },
        }
    )

    def test_outside_the_ranges_is_denied(self) -> None:
        context = {"aws:SourceIp": "198.51.100.7", "aws:ViaAWSService": False}
        decision = check([ALLOW_ALL, self.DENY_IP], "ec2:RunInstances", INSTANCE, context)
        self.assertEqual((decision.allowed, decision.explicit_deny, decision.statements), (False, True, ("#1",)))

    def test_inside_a_range_is_allowed(self) -> None:
        context = {"aws:SourceIp": "203.0.113.9", "aws:ViaAWSService": False}
        self.assertTrue(check([ALLOW_ALL, self.DENY_IP], "ec2:RunInstances", INSTANCE, context).allowed)

    def test_calls_by_aws_services_are_not_denied(self) -> None:
        context = {"aws:SourceIp": "198.51.100.7", "aws:ViaAWSService": True}
        self.assertTrue(check([ALLOW_ALL, self.DENY_IP], "ec2:RunInstances", INSTANCE, context).allowed)

    def test_requested_region(self) -> None:
        # "AWS: Denies access to AWS based on the requested Region".
        deny = policy(
            {
                "Sid": "DenyAllOutsideRequestedRegions",
                "Effect": "Deny",
                "NotAction": ["cloudfront:*", "iam:*", "route53:*", "support:*"],
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["eu-central-1", "eu-west-1", "eu-west-2", "eu-west-3"]}},
            }
        )
        self.assertTrue(check([ALLOW_ALL, deny], "ec2:RunInstances", INSTANCE, {"aws:RequestedRegion": "us-east-1"}).explicit_deny)
        self.assertTrue(check([ALLOW_ALL, deny], "ec2:RunInstances", INSTANCE, {"aws:RequestedRegion": "eu-west-1"}).allowed)
        self.assertTrue(check([ALLOW_ALL, deny], "iam:ListRoles", "*", {"aws:RequestedRegion": "us-east-1"}).allowed)


class ExplicitAndImplicitDenies(unittest.TestCase):
    # "Policy evaluation logic", "The difference between explicit and implicit denies".
    DOC = policy(
        {"Sid": "AllowGetList", "Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"},
        {"Sid": "DenyReports", "Effect": "Deny", "Action": "iam:*Report", "Resource": "*"},
    )

    def test_the_three_outcomes(self) -> None:
        self.assertEqual(check(self.DOC, "iam:GetRole").statements, ("AllowGetList",))
        implicit = check(self.DOC, "iam:CreatePolicy")
        self.assertEqual((implicit.allowed, implicit.explicit_deny), (False, False))
        explicit = check(self.DOC, "iam:GetOrganizationsAccessReport")
        self.assertEqual((explicit.allowed, explicit.explicit_deny, explicit.statements), (False, True, ("DenyReports",)))

    def test_another_allow_does_not_override_the_deny(self) -> None:
        extra = policy({"Effect": "Allow", "Action": "iam:GenerateCredentialReport", "Resource": "*"})
        self.assertTrue(check([self.DOC, extra], "iam:GenerateCredentialReport").explicit_deny)


class ConditionOperatorPageExamples(unittest.TestCase):
    # "IAM JSON policy elements: Condition operators".
    def test_string_like_with_a_variable(self) -> None:
        condition = {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/"]}}
        self.assertTrue(holds(condition, {"s3:prefix": "home/david/", "aws:username": "david"}))
        self.assertTrue(holds(condition, {"s3:prefix": "", "aws:username": "david"}))
        self.assertFalse(holds(condition, {"s3:prefix": "home/adele/", "aws:username": "david"}))

    def test_if_exists_on_run_instances(self) -> None:
        # THISPOLICYDOESNOTWORK: the image has no ec2:InstanceType key; StringLikeIfExists does.
        types = ["t1.*", "t2.*", "m3.*"]
        run = {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*"}
        broken = policy({**run, "Sid": "THISPOLICYDOESNOTWORK", "Condition": {"StringLike": {"ec2:InstanceType": types}}})
        fixed = policy({**run, "Sid": "RunInstance", "Condition": {"StringLikeIfExists": {"ec2:InstanceType": types}}})
        self.assertFalse(check(broken, "ec2:RunInstances", IMAGE).allowed)
        self.assertTrue(check(fixed, "ec2:RunInstances", IMAGE).allowed)
        self.assertTrue(check(fixed, "ec2:RunInstances", INSTANCE, {"ec2:InstanceType": "t2.micro"}).allowed)
        self.assertFalse(check(fixed, "ec2:RunInstances", INSTANCE, {"ec2:InstanceType": "m5.large"}).allowed)

    def test_arn_like_compares_segments_where_string_like_does_not(self) -> None:
        pattern = "arn:aws:someservice:*:111122223333:finance/*"
        value = "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"
        self.assertTrue(holds({"StringLike": {"aws:SourceArn": pattern}}, {"aws:SourceArn": value}))
        self.assertFalse(holds({"ArnLike": {"aws:SourceArn": pattern}}, {"aws:SourceArn": value}))

    def test_null_token_issue_time(self) -> None:
        condition = {"Null": {"aws:TokenIssueTime": "true"}}
        self.assertTrue(holds(condition))
        self.assertFalse(holds(condition, {"aws:TokenIssueTime": "2024-01-01T00:00:00Z"}))

    def test_numeric_max_keys(self) -> None:
        condition = {"NumericLessThanEquals": {"s3:max-keys": "10"}}
        self.assertTrue(holds(condition, {"s3:max-keys": "10"}))
        self.assertFalse(holds(condition, {"s3:max-keys": 11}))


class TagsAndVariablesExamples(unittest.TestCase):
    def test_owner_tag_equals_user_name_with_key_in_any_case(self) -> None:
        # "Controlling access to AWS resources using tags": "the instance must be tagged
        # Owner=richard-roe or owner=richard-roe ... because condition key names are not
        # case-sensitive".
        doc = policy(
            {
                "Effect": "Allow",
                "Action": ["ec2:StartInstances", "ec2:StopInstances"],
                "Resource": "arn:aws:ec2:*:*:instance/*",
                "Condition": {"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}},
            }
        )
        for key in ("aws:ResourceTag/Owner", "aws:resourcetag/owner", "AWS:ResourceTag/OWNER"):
            with self.subTest(key=key):
                context = {key: "richard-roe", "aws:username": "richard-roe"}
                self.assertTrue(check(doc, "ec2:StartInstances", INSTANCE, context).allowed)
        context = {"aws:ResourceTag/Owner": "richard-roe", "aws:username": "Richard-Roe"}
        self.assertFalse(check(doc, "ec2:StartInstances", INSTANCE, context).allowed)

    def test_default_value(self) -> None:
        # "IAM policy elements: Variables and tags", "Specifying default values".
        bucket = "arn:aws:s3:::DOC-EXAMPLE-BUCKET-${aws:PrincipalTag/team, 'company-wide'}"
        doc = policy({"Effect": "Allow", "Action": "s3:*", "Resource": bucket})
        yellow = {"aws:PrincipalTag/team": "yellow"}
        self.assertTrue(check(doc, "s3:ListBucket", "arn:aws:s3:::DOC-EXAMPLE-BUCKET-yellow", yellow).allowed)
        self.assertFalse(check(doc, "s3:ListBucket", "arn:aws:s3:::DOC-EXAMPLE-BUCKET-company-wide", yellow).allowed)
        self.assertTrue(check(doc, "s3:ListBucket", "arn:aws:s3:::DOC-EXAMPLE-BUCKET-company-wide").allowed)

    def test_resource_wildcards_span_slashes(self) -> None:
        # "IAM JSON policy elements: Resource", "Using wildcards in resource ARNs".
        doc = policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*/test/*"})
        matching = ("1/test/object.jpg", "1/2/test/3/object.jpg", "1///test///object.jpg", "1/test/.jpg", "/test/object.jpg", "1/test/")
        for key in matching:
            with self.subTest(key=key):
                self.assertTrue(check(doc, "s3:GetObject", f"arn:aws:s3:::DOC-EXAMPLE-BUCKET/{key}").allowed)
        for key in ("1-test/object.jpg", "test/object.jpg", "1/2/test.jpg"):
            with self.subTest(key=key):
                self.assertFalse(check(doc, "s3:GetObject", f"arn:aws:s3:::DOC-EXAMPLE-BUCKET/{key}").allowed)

    def test_string_equals_is_case_sensitive_ignore_case_is_not(self) -> None:
        # "IAM JSON policy elements: Condition" (johndoe / JohnDoe).
        self.assertFalse(holds({"StringEquals": {"aws:username": "johndoe"}}, {"aws:username": "JohnDoe"}))
        self.assertTrue(holds({"StringEqualsIgnoreCase": {"aws:username": "johndoe"}}, {"aws:username": "JohnDoe"}))


# --- (b) one focused test per operator family and edge case --------------------------


class Elements(unittest.TestCase):
    def test_action_is_case_insensitive_with_question_mark(self) -> None:
        doc = policy({"Effect": "Allow", "Action": "EC2:describe?nstances", "Resource": "*"})
        self.assertTrue(check(doc, "ec2:DescribeInstances").allowed)
        self.assertFalse(check(doc, "ec2:DescribeInstanceStatus").allowed)

    def test_resource_is_case_sensitive_and_star_spans_colons(self) -> None:
        doc = policy({"Effect": "Allow", "Action": "ec2:*", "Resource": "arn:aws:ec2:*"})
        self.assertTrue(check(doc, "ec2:StartInstances", INSTANCE).allowed)
        self.assertFalse(check(doc, "ec2:StartInstances", INSTANCE.upper()).allowed)
        self.assertFalse(check(doc, "ec2:DescribeInstances", "*").allowed)

    def test_resource_question_mark_is_one_character(self) -> None:
        doc = policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/k?"})
        self.assertTrue(check(doc, "s3:GetObject", "arn:aws:s3:::b/k1").allowed)
        self.assertFalse(check(doc, "s3:GetObject", "arn:aws:s3:::b/k12").allowed)

    def test_statement_as_object_and_sid_or_index(self) -> None:
        doc = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}
        self.assertEqual(check(doc, "s3:GetObject").statements, ("#0",))
        two = [ALLOW_ALL, policy({"Sid": "Mine", "Effect": "Allow", "Action": "s3:*", "Resource": "*"})]
        decision = check(two, "s3:GetObject")
        self.assertEqual(decision.statements, ("#0", "Mine"))
        self.assertEqual(decision.reason, "allowed by #0, Mine")

    def test_no_policies_is_an_implicit_deny(self) -> None:
        decision = evaluate([], AuthRequest("ec2:RunInstances", INSTANCE, {}))
        self.assertEqual((decision.allowed, decision.explicit_deny, decision.statements), (False, False, ()))


class StringOperators(unittest.TestCase):
    def test_string_equals_takes_wildcards_literally(self) -> None:
        self.assertFalse(holds({"StringEquals": {"k:k": "a*"}}, {"k:k": "abc"}))
        self.assertTrue(holds({"StringEquals": {"k:k": "a*"}}, {"k:k": "a*"}))

    def test_values_of_one_key_are_ored(self) -> None:
        self.assertTrue(holds({"StringEquals": {"k:k": ["x", "y"]}}, {"k:k": "y"}))

    def test_keys_and_operators_are_anded(self) -> None:
        condition = {"StringEquals": {"k:a": "1", "k:b": "2"}, "StringLike": {"k:c": "3*"}}
        self.assertTrue(holds(condition, {"k:a": "1", "k:b": "2", "k:c": "33"}))
        self.assertFalse(holds(condition, {"k:a": "1", "k:b": "x", "k:c": "33"}))
        self.assertFalse(holds(condition, {"k:a": "1", "k:b": "2", "k:c": "43"}))

    def test_string_not_equals_with_several_values_is_and(self) -> None:
        # "Creating a condition with multiple keys or values": negated operators with several
        # values work like a logical AND.
        condition = {"StringNotEquals": {"aws:PrincipalAccount": ["111111111111", "222222222222"]}}
        self.assertFalse(holds(condition, {"aws:PrincipalAccount": "222222222222"}))
        self.assertTrue(holds(condition, {"aws:PrincipalAccount": "333333333333"}))

    def test_string_not_equals_ignore_case(self) -> None:
        self.assertFalse(holds({"StringNotEqualsIgnoreCase": {"k:k": "ABC"}}, {"k:k": "abc"}))
        self.assertTrue(holds({"StringNotEqualsIgnoreCase": {"k:k": "ABC"}}, {"k:k": "abd"}))

    def test_string_like_is_case_sensitive_glob(self) -> None:
        self.assertTrue(holds({"StringLike": {"k:k": "a?c*"}}, {"k:k": "abc:/x"}))
        self.assertFalse(holds({"StringLike": {"k:k": "a?c*"}}, {"k:k": "ac"}))
        self.assertFalse(holds({"StringLike": {"k:k": "A*"}}, {"k:k": "abc"}))

    def test_string_not_like(self) -> None:
        self.assertFalse(holds({"StringNotLike": {"k:k": ["x*", "a*"]}}, {"k:k": "abc"}))
        self.assertTrue(holds({"StringNotLike": {"k:k": ["x*", "b*"]}}, {"k:k": "abc"}))

    def test_non_string_values_compare_as_aws_writes_them(self) -> None:
        self.assertTrue(holds({"StringEquals": {"k:k": 10}}, {"k:k": "10"}))
        self.assertTrue(holds({"StringEquals": {"k:k": "true"}}, {"k:k": True}))
        self.assertTrue(holds({"StringEquals": {"k:k": True}}, {"k:k": "true"}))
        with self.assertRaises(Unevaluable):
            holds({"StringEquals": {"k:k": 1.5}}, {"k:k": "1.5"})


class NumericOperators(unittest.TestCase):
    def test_each_comparison(self) -> None:
        cases = {
            "NumericEquals": (True, False, False),
            "NumericNotEquals": (False, True, True),
            "NumericLessThan": (False, True, False),
            "NumericLessThanEquals": (True, True, False),
            "NumericGreaterThan": (False, False, True),
            "NumericGreaterThanEquals": (True, False, True),
        }
        for op, expected in cases.items():
            with self.subTest(op=op):
                got = tuple(holds({op: {"k:n": "10"}}, {"k:n": n}) for n in (10, "9.5", "10.01"))
                self.assertEqual(got, expected)

    def test_decimal_and_json_numbers(self) -> None:
        self.assertTrue(holds({"NumericEquals": {"k:n": 2.50}}, {"k:n": "2.5"}))

    def test_not_a_number_is_unevaluable(self) -> None:
        for context in ({"k:n": "ten"}, {"k:n": True}):
            with self.subTest(context=context), self.assertRaises(Unevaluable):
                holds({"NumericEquals": {"k:n": "10"}}, context)


class DateOperators(unittest.TestCase):
    def test_each_comparison(self) -> None:
        cases = {
            "DateEquals": (True, False, False),
            "DateNotEquals": (False, True, True),
            "DateLessThan": (False, True, False),
            "DateLessThanEquals": (True, True, False),
            "DateGreaterThan": (False, False, True),
            "DateGreaterThanEquals": (True, False, True),
        }
        requests = ("2020-01-01T00:00:01Z", "2020-01-01T00:00:00Z", "2020-01-01T01:00:00+00:30")
        for op, expected in cases.items():
            with self.subTest(op=op):
                got = tuple(holds({op: {"aws:CurrentTime": "2020-01-01T00:00:01Z"}}, {"aws:CurrentTime": t}) for t in requests)
                self.assertEqual(got, expected)

    def test_epoch_seconds_and_iso_are_the_same_instant(self) -> None:
        self.assertTrue(holds({"DateEquals": {"aws:EpochTime": "2020-01-01T00:00:00Z"}}, {"aws:EpochTime": 1577836800}))
        self.assertTrue(holds({"DateEquals": {"aws:CurrentTime": 1577836800}}, {"aws:CurrentTime": "2020-01-01"}))

    def test_not_a_date_is_unevaluable(self) -> None:
        with self.assertRaises(Unevaluable):
            holds({"DateLessThan": {"aws:CurrentTime": "next tuesday"}}, {"aws:CurrentTime": "2020-01-01T00:00:00Z"})
        with self.assertRaises(Unevaluable):  # a time without time zone
            holds({"DateLessThan": {"aws:CurrentTime": "2020-01-01T00:00:00"}}, {"aws:CurrentTime": "2020-01-01T00:00:00Z"})


class BoolOperator(unittest.TestCase):
    def test_string_true_and_json_true(self) -> None:
        self.assertTrue(holds({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}))
        self.assertTrue(holds({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "true"}))
        self.assertFalse(holds({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": False}))
        self.assertFalse(holds({"Bool": {"aws:SecureTransport": "false"}}))

    def test_other_spellings_are_unevaluable(self) -> None:
        with self.assertRaises(Unevaluable):
            holds({"Bool": {"aws:SecureTransport": "True"}}, {"aws:SecureTransport": True})
        with self.assertRaises(Unevaluable):
            holds({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": 1})


class BinaryOperator(unittest.TestCase):
    def test_bytes_compared_through_base64(self) -> None:
        condition = {"BinaryEquals": {"k:bin": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}
        self.assertTrue(holds(condition, {"k:bin": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}))
        self.assertFalse(holds(condition, {"k:bin": "QmluYXJ5"}))
        with self.assertRaises(Unevaluable):
            holds(condition, {"k:bin": "not base64!"})


class IpOperators(unittest.TestCase):
    def test_ranges_single_addresses_and_ipv6(self) -> None:
        condition = {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "198.51.100.7", "2001:DB8:1234:5678::/64"]}}
        self.assertTrue(holds(condition, {"aws:SourceIp": "203.0.113.200"}))
        self.assertTrue(holds(condition, {"aws:SourceIp": "198.51.100.7"}))
        self.assertFalse(holds(condition, {"aws:SourceIp": "198.51.100.8"}))
        self.assertTrue(holds(condition, {"aws:SourceIp": "2001:db8:1234:5678::1"}))
        self.assertFalse(holds(condition, {"aws:SourceIp": "2001:db8:1234:5679::1"}))

    def test_not_ip_address(self) -> None:
        self.assertFalse(holds({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "10.1.2.3"}))
        self.assertTrue(holds({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "11.1.2.3"}))

    def test_bad_address_is_unevaluable(self) -> None:
        for condition, context in (
            ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "ten"}),
            ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": 167772161}),
            ({"IpAddress": {"aws:SourceIp": 167772160}}, {"aws:SourceIp": "10.0.0.1"}),
        ):
            with self.subTest(condition=condition, context=context), self.assertRaises(Unevaluable):
                holds(condition, context)


class ArnOperators(unittest.TestCase):
    TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:topic:sub"

    def test_arn_equals_and_like_behave_identically(self) -> None:
        for op in ("ArnEquals", "ArnLike"):
            with self.subTest(op=op):
                self.assertTrue(holds({op: {"aws:SourceArn": "arn:aws:sns:*:111122223333:topic:*"}}, {"aws:SourceArn": self.TOPIC}))
                self.assertFalse(holds({op: {"aws:SourceArn": "arn:aws:sns:*:*:other"}}, {"aws:SourceArn": self.TOPIC}))

    def test_a_star_does_not_cross_segments(self) -> None:
        self.assertFalse(holds({"ArnLike": {"aws:SourceArn": "arn:aws:*:111122223333:topic:sub"}}, {"aws:SourceArn": self.TOPIC}))

    def test_arn_not_equals_and_not_like(self) -> None:
        for op in ("ArnNotEquals", "ArnNotLike"):
            with self.subTest(op=op):
                self.assertFalse(holds({op: {"aws:SourceArn": "arn:aws:sns:*:*:*"}}, {"aws:SourceArn": self.TOPIC}))
                self.assertTrue(holds({op: {"aws:SourceArn": "arn:aws:sqs:*:*:*"}}, {"aws:SourceArn": self.TOPIC}))

    def test_variable_in_an_arn(self) -> None:
        condition = {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:111122223333:${aws:PrincipalTag/topic}"}}
        self.assertTrue(holds(condition, {"aws:SourceArn": self.TOPIC, "aws:PrincipalTag/topic": "topic:sub"}))

    def test_non_arn_is_unevaluable(self) -> None:
        with self.assertRaises(Unevaluable):
            holds({"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:*:*"}}, {"aws:SourceArn": "topic"})
        with self.assertRaises(Unevaluable):
            holds({"ArnLike": {"aws:SourceArn": "*"}}, {"aws:SourceArn": self.TOPIC})


class MissingKeys(unittest.TestCase):
    def test_positive_operators_are_false(self) -> None:
        for condition in (
            {"StringEquals": {"k:k": "x"}},
            {"StringLike": {"k:k": "*"}},
            {"NumericGreaterThan": {"k:k": "0"}},
            {"DateLessThan": {"k:k": "2100-01-01T00:00:00Z"}},
            {"Bool": {"k:k": "false"}},
            {"BinaryEquals": {"k:k": "QQ=="}},
            {"IpAddress": {"k:k": "0.0.0.0/0"}},
            {"ArnLike": {"k:k": "arn:*:*:*:*:*"}},
        ):
            with self.subTest(condition=condition):
                self.assertFalse(holds(condition))

    def test_negated_operators_are_true(self) -> None:
        for op, value in (
            ("StringNotEquals", "x"),
            ("StringNotEqualsIgnoreCase", "x"),
            ("StringNotLike", "*"),
            ("NumericNotEquals", "1"),
            ("DateNotEquals", "2020-01-01T00:00:00Z"),
            ("NotIpAddress", "0.0.0.0/0"),
            ("ArnNotEquals", "arn:*:*:*:*:*"),
            ("ArnNotLike", "arn:*:*:*:*:*"),
        ):
            with self.subTest(op=op):
                self.assertTrue(holds({op: {"k:k": value}}))

    def test_if_exists_is_true_when_missing_and_checks_when_present(self) -> None:
        for op in ("StringEqualsIfExists", "NumericLessThanIfExists", "BoolIfExists", "ArnLikeIfExists", "IpAddressIfExists"):
            with self.subTest(op=op):
                self.assertTrue(holds({op: {"k:k": "arn:aws:s3:::x"}}))
        self.assertTrue(holds({"StringEqualsIfExists": {"k:k": "x"}}, {"k:k": "x"}))
        self.assertFalse(holds({"StringEqualsIfExists": {"k:k": "x"}}, {"k:k": "y"}))
        self.assertFalse(holds({"StringNotEqualsIfExists": {"k:k": "x"}}, {"k:k": "x"}))

    def test_null(self) -> None:
        self.assertTrue(holds({"Null": {"k:k": "true"}}))
        self.assertFalse(holds({"Null": {"k:k": "true"}}, {"k:k": "v"}))
        self.assertTrue(holds({"Null": {"k:k": "false"}}, {"k:k": "v"}))
        self.assertFalse(holds({"Null": {"k:k": False}}))
        self.assertTrue(holds({"Null": {"k:k": True}}, {"k:x": "v"}))

    def test_null_on_empty_list_and_null_if_exists_are_unevaluable(self) -> None:
        with self.assertRaises(Unevaluable):
            holds({"Null": {"aws:TagKeys": "true"}}, {"aws:TagKeys": []})
        with self.assertRaises(Unevaluable):
            holds({"NullIfExists": {"k:k": "true"}})


class SetOperators(unittest.TestCase):
    def test_for_all_values_missing_or_empty_is_true(self) -> None:
        for context in ({}, {"aws:TagKeys": []}, {"aws:TagKeys": ""}):
            with self.subTest(context=context):
                self.assertTrue(holds({"ForAllValues:StringEquals": {"aws:TagKeys": "a"}}, context))

    def test_for_any_value_missing_or_empty_is_false(self) -> None:
        for op in ("ForAnyValue:StringEquals", "ForAnyValue:StringNotEquals"):
            for context in ({}, {"aws:TagKeys": []}):
                with self.subTest(op=op, context=context):
                    self.assertFalse(holds({op: {"aws:TagKeys": "a"}}, context))

    def test_for_all_values_negated(self) -> None:
        condition = {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["secret", "admin"]}}
        self.assertTrue(holds(condition, {"aws:TagKeys": ["a", "b"]}))
        self.assertFalse(holds(condition, {"aws:TagKeys": ["a", "admin"]}))

    def test_for_any_value_negated(self) -> None:
        condition = {"ForAnyValue:StringNotLike": {"aws:TagKeys": ["lifeboat:*"]}}
        self.assertFalse(holds(condition, {"aws:TagKeys": ["lifeboat:node", "lifeboat:role"]}))
        self.assertTrue(holds(condition, {"aws:TagKeys": ["lifeboat:node", "Name"]}))

    def test_single_valued_key_under_a_set_operator_is_a_set_of_one(self) -> None:
        self.assertTrue(holds({"ForAnyValue:StringEquals": {"k:k": ["a", "b"]}}, {"k:k": "b"}))
        self.assertFalse(holds({"ForAllValues:StringEquals": {"k:k": ["a", "b"]}}, {"k:k": "c"}))

    def test_single_valued_operator_on_a_list_is_unevaluable(self) -> None:
        for op in ("StringEquals", "StringNotEquals", "StringLikeIfExists"):
            with self.subTest(op=op), self.assertRaises(Unevaluable):
                holds({op: {"aws:TagKeys": "a"}}, {"aws:TagKeys": ["a"]})


class Variables(unittest.TestCase):
    def test_principal_tag_in_a_condition(self) -> None:
        condition = {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}
        self.assertTrue(holds(condition, {"aws:ResourceTag/team": "red", "aws:PrincipalTag/team": "red"}))
        self.assertFalse(holds(condition, {"aws:ResourceTag/team": "red", "aws:PrincipalTag/team": "blue"}))

    def test_service_key_with_colons_in_the_tag_key(self) -> None:
        condition = {"StringEquals": {"ec2:ResourceTag/lifeboat:cluster": "${aws:PrincipalTag/lifeboat:cluster}"}}
        context = {"ec2:ResourceTag/lifeboat:cluster": "prod", "aws:principaltag/LIFEBOAT:cluster": "prod"}
        self.assertTrue(holds(condition, context))

    def test_variable_without_value_in_conditions(self) -> None:
        # "Variables and tags", "Policy variables with no value": StringEquals/StringLike do not
        # match, StringNotEquals/StringNotLike do.
        self.assertFalse(holds({"StringEquals": {"k:k": "${aws:PrincipalTag/team}"}}, {"k:k": ""}))
        self.assertFalse(holds({"StringLike": {"k:k": "*${aws:PrincipalTag/team}"}}, {"k:k": "x"}))
        self.assertTrue(holds({"StringNotEquals": {"k:k": "${aws:PrincipalTag/team}"}}, {"k:k": "x"}))
        self.assertTrue(holds({"StringEquals": {"k:k": ["${aws:PrincipalTag/team}", "x"]}}, {"k:k": "x"}))

    def test_variable_without_value_in_resources_matches_nothing(self) -> None:
        doc = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::home/${aws:username}*"})
        self.assertFalse(check(doc, "s3:GetObject", "arn:aws:s3:::home/").allowed)
        self.assertTrue(check(doc, "s3:GetObject", "arn:aws:s3:::home/ann/x", {"aws:username": "ann"}).allowed)
        deny = policy({"Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::home/${aws:username}/*"})
        self.assertTrue(check([ALLOW_ALL, deny], "s3:GetObject", "arn:aws:s3:::home/ann/x").explicit_deny)

    def test_substituted_values_are_literal(self) -> None:
        doc = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::home/${aws:username}"})
        self.assertFalse(check(doc, "s3:GetObject", "arn:aws:s3:::home/annie", {"aws:username": "ann*"}).allowed)
        self.assertTrue(check(doc, "s3:GetObject", "arn:aws:s3:::home/ann*", {"aws:username": "ann*"}).allowed)

    def test_special_characters(self) -> None:
        self.assertTrue(holds({"StringLike": {"k:k": "a${*}b${?}c${$}"}}, {"k:k": "a*b?c$"}))
        self.assertFalse(holds({"StringLike": {"k:k": "a${*}"}}, {"k:k": "ab"}))

    def test_key_names_in_variables_are_case_insensitive(self) -> None:
        self.assertTrue(holds({"StringEquals": {"k:k": "${AWS:UserName}"}}, {"k:k": "ann", "aws:username": "ann"}))

    def test_no_variables_before_version_2012(self) -> None:
        # "IAM JSON policy elements: Version": variables "are instead treated as literal strings".
        condition = {"StringEquals": {"k:k": "${aws:username}"}}
        self.assertFalse(holds(condition, {"k:k": "ann", "aws:username": "ann"}, version=None))
        self.assertTrue(holds(condition, {"k:k": "${aws:username}"}, version="2008-10-17"))

    def test_unresolvable_variables_are_unevaluable(self) -> None:
        for condition, context in (
            ({"StringEquals": {"k:k": "${username}"}}, {"k:k": "x"}),
            ({"StringEquals": {"k:k": "${aws:username"}}, {"k:k": "x"}),
            ({"StringEquals": {"k:k": "${aws:username, default}"}}, {"k:k": "x"}),
            ({"StringEquals": {"k:k": "${aws:TagKeys}"}}, {"k:k": "x", "aws:TagKeys": ["a"]}),
            ({"NumericEquals": {"k:k": "${k:n}"}}, {"k:k": "1", "k:n": "1"}),
            ({"Bool": {"k:k": "${k:b}"}}, {"k:k": "true", "k:b": "true"}),
            ({"StringEquals": {"${k:name}": "x"}}, {"k:k": "x", "k:name": "k:k"}),
        ):
            with self.subTest(condition=condition), self.assertRaises(Unevaluable):
                holds(condition, context)


class Malformed(unittest.TestCase):
    def test_malformed_policies_are_unevaluable(self) -> None:
        statement = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        for doc in (
            policy({**statement, "Condition": {"StringEqualz": {"k:k": "x"}}}),
            policy({**statement, "Condition": {"ForEachValue:StringEquals": {"k:k": "x"}}}),
            policy({**statement, "Condition": {"StringEquals": {"k:k": []}}}),
            policy({**statement, "Condition": {"StringEquals": {"k:k": None}}}),
            policy({**statement, "Effect": "allow"}),
            policy({**statement, "NotAction": "s3:Get*"}),
            policy({"Effect": "Allow", "Action": "s3:*"}),
            policy({**statement, "Principal": "*"}),
            policy({**statement, "Action": "s3"}),
            policy(statement, version="2012-10-18"),
            {"Version": "2012-10-17"},
        ):
            with self.subTest(doc=doc), self.assertRaises(Unevaluable):
                check(doc, "s3:GetObject", "arn:aws:s3:::b/k")

    def test_unknown_operator_in_an_unrelated_statement_is_unevaluable(self) -> None:
        doc = policy(
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "ec2:*", "Resource": "*", "Condition": {"StringMatches": {"k:k": "x"}}},
        )
        with self.assertRaises(Unevaluable):
            check(doc, "s3:GetObject")

    def test_context_keys_differing_only_by_case_are_unevaluable(self) -> None:
        with self.assertRaises(Unevaluable):
            holds({"StringEquals": {"aws:ResourceTag/ec2": "test1"}}, {"aws:ResourceTag/ec2": "test1", "aws:ResourceTag/EC2": "test2"})


if __name__ == "__main__":
    unittest.main()
