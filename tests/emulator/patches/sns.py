"""SNS: what Publish refuses."""

from __future__ import annotations

from typing import Any

from moto.sns.exceptions import SNSInvalidParameter
from moto.sns.responses import SNSResponse

_original_publish = SNSResponse.publish


def _publish(self: SNSResponse) -> Any:
    """AWS (Publish, API reference): "Subjects must be UTF-8 text with no line
    breaks or control characters, and less than 100 characters long" (AWS
    takes 100, moto#1503); an empty or longer one is "Invalid parameter:
    Subject" (reported in getmoto/moto#1276, wellcomecollection/platform#1107).
    An empty message is "Invalid parameter: Empty message". moto takes any
    subject of at most 100 characters and an empty message."""
    subject = self._get_param("Subject")
    if subject is not None and (
        not subject or len(subject) > 100 or any(ord(c) < 32 or ord(c) == 127 for c in subject)
    ):
        raise SNSInvalidParameter("Invalid parameter: Subject")
    if self._get_param("Message") == "":
        raise SNSInvalidParameter("Invalid parameter: Empty message")
    return _original_publish(self)


def apply() -> None:
    SNSResponse.publish = _publish
