"""What the schema cannot say: references, uniqueness, combinations, sizes.

Runs after defaulting, as KubeVirt's validating webhook runs after its mutating one, and returns
every problem at once with its field path. Messages say what is wrong and, where it helps,
what would be right.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Network, ip_network
from typing import Final

from kvd.api import defaults, unsupported
from kvd.api import labels as labelsel
from kvd.api import vm as vmtypes
from kvd.api import vmi as vmitypes
from kvd.api.errors import FieldError, Path
from kvd.api.meta import DNS1123_LABEL, DNS1123_SUBDOMAIN, LabelSelector, ObjectMeta

API_GROUP: Final = "kubevirt.io"
API_VERSIONS: Final = ("v1", "v1alpha3")
# cloud-init data travels in the VMI and in an etcd object; KubeVirt caps it at 2 KiB inline
# in older releases and 16 KiB now. Follow the current limit.
CLOUD_INIT_MAX_BYTES: Final = 16 * 1024
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_MEMORY_RESOURCES: Final = ("memory",)
_KNOWN_RESOURCES: Final = ("cpu", "memory")
# KubeVirt gives the in-pod bridge of a masquerade interface this MAC (StaticMasqueradeBridgeMAC)
# and refuses it for the guest, which would then share it with its own gateway.
MASQUERADE_BRIDGE_MAC: Final = "02:00:00:00:00:00"


def vm_network(cidr: str | None) -> IPv4Network:
    """The guest network of a masquerade interface: `vmNetworkCIDR`, else KubeVirt's default.

    As KubeVirt, host bits are ignored (10.0.2.7/24 is 10.0.2.0/24) and the network must hold a
    gateway and a guest (at least two host addresses, so /30 at most). Only IPv4: KubeVirt takes
    IPv6 from another field (vmIPv6NetworkCIDR). ValueError says what is wrong.
    """
    text = defaults.DEFAULT_VM_NETWORK_CIDR if cidr is None else cidr
    try:
        network = ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f'Invalid value: "{text}": not a CIDR (e.g. 10.0.2.0/24)') from None
    if not isinstance(network, IPv4Network) or "/" not in text:
        raise ValueError(f'Invalid value: "{text}": must be an IPv4 CIDR such as 10.0.2.0/24')
    if network.prefixlen > 30:
        raise ValueError(
            f'Invalid value: "{text}": too small, the gateway and the guest need two host '
            "addresses (a prefix of /30 at most)"
        )
    return network


def vmi(obj: vmitypes.VirtualMachineInstance) -> list[FieldError]:
    root = Path()
    return [
        *_api_version(obj.api_version, root / "apiVersion"),
        *_metadata(obj.metadata, root / "metadata"),
        *vmi_spec(obj.spec, root / "spec"),
    ]


def vm(obj: vmtypes.VirtualMachine) -> list[FieldError]:
    root, spec = Path(), obj.spec
    errors = [
        *_api_version(obj.api_version, root / "apiVersion"),
        *_metadata(obj.metadata, root / "metadata"),
        *vmi_spec(spec.template.spec, root / "spec" / "template" / "spec"),
        *_template_metadata(spec.template.metadata, root / "spec" / "template" / "metadata"),
    ]
    if spec.running is not None and spec.run_strategy is not None:
        errors.append(
            (root / "spec" / "running").error("running and runStrategy are mutually exclusive")
        )
    if spec.running is None and spec.run_strategy is None:
        errors.append((root / "spec").error("one of running or runStrategy must be specified"))
    for i, template in enumerate(spec.data_volume_templates):
        name = (template.metadata or {}).get("name")
        if not isinstance(name, str) or not name:
            errors.append(
                (root / "spec" / "dataVolumeTemplates")[i].error("metadata.name is required")
            )
    return errors


def replica_set(obj: vmtypes.VirtualMachineInstanceReplicaSet) -> list[FieldError]:
    root, spec = Path(), obj.spec
    template_meta = root / "spec" / "template" / "metadata"
    selector_errors = list(_selector(spec.selector, root / "spec" / "selector"))
    errors = [
        *_api_version(obj.api_version, root / "apiVersion"),
        *_metadata(obj.metadata, root / "metadata"),
        *vmi_spec(spec.template.spec, root / "spec" / "template" / "spec"),
        *_template_metadata(spec.template.metadata, template_meta),
        *selector_errors,
    ]
    labels = (spec.template.metadata or {}).get("labels") or {}
    # As KubeVirt: an invalid selector is reported once, not also as matching nothing.
    if (
        not selector_errors
        and isinstance(labels, dict)
        and not selector_matches(spec.selector, labels)
    ):
        errors.append(
            (template_meta / "labels").error("`selector` does not match template `labels`")
        )
    return errors


def vmi_spec(spec: vmitypes.VirtualMachineInstanceSpec, path: Path) -> list[FieldError]:
    return [
        *_unique(spec.volumes, path / "volumes"),
        *_unique(spec.networks, path / "networks"),
        *_unique(spec.domain.devices.disks, path / "domain" / "devices" / "disks"),
        *_unique(spec.domain.devices.interfaces, path / "domain" / "devices" / "interfaces"),
        *_disks(spec, path),
        *_volumes(spec.volumes, path / "volumes"),
        *_interfaces(spec, path),
        *_memory(spec.domain, path / "domain"),
        *_firmware(spec.domain.firmware, path / "domain" / "firmware"),
        *_secure_boot_smm(spec.domain, path / "domain"),
        *_labels(spec.node_selector, path / "nodeSelector"),
    ]


def selector_matches(selector: LabelSelector, labels: dict[str, object]) -> bool:
    """Whether `labels` satisfy every matchLabels entry and matchExpressions requirement
    (`kvd.api.labels`); an invalid selector matches nothing."""
    try:
        parsed = labelsel.label_selector(
            selector.match_labels,
            [(r.key, r.operator, r.values) for r in selector.match_expressions],
        )
    except labelsel.InvalidRequirement:
        return False
    return parsed.matches({k: v for k, v in labels.items() if isinstance(v, str)})


# --- object-level ------------------------------------------------------------------------------


def _api_version(api_version: str, path: Path) -> Iterator[FieldError]:
    group, _, version = api_version.partition("/")
    if group != API_GROUP or version not in API_VERSIONS:
        served = ", ".join(f"{API_GROUP}/{v}" for v in API_VERSIONS)
        yield path.error(f'Unsupported value: "{api_version}": supported values: {served}')


def _metadata(meta: ObjectMeta, path: Path) -> Iterator[FieldError]:
    if meta.name is None and meta.generate_name is None:
        yield (path / "name").error("Required value: name or generateName is required")
    if meta.name is not None:
        yield from _dns_name(meta.name, path / "name", DNS1123_SUBDOMAIN, 253)
    if meta.namespace is not None:
        yield from _dns_name(meta.namespace, path / "namespace", DNS1123_LABEL, 63)
    yield from _labels(meta.labels, path / "labels")
    yield from _annotations(meta.annotations, path / "annotations")


def _annotations(annotations: object, path: Path) -> Iterator[FieldError]:
    """KubeVirt annotations that would change the VM: refused, as kvd would ignore them."""
    for key in annotations if isinstance(annotations, dict) else ():
        message = unsupported.annotation_message(str(key))
        if message is not None:
            yield path[str(key)].error(message)


def _template_metadata(meta: dict[str, object] | None, path: Path) -> Iterator[FieldError]:
    yield from _annotations((meta or {}).get("annotations"), path / "annotations")
    labels = (meta or {}).get("labels")
    if labels is None:
        return
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        yield (path / "labels").error("must be a map of strings to strings")
        return
    yield from _labels({str(k): str(v) for k, v in labels.items()}, path / "labels")


def _dns_name(name: str, path: Path, pattern: str, limit: int) -> Iterator[FieldError]:
    kind = "label" if pattern == DNS1123_LABEL else "subdomain"
    if len(name) > limit:
        yield path.error(f'Invalid value: "{name}": must be no more than {limit} characters')
    elif not re.match(pattern, name):
        yield path.error(
            f'Invalid value: "{name}": a lowercase RFC 1123 {kind} must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character"
        )


def _labels(labels: dict[str, str], path: Path) -> Iterator[FieldError]:
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and not re.match(DNS1123_SUBDOMAIN, prefix)) or not (
            len(name) <= 63 and _LABEL_NAME.match(name)
        ):
            yield (path / key).error(f'Invalid value: "{key}": not a valid label key')
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            yield (path / key).error(f'Invalid value: "{value}": not a valid label value')


def _selector(selector: LabelSelector, path: Path) -> Iterator[FieldError]:
    if not selector.match_labels and not selector.match_expressions:
        yield path.error("Required value: an empty selector would select every VMI")
    for i, req in enumerate(selector.match_expressions):
        has_values = bool(req.values)
        if req.operator in ("In", "NotIn") and not has_values:
            yield (path / "matchExpressions")[i].error(f"{req.operator} needs values")
        if req.operator in ("Exists", "DoesNotExist") and has_values:
            yield (path / "matchExpressions")[i].error(f"{req.operator} takes no values")


def _unique(
    items: Iterable[vmitypes.Disk | vmitypes.Volume | vmitypes.Network | vmitypes.Interface],
    path: Path,
) -> Iterator[FieldError]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.name in seen:
            yield (path[i] / "name").error(f'Duplicate value: "{item.name}"')
        seen.add(item.name)


# --- devices -----------------------------------------------------------------------------------


def _disks(spec: vmitypes.VirtualMachineInstanceSpec, path: Path) -> Iterator[FieldError]:
    volumes = {v.name: v for v in spec.volumes}
    disks_path = path / "domain" / "devices" / "disks"
    boot_orders: dict[int, int] = {}
    for i, disk in enumerate(spec.domain.devices.disks):
        here = disks_path[i]
        volume = volumes.get(disk.name)
        if volume is None:
            yield (here / "name").error(f'no volume named "{disk.name}"')
        elif disk.lun is not None and not volume.persistent_volume_claim:
            # (KubeVirt's dataVolume too; kvd's luns present only claims named directly)
            yield (here / "lun").error("a lun can only present a persistentVolumeClaim volume")
        if disk.boot_order is not None:
            if disk.boot_order in boot_orders:
                other = boot_orders[disk.boot_order]
                yield (here / "bootOrder").error(
                    f"Duplicate value: {disk.boot_order} is also the boot order of disks[{other}]"
                )
            boot_orders[disk.boot_order] = i
        if disk.cdrom is not None and disk.cdrom.read_only is False:
            yield (here / "cdrom" / "readonly").error("a cdrom is always read-only")


def _interfaces(spec: vmitypes.VirtualMachineInstanceSpec, path: Path) -> Iterator[FieldError]:
    networks = {n.name for n in spec.networks}
    interfaces = {i.name for i in spec.domain.devices.interfaces}
    ifaces_path = path / "domain" / "devices" / "interfaces"
    macs: dict[str, int] = {}
    for i, iface in enumerate(spec.domain.devices.interfaces):
        if iface.name not in networks:
            yield (ifaces_path[i] / "name").error(f'no network named "{iface.name}"')
        if iface.ports and iface.masquerade is None:
            yield (ifaces_path[i] / "ports").error("ports can only be forwarded with masquerade")
        yield from _port_names(iface.ports, ifaces_path[i] / "ports")
        if iface.mac_address is not None:
            mac = iface.mac_address.lower().replace("-", ":")
            if int(mac.split(":")[0], 16) & 1:
                yield (ifaces_path[i] / "macAddress").error("must be a unicast MAC address")
            if iface.masquerade is not None and mac == MASQUERADE_BRIDGE_MAC:
                yield (ifaces_path[i] / "macAddress").error(
                    f"{MASQUERADE_BRIDGE_MAC} is reserved for the masquerade binding's in-pod "
                    "bridge; choose another MAC"
                )
            if mac in macs:
                yield (ifaces_path[i] / "macAddress").error(
                    f"Duplicate value: also used by interfaces[{macs[mac]}]"
                )
            macs[mac] = i
    for i, net in enumerate(spec.networks):
        if net.name not in interfaces:
            yield (path / "networks")[i].error(f'no interface uses network "{net.name}"')
        if net.pod is not None and net.pod.vm_network_cidr is not None:
            try:
                vm_network(net.pod.vm_network_cidr)
            except ValueError as exc:
                yield ((path / "networks")[i] / "pod" / "vmNetworkCIDR").error(str(exc))
    pods = [i for i, n in enumerate(spec.networks) if n.pod is not None]
    for extra in pods[1:]:
        yield ((path / "networks")[extra] / "pod").error("only one pod network is allowed")


def _port_names(ports: Iterable[vmitypes.Port], path: Path) -> Iterator[FieldError]:
    seen: dict[str, int] = {}
    for i, port in enumerate(ports):
        if port.name is None:
            continue
        if port.name in seen:
            yield (path[i] / "name").error(
                f'Duplicate value: "{port.name}" also names ports[{seen[port.name]}]'
            )
        seen.setdefault(port.name, i)


def _memory(domain: vmitypes.DomainSpec, path: Path) -> Iterator[FieldError]:
    resources = domain.resources or vmitypes.ResourceRequirements()
    for field_name, values in (("requests", resources.requests), ("limits", resources.limits)):
        for name, quantity in values.items():
            here = path / "resources" / field_name / name
            if name not in _KNOWN_RESOURCES:
                yield here.error(f'resource "{name}" is not supported by kvd (use cpu or memory)')
            elif quantity.value <= 0:
                yield here.error("must be greater than 0")
    guest = domain.memory.guest if domain.memory else None
    if guest is None:
        yield (path / "resources" / "requests" / "memory").error(
            "Required value: no memory requested; set domain.memory.guest or "
            "domain.resources.requests.memory"
        )
        return
    if guest.bytes() < 1024 * 1024:
        yield (path / "memory" / "guest").error(f"must be at least 1Mi, got {guest}")
    limit = resources.limits.get("memory")
    if limit is not None and guest.value > limit.value:
        yield (path / "memory" / "guest").error(
            f"{guest} is more than the memory limit {limit} (resources.limits.memory)"
        )
    for name, request in resources.requests.items():
        lim = resources.limits.get(name)
        if lim is not None and request.value > lim.value:
            yield (path / "resources" / "requests" / name).error(
                f"{request} is more than the limit {lim}"
            )


def _secure_boot_smm(domain: vmitypes.DomainSpec, path: Path) -> Iterator[FieldError]:
    """Secure Boot's OVMF needs SMM; one cannot turn it off and keep Secure Boot."""
    bootloader = domain.firmware.bootloader if domain.firmware else None
    efi = bootloader.efi if bootloader else None
    smm = domain.features.smm if domain.features else None
    if efi is not None and efi.secure_boot is True and smm is not None and smm.enabled is False:
        yield (path / "features" / "smm" / "enabled").error(
            "Secure Boot (firmware.bootloader.efi.secureBoot) needs SMM"
        )


def _firmware(firmware: vmitypes.Firmware | None, path: Path) -> Iterator[FieldError]:
    if firmware is None or firmware.kernel_boot is None:
        return
    kernel_boot = firmware.kernel_boot
    here = path / "kernelBoot"
    container = kernel_boot.container
    if container is None:
        if kernel_boot.kernel_args is not None:
            yield (here / "kernelArgs").error("kernelArgs needs kernelBoot.container.kernelPath")
        return
    if container.kernel_path is None and container.initrd_path is None:
        yield (here / "container").error("must set kernelPath, initrdPath or both")
    if kernel_boot.kernel_args is not None and container.kernel_path is None:
        yield (here / "kernelArgs").error("kernelArgs needs kernelBoot.container.kernelPath")


# --- volumes -----------------------------------------------------------------------------------


def _volumes(volumes: tuple[vmitypes.Volume, ...], path: Path) -> Iterator[FieldError]:
    for i, volume in enumerate(volumes):
        here = path[i]
        if volume.cloud_init_no_cloud is not None:
            yield from _cloud_init(volume.cloud_init_no_cloud, here / "cloudInitNoCloud")
        if volume.cloud_init_config_drive is not None:
            yield from _cloud_init(volume.cloud_init_config_drive, here / "cloudInitConfigDrive")
        if volume.empty_disk is not None and volume.empty_disk.capacity.value <= 0:
            yield (here / "emptyDisk" / "capacity").error("must be greater than 0")
        if volume.host_disk is not None:
            host = volume.host_disk
            yield from _host_disk_path(host.path, here / "hostDisk" / "path")
            if host.type == "DiskOrCreate" and host.capacity is None:
                yield (here / "hostDisk" / "capacity").error(
                    "Required value: a DiskOrCreate hostDisk needs a capacity"
                )
            if host.capacity is not None and host.capacity.value <= 0:
                yield (here / "hostDisk" / "capacity").error("must be greater than 0")


def _host_disk_path(path: str, where: Path) -> Iterator[FieldError]:
    """The pod gets the file's directory as a hostPath volume and finds the file in it by name
    (as KubeVirt does), so the path must name a file, and a hostPath has no `..` steps."""
    parts = path.split("/")
    if ".." in parts:
        yield where.error(f'Invalid value: "{path}": must not contain ".."')
    elif parts[-1] in ("", "."):
        yield where.error(f'Invalid value: "{path}": must name a file, not a directory')


def _cloud_init(
    source: vmitypes.CloudInitNoCloudSource | vmitypes.CloudInitConfigDriveSource, path: Path
) -> Iterator[FieldError]:
    for plain, encoded, plain_name, encoded_name in (
        (source.user_data, source.user_data_base64, "userData", "userDataBase64"),
        (source.network_data, source.network_data_base64, "networkData", "networkDataBase64"),
    ):
        if plain is not None and encoded is not None:
            yield path.error(f"may have only one of {plain_name}, {encoded_name}")
        data = plain.encode() if plain is not None else None
        if encoded is not None:
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                yield (path / encoded_name).error("must be valid base64")
        if data is not None and len(data) > CLOUD_INIT_MAX_BYTES:
            name = plain_name if plain is not None else encoded_name
            yield (path / name).error(
                f"is {len(data)} bytes; at most {CLOUD_INIT_MAX_BYTES} are allowed"
            )
    if (
        source.user_data is None
        and source.user_data_base64 is None
        and (source.network_data is None and source.network_data_base64 is None)
    ):
        yield path.error("must have userData, userDataBase64, networkData or networkDataBase64")
