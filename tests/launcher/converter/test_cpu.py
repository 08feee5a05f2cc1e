"""vCPU count and topology, and the CPU model under KVM and under TCG."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.launcher.converter import cpu
from tests.launcher.converter.conftest import assert_xml, context, spec


@pytest.mark.parametrize(
    ("cpu_spec", "vcpus", "topology"),
    [
        pytest.param(None, "1", '<topology sockets="1" cores="1" threads="1"/>', id="default"),
        pytest.param(
            {"cores": 2}, "2", '<topology sockets="1" cores="2" threads="1"/>', id="cores"
        ),
        pytest.param(
            {"sockets": 2, "cores": 3, "threads": 2},
            "12",
            '<topology sockets="2" cores="3" threads="2"/>',
            id="sockets-cores-threads",
        ),
    ],
)
def test_topology_and_vcpu_count(
    cpu_spec: dict[str, Any] | None, vcpus: str, topology: str
) -> None:
    s = spec({"cpu": cpu_spec} if cpu_spec else None)
    assert_xml(cpu.vcpu(s), f'<vcpu placement="static">{vcpus}</vcpu>')
    element = cpu.cpu(s, context())
    topo = element.find("topology")
    assert topo is not None
    assert_xml(topo, topology)


@pytest.mark.parametrize(
    ("model", "domain_type", "expected"),
    [
        pytest.param(None, "kvm", '<cpu mode="host-model">{t}</cpu>', id="kvm-default"),
        pytest.param("host-model", "kvm", '<cpu mode="host-model">{t}</cpu>', id="kvm-host-model"),
        pytest.param(
            "host-passthrough",
            "kvm",
            '<cpu mode="host-passthrough">{t}</cpu>',
            id="kvm-host-passthrough",
        ),
        pytest.param(
            "Skylake-Client",
            "kvm",
            '<cpu mode="custom" match="exact"><model fallback="forbid">Skylake-Client</model>'
            "{t}</cpu>",
            id="kvm-named",
        ),
        # TCG cannot pass the host CPU through: QEMU's `-cpu max` instead.
        pytest.param(None, "qemu", '<cpu mode="maximum">{t}</cpu>', id="tcg-default"),
        pytest.param("host-model", "qemu", '<cpu mode="maximum">{t}</cpu>', id="tcg-host-model"),
        pytest.param(
            "host-passthrough", "qemu", '<cpu mode="maximum">{t}</cpu>', id="tcg-host-passthrough"
        ),
        pytest.param(
            "qemu64",
            "qemu",
            '<cpu mode="custom" match="exact"><model fallback="forbid">qemu64</model>{t}</cpu>',
            id="tcg-named",
        ),
    ],
)
def test_model(model: str | None, domain_type: str, expected: str) -> None:
    s = spec({"cpu": {"model": model}} if model else None)
    topology = '<topology sockets="1" cores="1" threads="1"/>'
    assert_xml(cpu.cpu(s, context(domain_type=domain_type)), expected.format(t=topology))
