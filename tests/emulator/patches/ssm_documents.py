"""Systems Manager documents as Run Command reads them: the parameters a
SendCommand may pass, and the time a command may run."""

from __future__ import annotations

import re
from typing import Any

import regex
from moto.ssm.exceptions import SSMException
from moto.ssm.models import ssm_backends

# AWS-RunShellScript as AWS publishes it (`aws ssm get-document --name
# AWS-RunShellScript`, AWS CLI reference; the SSM user guide's schema 1.2
# example): moto knows no AWS-owned document.
AWS_DOCUMENTS: dict[str, dict[str, Any]] = {
    "AWS-RunShellScript": {
        "schemaVersion": "1.2",
        "description": "Run a shell script or specify the commands to run.",
        "parameters": {
            "commands": {
                "type": "StringList",
                "description": "(Required) Specify a shell script or a command to run.",
                "minItems": 1,
                "displayType": "textarea",
            },
            "workingDirectory": {
                "type": "String",
                "default": "",
                "description": "(Optional) The path to the working directory on your instance.",
                "maxChars": 4096,
            },
            "executionTimeout": {
                "type": "String",
                "default": "3600",
                "description": "(Optional) The time in seconds for a command to complete before it is considered "
                "to have failed. Default is 3600 (1 hour). Maximum is 172800 (48 hours).",
                "allowedPattern": "([1-9][0-9]{0,4})|(1[0-6][0-9]{4})|(17[0-1][0-9]{3})|(172[0-7][0-9]{2})|(172800)",
            },
        },
        "runtimeConfig": {
            "aws:runShellScript": {
                "properties": [
                    {
                        "id": "0.aws:runShellScript",
                        "runCommand": "{{ commands }}",
                        "workingDirectory": "{{ workingDirectory }}",
                        "timeoutSeconds": "{{ executionTimeout }}",
                    }
                ]
            }
        },
    }
}
# SSM user guide (ssm-plugins, aws:runShellScript): timeoutSeconds defaults
# to 3600 seconds.
DEFAULT_TIMEOUT_SECONDS = 3600.0
_REFERENCE = re.compile(r"^\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}$")


def document(account: str, region: str, name: str) -> dict[str, Any]:
    """The content of a document SendCommand can run: AWS's, or the account's
    own Command document (CreateDocument). AWS: any other name is
    InvalidDocument."""
    if name in AWS_DOCUMENTS:
        return AWS_DOCUMENTS[name]
    documents = ssm_backends[account][region]._documents.get(name)
    if documents is None:
        raise SSMException("InvalidDocument", "The specified document does not exist.")
    default = documents.get_default_version()
    if default.document_type != "Command":
        raise SSMException("InvalidDocument", f"Document {name} of type {default.document_type} cannot be sent.")
    return dict(default.content_json)


def check_parameters(name: str, content: dict[str, Any], given: dict[str, list[str]]) -> dict[str, list[str]]:
    """The parameters with the document's defaults filled in. AWS (SSM user
    guide, documents-syntax-data-elements-parameters): a parameter the
    document does not declare, one without a default left out, or a value
    outside allowedValues, allowedPattern, minItems/maxItems or
    minChars/maxChars is InvalidParameters. The wording of these refusals is
    not documented ("document ... does not support parameters." is reported
    for an undeclared one, boto/boto3#3151)."""
    declared: dict[str, Any] = content.get("parameters") or {}
    for key in given:
        if key not in declared:
            raise SSMException("InvalidParameters", f"document {name} does not support parameters.")
    values: dict[str, list[str]] = {}
    for key, spec in declared.items():
        if key in given:
            values[key] = [str(v) for v in given[key]]
        elif "default" in spec:
            default = spec["default"]
            values[key] = [str(v) for v in default] if isinstance(default, list) else [str(default)]
        else:
            raise SSMException("InvalidParameters", f"Parameter {key} is required by document {name}.")
        _check_value(name, key, spec, values[key])
    return values


def _check_value(name: str, key: str, spec: dict[str, Any], value: list[str]) -> None:
    def refuse(why: str) -> None:
        raise SSMException("InvalidParameters", f"Parameter {key} of document {name} {why}.")

    if spec.get("type", "String") == "String" and len(value) != 1:
        refuse("takes one value")
    if "minItems" in spec and len(value) < int(spec["minItems"]):
        refuse(f"needs at least {spec['minItems']} values")
    if "maxItems" in spec and len(value) > int(spec["maxItems"]):
        refuse(f"takes at most {spec['maxItems']} values")
    for item in value:
        if "allowedValues" in spec and item not in spec["allowedValues"]:
            refuse(f"must be one of {spec['allowedValues']}")
        if "allowedPattern" in spec and not regex.fullmatch(spec["allowedPattern"], item):
            refuse(f"must match {spec['allowedPattern']}")
        if "maxChars" in spec and len(item) > int(spec["maxChars"]):
            refuse(f"takes at most {spec['maxChars']} characters")
        if "minChars" in spec and len(item) < int(spec["minChars"]):
            refuse(f"takes at least {spec['minChars']} characters")


def execution_timeout(content: dict[str, Any], values: dict[str, list[str]]) -> float:
    """How long the command may run: the timeoutSeconds of its steps (schema
    2.x mainSteps, 1.2 runtimeConfig), parameter references resolved; for
    AWS-RunShellScript its executionTimeout parameter."""
    steps: list[dict[str, Any]] = [step.get("inputs") or {} for step in content.get("mainSteps") or []]
    for plugin in (content.get("runtimeConfig") or {}).values():
        steps.extend(plugin.get("properties") or [])
    timeouts = []
    for inputs in steps:
        raw = inputs.get("timeoutSeconds")
        if raw is None:
            timeouts.append(DEFAULT_TIMEOUT_SECONDS)
            continue
        reference = _REFERENCE.match(str(raw))
        if reference:
            raw = (values.get(reference.group(1)) or [str(DEFAULT_TIMEOUT_SECONDS)])[0]
        try:
            timeouts.append(float(raw))
        except ValueError:
            timeouts.append(DEFAULT_TIMEOUT_SECONDS)
    return max(timeouts, default=DEFAULT_TIMEOUT_SECONDS)
