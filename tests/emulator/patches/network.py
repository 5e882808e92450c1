"""Subnet addresses and network interfaces."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ec2.models.instances import Instance
from moto.ec2.models.subnets import Subnet
from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces

from .core import DEFAULTS, later, lock, now, on_reset, record, setting

DEFAULTS.update(
    {
        # The private IP of an interface deleted by a termination stays taken
        # this long after the termination.
        "ip_release_seconds": 5.0,
        # An interface kept on termination is `in-use` (detaching) this long
        # after the termination, then `available`.
        "eni_release_seconds": 3.0,
    }
)
# (account, subnet id, private IP) -> until when the address is still taken
_held: dict[tuple[str, str, str], float] = {}
on_reset(_held.clear)


def _in_use(subnet: Subnet, ip: str) -> bool:
    """An address held by an instance, an interface, or an interface deleted
    by a termination a moment ago."""
    if ip in subnet._subnet_ips:
        return True
    with lock:
        until = _held.get((subnet.ec2_backend.account_id, subnet.id, ip))
    if until is not None and now() < until:
        return True
    return any(
        eni.subnet is not None and eni.subnet.id == subnet.id and ip in _addresses(eni)
        for eni in subnet.ec2_backend.enis.values()
    )


def _addresses(eni: NetworkInterface) -> set[str]:
    return {a["PrivateIpAddress"] for a in eni.private_ip_addresses} | {eni.private_ip_address}


def _request_ip(self: Subnet, ip: str, instance: Any) -> None:
    # AWS (API_RunInstances.html, PrivateIpAddress; errors-overview.html): a
    # private IP outside the subnet is InvalidParameterValue, one held by
    # another interface is InvalidIPAddress.InUse. moto raises a bare
    # Exception (HTTP 500) for both, and knows nothing of interfaces created
    # on their own or of addresses released late (see _terminate).
    if ipaddress.ip_address(ip) not in self.cidr:
        raise EC2ClientError("InvalidParameterValue", f"Address {ip} does not fall within the subnet's address range")
    if _in_use(self, ip):
        raise EC2ClientError("InvalidIPAddress.InUse", f"Address {ip} is in use.")
    self._unused_ips.discard(ip)
    self._subnet_ips[ip] = instance


_original_create_eni = ElasticNetworkInterfaces.create_network_interface


def _create_eni(self: ElasticNetworkInterfaces) -> Any:
    # AWS: CreateNetworkInterface with an address in use is
    # InvalidIPAddress.InUse, "The specified address is already in use"
    # (reported in pulumi/pulumi#10923). moto gives the address twice.
    wanted = self._get_param("PrivateIpAddress")
    if wanted:
        subnet = self.ec2_backend.get_subnet(self._get_param("SubnetId"))
        if _in_use(subnet, wanted):
            raise EC2ClientError("InvalidIPAddress.InUse", "The specified address is already in use.")
    return _original_create_eni(self)


_original_prep_nics = Instance.prep_nics


def _prep_nics(self: Instance, nic_spec: list, *args: Any, **kwargs: Any) -> None:
    # AWS (errors-overview.html, InvalidNetworkInterface.InUse: "currently in
    # use and cannot be ... attached to another instance"): an interface named
    # by NetworkInterfaceId must be `available`; attaching one in use (also one
    # still detaching from a terminated instance) is
    # InvalidNetworkInterface.InUse. moto moves it.
    for nic in nic_spec:
        if nic.get("NetworkInterfaceId"):
            eni = self.ec2_backend.get_network_interface(nic["NetworkInterfaceId"])
            if eni.status != "available":
                raise EC2ClientError("InvalidNetworkInterface.InUse", f"Interface: [{eni.id}] in use.")
    existing = {nic.get("NetworkInterfaceId") for nic in nic_spec}
    wanted = {int(n.get("DeviceIndex", 0)): n.get("DeleteOnTermination") for n in nic_spec}
    _original_prep_nics(self, nic_spec, *args, **kwargs)
    # AWS (API_InstanceNetworkInterfaceSpecification.html, DeleteOnTermination;
    # user guide, network interface attributes): an interface created by the
    # launch is deleted on termination unless the request says otherwise. moto
    # defaults to keeping it.
    for index, eni in self.nics.items():
        if eni.id not in existing:
            choice = wanted.get(index)
            eni.delete_on_termination = True if choice is None else str(choice).lower() == "true"


_original_modify_eni = ElasticNetworkInterfaces.modify_network_interface_attribute


def _modify_eni(self: ElasticNetworkInterfaces) -> Any:
    # AWS (API_ModifyNetworkInterfaceAttribute.html, Attachment):
    # Attachment.DeleteOnTermination changes whether the interface outlives
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


def _release_on_termination(terminate: Callable[[Instance], Any]) -> Callable[[Instance], Any]:
    """How AWS frees a terminated instance's interfaces, as observed (no AWS
    page gives times; pulumi/pulumi#10923 and moto#7896 report the address of
    a deleted interface still in use for a while): an interface deleted with
    the instance leaves its address taken for `ip_release_seconds`; one kept
    stays `in-use`, its attachment `detaching`, for `eni_release_seconds`,
    then is detached and `available` with its address. moto frees both at
    once."""

    def terminated(self: Instance) -> Any:
        account = self.ec2_backend.account_id
        dropped = [eni for eni in self.nics.values() if eni.delete_on_termination]
        kept = [eni for eni in self.nics.values() if not eni.delete_on_termination]
        previous = terminate(self)
        at = self.__dict__.get("_lb_terminated_at", now())
        with lock:
            for eni in dropped:
                for ip in _addresses(eni):
                    _held[(account, eni.subnet.id, ip)] = at + setting(account, "ip_release_seconds")
        for eni in kept:
            eni.__dict__["_lb_detaching"] = True
            later(account, at + setting(account, "eni_release_seconds"), _detach(self, eni))
        return previous

    return terminated


def _detach(instance: Instance, eni: NetworkInterface) -> Callable[[float], None]:
    def detach(at: float) -> None:
        eni.__dict__.pop("_lb_detaching", None)
        if eni.instance is instance:
            instance.detach_eni(eni)
            record(instance.ec2_backend.account_id, eni.id, "interface-available", at)

    return detach


def _attachment(original: property) -> property:
    def get(self: NetworkInterface) -> Any:
        attachment = original.fget(self)
        if attachment is not None and self.__dict__.get("_lb_detaching"):
            attachment.status = "detaching"
        return attachment

    return property(get)


def _placed_with_interface(original: Callable[..., None]) -> Callable[..., None]:
    # AWS: an instance launched on an existing interface (NetworkInterfaceId,
    # no SubnetId) runs in that interface's subnet and Availability Zone ("An
    # elastic network interface is bound to the Availability Zone of its
    # subnet", EC2 User Guide, Elastic network interfaces). moto places it
    # in the region's first zone, so its launch volumes would land in another
    # zone than the interface and the volumes kept from the instance before.
    def init(self: Instance, ec2_backend: Any, image_id: str, user_data: Any, security_groups: Any, **kwargs: Any) -> None:
        original(self, ec2_backend, image_id, user_data, security_groups, **kwargs)
        if kwargs.get("subnet_id"):
            return
        for nic in kwargs.get("nics") or []:
            if nic.get("NetworkInterfaceId") and not nic.get("SubnetId"):
                eni = ec2_backend.get_network_interface(nic["NetworkInterfaceId"])
                self._placement.zone = eni.subnet.availability_zone
                break

    return init


def apply() -> None:
    Instance.__init__ = _placed_with_interface(Instance.__init__)
    Subnet.request_ip = _request_ip
    ElasticNetworkInterfaces.create_network_interface = _create_eni
    Instance.prep_nics = _prep_nics
    Instance.terminate = _release_on_termination(Instance.terminate)
    NetworkInterface.attachment = _attachment(NetworkInterface.attachment)
    ElasticNetworkInterfaces.modify_network_interface_attribute = _modify_eni
