"""The cluster's kvd settings: one ConfigMap (`kvd-config` in kvd's namespace), read live.

Every key is optional and falls back to its default, so a cluster without the ConfigMap works.
A value that does not parse, or a key that is not a setting, is reported (logged by the caller,
once per change) and the default used instead: a typo in the ConfigMap must not stop every VMI in
the cluster.

    useEmulation: "true"                   # TCG when /dev/kvm is absent (on in the local cluster)
    memoryOverhead: "128Mi"                # added to the guest's memory in the pod's request
    gracePeriodMarginSeconds: "15"         # the launcher's own shutdown, on top of the VMI's grace
    launcherImage: ""                      # kvd's image for launcher pods; "" = this installation's
    cpuAllocationRatio: "10"               # a launcher pod requests vCPUs / ratio CPUs (KubeVirt's)

`cpuAllocationRatio` is KubeVirt's `developerConfiguration.cpuAllocationRatio`, with its
meaning: a VMI that requests no CPU of its own gets a launcher pod requesting vCPUs
(sockets * cores * threads, each 1 when unset) / ratio CPUs, so the default 10 is 100m per vCPU
and a node's CPUs hold ten single-vCPU VMs each. It is a whole number from 1 (a CPU per vCPU) to
1000 (1m per vCPU, the smallest request there is); the local cluster sets a higher one (see
kvd.local.cluster) so one machine runs many more small VMs than it has cores.

There is no cluster-wide grace period, as in KubeVirt: each VMI has its own
`spec.terminationGracePeriodSeconds`, which admission defaults to KubeVirt's 30 s. An earlier
`terminationGracePeriodSeconds` key here never took effect for that reason; a ConfigMap that
still sets it is told so by name (`NOT_SETTINGS`).

The overhead default is measured (bench/controller.py, a booted 128 MiB demo guest under TCG):
the launcher, its libvirtd and the pod's other processes hold about 56 MiB (PSS), QEMU about
72 MiB beside guest RAM (41 MiB of its own, 31 MiB of TCG translation cache, capped at 32 MiB
by the converter). Under KVM there is no translation cache: about 100Mi would do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kvd.api.quantity import Quantity

NAME = "kvd-config"
KNOWN = (
    "useEmulation",
    "memoryOverhead",
    "gracePeriodMarginSeconds",
    "launcherImage",
    "cpuAllocationRatio",
)
CPU_ALLOCATION_RATIO_MAX = 1000
# Keys people set expecting a cluster-wide effect kvd does not have: why, and where it lives.
NOT_SETTINGS = {
    "terminationGracePeriodSeconds": "not a kvd setting: the grace period is set per VMI in "
    "spec.terminationGracePeriodSeconds (KubeVirt's default, 30, applies when it is unset); "
    "remove the key",
}


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    use_emulation: bool = True
    memory_overhead: str = "128Mi"
    grace_margin_seconds: int = 15
    launcher_image: str = ""
    cpu_allocation_ratio: int = 10


def parse(data: Mapping[str, str] | None) -> tuple[ClusterConfig, list[str]]:
    """The settings in a ConfigMap's `data`, and what was wrong with it (key: problem)."""
    data = data or {}
    problems: list[str] = []
    defaults = ClusterConfig()
    for key in sorted(set(data) - set(KNOWN)):
        if key in NOT_SETTINGS:
            problems.append(f"{key}: {NOT_SETTINGS[key]}")
        else:
            problems.append(f"{key}: unknown setting; known: {', '.join(sorted(KNOWN))}")

    def boolean(key: str, default: bool) -> bool:
        value = data.get(key)
        if value is None:
            return default
        if value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        problems.append(f'{key}: "{value}" is not "true" or "false"')
        return default

    def seconds(key: str, default: int) -> int:
        value = data.get(key)
        if value is None:
            return default
        if value.strip().isdigit():
            return int(value)
        problems.append(f'{key}: "{value}" is not a whole number of seconds')
        return default

    ratio = data.get("cpuAllocationRatio")
    cpu_allocation_ratio = defaults.cpu_allocation_ratio
    if ratio is not None:
        text = ratio.strip()
        if text.isdigit() and 1 <= int(text) <= CPU_ALLOCATION_RATIO_MAX:
            cpu_allocation_ratio = int(text)
        else:
            problems.append(
                f'cpuAllocationRatio: "{ratio}" is not a whole number from 1 to '
                f"{CPU_ALLOCATION_RATIO_MAX}"
            )
    overhead = data.get("memoryOverhead", defaults.memory_overhead)
    try:
        valid = Quantity.parse(overhead).bytes() >= 0
    except ValueError:
        valid = False
    if not valid:
        problems.append(f'memoryOverhead: "{overhead}" is not a quantity such as 128Mi')
        overhead = defaults.memory_overhead
    config = ClusterConfig(
        use_emulation=boolean("useEmulation", defaults.use_emulation),
        memory_overhead=overhead,
        grace_margin_seconds=seconds("gracePeriodMarginSeconds", defaults.grace_margin_seconds),
        launcher_image=data.get("launcherImage", defaults.launcher_image).strip(),
        cpu_allocation_ratio=cpu_allocation_ratio,
    )
    return config, problems
