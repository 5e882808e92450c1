#!/usr/bin/env python3
"""Fills the placeholders of infra/iam-policy-<function>.json, the policy of
each function's role for `cargo lambda deploy` (make deploy-lambda), and of
infra/iam-policy-operator.json, the least an operator of the `lifeboat`
command needs, and writes the results to --out DIR/<function>.json and
DIR/operator.json.

    python3 infra/render_policies.py --region eu-west-1 --account 123456789012 \\
        --node-role-arn arn:aws:iam::123456789012:role/k8s-control-plane \\
        --topic-arn arn:aws:sns:eu-west-1:123456789012:lifeboat \\
        [--partition aws] [--stack lifeboat] [--topic-key-arn ARN] \\
        --drill-role-arn arn:aws:iam::123456789012:role/lifeboat-drill \\
        --drill-instance-profile-arn arn:aws:iam::123456789012:instance-profile/lifeboat-drill \\
        [--ebs-kms-key-arn ARN ...] [--vpc-id vpc-...] --out target/iam

Placeholders: ${Partition} ${UrlSuffix} (amazonaws.com, or amazonaws.com.cn in
aws-cn) ${Region} ${Account} ${DocumentPrefix} (the SSM
documents <stack>-repair and <stack>-health) ${NodeRoleArn} ${DrillRoleArn}
${DrillInstanceProfileArn} (a drill clone's own role and instance profile:
the role trusts ec2.amazonaws.com and holds only the SSM agent's statements of
the template's DrillInstanceRole) ${TopicArn}
${TopicKeyArn} ${EbsKmsKeyArns} (a Resource that is exactly this becomes the
list) ${VpcArn}. Optional ones: without --topic-key-arn the statement
TopicKeyThroughSns is left out (a topic without a customer-managed key),
without --ebs-kms-key-arn the EbsKey* statements, without --vpc-id every
condition on ${VpcArn}.
"""
import argparse
import json
import pathlib
import re
import sys

INFRA = pathlib.Path(__file__).resolve().parent
FUNCTIONS = ("scheduled-backup", "retention-pruner", "interruption-handler")
OPTIONAL_STATEMENTS = {
    "TopicKeyThroughSns": "TopicKeyArn",
    "EbsKeyGrantsForEc2": "EbsKmsKeyArns",
    "EbsKeysThroughEc2": "EbsKmsKeyArns",
}
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def policy_path(function: str) -> pathlib.Path:
    return INFRA / f"iam-policy-{function}.json"


def values(
    *,
    partition: str,
    region: str,
    account: str,
    stack: str,
    node_role_arn: str,
    topic_arn: str,
    topic_key_arn: str = "",
    ebs_kms_key_arns: list[str] | None = None,
    vpc_id: str = "",
    drill_role_arn: str = "",
    drill_instance_profile_arn: str = "",
) -> dict:
    vpc_arn = f"arn:{partition}:ec2:{region}:{account}:vpc/{vpc_id}" if vpc_id else ""
    return {
        "Partition": partition,
        # The service endpoints' domain (kms:ViaService), as AWS::URLSuffix.
        "UrlSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com",
        "Region": region,
        "Account": account,
        "DocumentPrefix": stack,
        "NodeRoleArn": node_role_arn,
        "DrillRoleArn": drill_role_arn,
        "DrillInstanceProfileArn": drill_instance_profile_arn,
        "TopicArn": topic_arn,
        "TopicKeyArn": topic_key_arn,
        "EbsKmsKeyArns": list(ebs_kms_key_arns or []),
        "VpcArn": vpc_arn,
    }


def _substitute(text: str, vals: dict) -> str:
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in vals or isinstance(vals[name], list):
            raise ValueError(f"placeholder ${{{name}}} cannot be used in {text!r}")
        return vals[name]

    return PLACEHOLDER.sub(one, text)


def _fill(node, vals: dict):
    if isinstance(node, str):
        return _substitute(node, vals)
    if isinstance(node, list):
        return [_fill(n, vals) for n in node]
    if isinstance(node, dict):
        return {k: _fill(v, vals) for k, v in node.items()}
    return node


def render(policy: dict, vals: dict) -> dict:
    """The policy with its placeholders filled and its optional parts left out."""
    statements = []
    for statement in policy["Statement"]:
        needs = OPTIONAL_STATEMENTS.get(statement.get("Sid", ""))
        if needs is not None and not vals.get(needs):
            continue
        statement = dict(statement)
        resources = statement.get("Resource")
        if resources == "${EbsKmsKeyArns}":
            statement["Resource"] = list(vals["EbsKmsKeyArns"])
        if "Condition" in statement:
            condition = {}
            for operator, entries in statement["Condition"].items():
                kept = {k: v for k, v in entries.items() if not (v == "${VpcArn}" and not vals["VpcArn"])}
                if kept:
                    condition[operator] = kept
            if condition:
                statement["Condition"] = condition
            else:
                del statement["Condition"]
        statements.append(_fill(statement, vals))
    return {"Version": policy["Version"], "Statement": statements}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--partition", default="aws", help="aws, aws-cn, aws-us-gov, ... (default aws)")
    parser.add_argument("--region", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--stack", default="lifeboat", help="the SSM documents' prefix (LIFEBOAT_SSM_DOCUMENTS)")
    parser.add_argument("--node-role-arn", required=True, help="the role in the node's instance profile")
    parser.add_argument("--drill-role-arn", required=True, help="the role of drill clones' instance profile (iam:PassRole)")
    parser.add_argument("--drill-instance-profile-arn", required=True, help="drill clones' instance profile (LIFEBOAT_DRILL_INSTANCE_PROFILE)")
    parser.add_argument("--topic-arn", required=True, help="the SNS topic interruption-handler publishes to")
    parser.add_argument("--topic-key-arn", default="", help="the topic's customer-managed KMS key, if any")
    parser.add_argument("--ebs-kms-key-arn", action="append", default=[], help="a customer-managed key of the node's volumes (repeat)")
    parser.add_argument("--vpc-id", default="", help="limit launches to this VPC")
    parser.add_argument("--out", required=True, help="directory for <function>.json")
    options = parser.parse_args()
    vals = values(
        partition=options.partition,
        region=options.region,
        account=options.account,
        stack=options.stack,
        node_role_arn=options.node_role_arn,
        topic_arn=options.topic_arn,
        topic_key_arn=options.topic_key_arn,
        ebs_kms_key_arns=options.ebs_kms_key_arn,
        vpc_id=options.vpc_id,
        drill_role_arn=options.drill_role_arn,
        drill_instance_profile_arn=options.drill_instance_profile_arn,
    )
    out = pathlib.Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    # The operator running the `lifeboat` command: its minimum policy.
    for function in (*FUNCTIONS, "operator"):
        try:
            rendered = render(json.loads(policy_path(function).read_text()), vals)
        except ValueError as e:
            sys.exit(f"{policy_path(function)}: {e}")
        path = out / f"{function}.json"
        path.write_text(json.dumps(rendered, indent=2) + "\n")
        print(path)


if __name__ == "__main__":
    main()
