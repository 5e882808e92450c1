"""Speed, not behaviour: lookups moto makes slower than they need to be."""

from __future__ import annotations

from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix


def _get_tags(self: TaggedEC2Resource) -> list[dict[str, str]]:
    # Not a behaviour fix: moto finds a resource's tags by matching a regular
    # expression against every tag of the account, so filtering N resources by
    # tag is quadratic (10,000 snapshots: tens of minutes). A direct lookup
    # gives the same answer.
    resource_id = getattr(self, "id", None)
    if not resource_id:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
    tags = self.ec2_backend.tags.get(resource_id, {})
    return [{"resource_id": resource_id, "key": k, "value": v, "resource_type": resource_type} for k, v in tags.items()]


def apply() -> None:
    TaggedEC2Resource.get_tags = _get_tags
