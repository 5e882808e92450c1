"""Who a request is for: the account and region its headers name."""

from __future__ import annotations

import re

CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/")


def account(headers: dict[str, str]) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get("x-moto-account-id", "123456789012")


def region(headers: dict[str, str]) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    match = CREDENTIAL_SCOPE.search(lowered.get("authorization", ""))
    return match.group(1) if match else "us-east-1"
