"""Subnet addresses and network interfaces."""

from __future__ import annotations

from typing import Any

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.instances import Instance
from moto.ec2.models.subnets import Subnet
from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces


def _request_ip(self: Subnet, ip: str, instance: Any) -> None:
    # AWS: a private IP outside the subnet is InvalidParameterValue, one held by
    # another interface is InvalidIPAddress.InUse. moto raises a bare
    # Exception (HTTP 500) for both.
    import ipaddress

    if ipaddress.ip_address(ip) not in self.cidr:
        raise EC2ClientError("InvalidParameterValue", f"Address {ip} does not fall within the subnet's address range")
    if ip in self._subnet_ips:
        raise EC2ClientError("InvalidIPAddress.InUse", f"Address {ip} is in use.")
    self._unused_ips.discard(ip)
    self._subnet_ips[ip] = instance


_original_prep_nics = Instance.prep_nics


def _prep_nics(self: Instance, nic_spec: list, *args: Any, **kwargs: Any) -> None:
    # AWS: an interface named by NetworkInterfaceId must be `available`;
    # attaching one in use is InvalidNetworkInterface.InUse. moto moves it.
    for nic in nic_spec:
        if nic.get("NetworkInterfaceId"):
            eni = self.ec2_backend.get_network_interface(nic["NetworkInterfaceId"])
            if eni.status != "available":
                raise EC2ClientError("InvalidNetworkInterface.InUse", f"Interface: [{eni.id}] in use.")
    existing = {nic.get("NetworkInterfaceId") for nic in nic_spec}
    wanted = {int(n.get("DeviceIndex", 0)): n.get("DeleteOnTermination") for n in nic_spec}
    _original_prep_nics(self, nic_spec, *args, **kwargs)
    # AWS: an interface created by the launch is deleted on termination unless
    # the request says otherwise. moto defaults to keeping it.
    for index, eni in self.nics.items():
        if eni.id not in existing:
            choice = wanted.get(index)
            eni.delete_on_termination = True if choice is None else str(choice).lower() == "true"


_original_modify_eni = ElasticNetworkInterfaces.modify_network_interface_attribute


def _modify_eni(self: ElasticNetworkInterfaces) -> Any:
    # AWS: Attachment.DeleteOnTermination changes whether the interface outlives
    # its instance. moto ignores it.
    attachment = self._get_param("Attachment") or {}
    if attachment:
        eni = self.ec2_backend.get_network_interface(self._get_param("NetworkInterfaceId"))
        if eni.attachment_id != attachment.get("AttachmentId"):
            raise EC2ClientError(
                "InvalidAttachmentID.NotFound", f"The attachment ID '{attachment.get('AttachmentId')}' does not exist"
            )
        eni.delete_on_termination = str(attachment.get("DeleteOnTermination")).lower() == "true"
        self.error_on_dryrun()
        from moto.core.responses import EmptyResult

        return EmptyResult()
    return _original_modify_eni(self)


def apply() -> None:
    Subnet.request_ip = _request_ip
    Instance.prep_nics = _prep_nics
    ElasticNetworkInterfaces.modify_network_interface_attribute = _modify_eni
