"""strict.py on requests serialized by botocore itself, one per protocol.

.venv/bin/python -m unittest discover -s tests/emulator
"""

from __future__ import annotations

import json
import unittest
from typing import Any
from urllib.parse import urlencode

import botocore.session
from botocore import serialize

import strict

_session = botocore.session.get_session()


def judge(service: str, operation: str, params: dict[str, Any]) -> tuple[int, str] | None:
    """What the emulator answers a request botocore serializes (without its
    own validation), or None when it lets the request through."""
    model = _session.get_service_model(service)
    serializer = serialize.create_serializer(model.metadata["protocol"], include_validation=False)
    request = serializer.serialize_to_request(params, model.operation_model(operation))
    body = request["body"]
    if isinstance(body, dict):
        body = urlencode(body)
    environ = {
        "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential=AK/20261126/eu-west-1/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0",
        "CONTENT_TYPE": request["headers"].get("Content-Type", "")
        or ("application/x-www-form-urlencoded; charset=utf-8" if model.protocol in ("ec2", "query") else ""),
        "HTTP_X_AMZ_TARGET": request["headers"].get("X-Amz-Target", ""),
        "REQUEST_METHOD": request["method"],
        "PATH_INFO": request["url_path"],
        "QUERY_STRING": urlencode(request["query_string"], doseq=True),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5000",
        "HTTP_HOST": "127.0.0.1:5000",
        "wsgi.url_scheme": "http",
    }
    environ.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request["headers"].items()})
    refusal = strict.judge(environ, body.encode() if isinstance(body, str) else body)
    return None if refusal is None else (refusal.status, refusal.body.decode())


INSTANCE = "i-0123456789abcdef0"


class JsonProtocol(unittest.TestCase):
    def test_comment_longer_than_100_characters(self) -> None:
        params = {"DocumentName": "AWS-RunShellScript", "InstanceIds": [INSTANCE], "Comment": "x" * 101}
        status, body = judge("ssm", "SendCommand", params) or (0, "")
        self.assertEqual(status, 400)
        self.assertEqual(
            json.loads(body),
            {
                "__type": "ValidationException",
                "message": f"1 validation error detected: Value '{'x' * 101}' at 'comment' failed to satisfy "
                "constraint: Member must have length less than or equal to 100",
            },
        )
        self.assertIsNone(judge("ssm", "SendCommand", {**params, "Comment": "x" * 100}))

    def test_every_violation_is_listed(self) -> None:
        status, body = judge("ssm", "SendCommand", {"InstanceIds": ["web-1"], "MaxConcurrency": "lots"}) or (0, "")
        message = json.loads(body)["message"]
        self.assertTrue(message.startswith("3 validation errors detected: Value null at 'documentName' "), message)
        self.assertIn(
            "; Value '[web-1]' at 'instanceIds' failed to satisfy constraint: Member must satisfy "
            "constraint: [Member must satisfy regular expression pattern: ",
            message,
        )
        self.assertIn(
            "; Value 'lots' at 'maxConcurrency' failed to satisfy constraint: Member must satisfy "
            "regular expression pattern: ",
            message,
        )

    def test_nested_members_are_named_by_their_path(self) -> None:
        params = {"Filters": [{"key": "Color", "value": "blue"}]}
        _, body = judge("ssm", "ListCommands", params) or (0, "")
        self.assertIn(
            "at 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: [",
            json.loads(body)["message"],
        )

    def test_unknown_operations_and_valid_requests_pass(self) -> None:
        self.assertIsNone(judge("ssm", "DescribeInstanceInformation", {}))
        environ = {
            "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AK/20261126/eu-west-1/ssm/aws4_request, "
            "SignedHeaders=host, Signature=0",
            "CONTENT_TYPE": "application/x-amz-json-1.1",
            "HTTP_X_AMZ_TARGET": "AmazonSSM.NoSuchOperation",
        }
        self.assertIsNone(strict.judge(environ, b"{}"))


class Ec2Protocol(unittest.TestCase):
    def test_missing_required_member(self) -> None:
        status, body = judge("ec2", "RunInstances", {"ImageId": "ami-1", "MinCount": 1}) or (0, "")
        self.assertEqual(status, 400)
        self.assertIn(
            "<Code>MissingParameter</Code><Message>The request must contain the parameter MaxCount</Message>", body
        )

    def test_enum_named_by_its_query_parameter(self) -> None:
        params = {
            "ImageId": "ami-1",
            "MinCount": 1,
            "MaxCount": 1,
            "TagSpecifications": [{"ResourceType": "spaceship", "Tags": [{"Key": "k", "Value": "v"}]}],
        }
        _, body = judge("ec2", "RunInstances", params) or (0, "")
        self.assertIn(
            "<Code>InvalidParameterValue</Code><Message>Invalid value 'spaceship' for "
            "TagSpecification.1.ResourceType.</Message>",
            body,
        )

    def test_flattened_lists_of_structures(self) -> None:
        self.assertIsNone(judge("ec2", "DescribeInstances", {"Filters": [{"Name": "client-token", "Values": ["t"]}]}))
        _, body = judge("ec2", "CreateTags", {"Resources": ["i-1"]}) or (0, "")
        self.assertIn("The request must contain the parameter Tag", body)


class QueryProtocol(unittest.TestCase):
    def test_validation_error(self) -> None:
        status, body = judge("sns", "Publish", {"TopicArn": "arn:aws:sns:eu-west-1:123456789012:t"}) or (0, "")
        self.assertEqual(status, 400)
        self.assertIn(
            "<Code>ValidationError</Code><Message>1 validation error detected: Value null at 'message' "
            "failed to satisfy constraint: Member must not be null</Message>",
            body,
        )

    def test_member_lists_and_maps(self) -> None:
        params = {"ResourceArn": "arn:aws:sns:eu-west-1:123456789012:t", "Tags": [{"Key": "", "Value": "v"}]}
        _, body = judge("sns", "TagResource", params) or (0, "")
        self.assertIn(
            "Value '' at 'tags.1.member.key' failed to satisfy constraint: Member must have length "
            "greater than or equal to 1",
            body,
        )
        attributes = {"a": {"DataType": "String", "StringValue": "x"}}
        params = {"TopicArn": "arn:aws:sns:eu-west-1:123456789012:t", "Message": "m", "MessageAttributes": attributes}
        self.assertIsNone(judge("sns", "Publish", params))


class RestProtocols(unittest.TestCase):
    def test_rest_json_routed_by_moto(self) -> None:
        status, body = judge("lambda", "ListFunctions", {"MaxItems": 0}) or (0, "")
        self.assertEqual(status, 400)
        self.assertEqual(
            json.loads(body)["message"],
            "1 validation error detected: Value '0' at 'maxItems' failed to satisfy constraint: Member must have "
            "value greater than or equal to 1",
        )
        self.assertIsNone(judge("lambda", "GetFunction", {"FunctionName": "repair"}))

    def test_rest_xml_path_labels(self) -> None:
        status, body = judge("route53", "GetHostedZone", {"Id": "Z" * 40}) or (0, "")
        self.assertEqual(status, 400)
        self.assertIn("at 'id' failed to satisfy constraint: Member must have length less than or equal to 32", body)


if __name__ == "__main__":
    unittest.main()
