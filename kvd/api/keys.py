"""The label, annotation and finalizer keys kvd writes and reads, as KubeVirt spells them
(pkg/apis/core/v1/types.go), so KubeVirt's tools and selectors find kvd's objects.

Who writes which: the controller labels launcher pods (APP, CREATED_BY), annotates them (DOMAIN),
labels a scheduled VMI with its node (NODE_NAME) and keeps FINALIZER on every VMI until its pods
are gone; the handler labels and annotates its node (SCHEDULABLE, HEARTBEAT), and the controller's
watchdog takes SCHEDULABLE away from a node whose heartbeat stopped. HANDLER_ADDRESS is kvd's
own (KubeVirt's virt-api finds virt-handler's pod instead): the handler annotates its node with
where its HandlerService listens, and the controller dials that. The VM controller keeps
VM_FINALIZER on VMs and their VMIs and annotates each VMI with its VM_GENERATION.
"""

from __future__ import annotations

from typing import Final

APP: Final = "kubevirt.io"
"""Label on kvd's own pods naming the component (KubeVirt's AppLabel)."""
LAUNCHER: Final = "virt-launcher"
"""APP's value on a launcher pod."""
LAUNCHER_SELECTOR: Final = f"{APP}={LAUNCHER}"
"""The label selector of every launcher pod."""
CREATED_BY: Final = "kubevirt.io/created-by"
"""Label on a launcher pod: the uid of its VMI."""
DOMAIN: Final = "kubevirt.io/domain"
"""Annotation on a launcher pod: the name of its VMI (and of its domain)."""
NODE_NAME: Final = "kubevirt.io/nodeName"
"""Label on a VMI once scheduled: its node. Each handler watches the VMIs labelled with its own."""
SCHEDULABLE: Final = "kubevirt.io/schedulable"
"""Label on a node: "true" while its handler runs and beats; launcher pods select it."""
HEARTBEAT: Final = "kubevirt.io/heartbeat"
"""Annotation on a node: when its handler last beat (RFC 3339)."""
FINALIZER: Final = "kubevirt.io/foregroundDeleteVirtualMachine"
"""Finalizer on a VMI: it stays until its launcher pods are gone (KubeVirt's
VirtualMachineInstanceFinalizer)."""
HANDLER_ADDRESS: Final = "kvd.io/handler-address"
"""Annotation on a node: HOST:PORT of its handler's HandlerService (TLS), while it serves."""
VM_FINALIZER: Final = "kubevirt.io/virtualMachineControllerFinalize"
"""Finalizer the VM controller keeps on each VM until its VMI is gone, and on each VMI it
created until it has read the VMI's end into the VM's status (KubeVirt's
VirtualMachineControllerFinalizer)."""
VM_GENERATION: Final = "kubevirt.io/vm-generation"
"""Annotation on a VM's VMI: the VM generation the VMI's spec was made from (or, after a change
that needs no restart, matches)."""
LAUNCHER_FAIL_FAST: Final = "kubevirt.io/func-test-virt-launcher-fail-fast"
"""Annotation on a VMI (KubeVirt's FuncTestLauncherFailFastAnnotation): its launcher exits at
once with an error, as a launcher that keeps crashing would; for tests of the crash-loop
back-off."""
