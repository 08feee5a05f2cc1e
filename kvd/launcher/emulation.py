"""Whether KVM can really run a guest here, or domains must be emulated (TCG, domain type `qemu`).

`/dev/kvm` existing is not enough, and neither is the usual check that KVM_CREATE_VM succeeds: on
the development and CI machines `/dev/kvm` is served by `kvm_pvm`, which creates VMs and runs vCPUs
but executes an ordinary guest by emulation, so slowly that a Linux kernel never gets past its
decompressor (with `-accel kvm` the test guest printed nothing in 60 s; under TCG its first lines
come within a second). libvirt's domain capabilities report type `kvm` as supported there too:
asking libvirt or QEMU gives the same wrong "yes", and costs a daemon.

So the check runs guest code, through the KVM API directly: one VM, one page of memory, one vCPU in
real mode running a loop of `_ITERATIONS` `dec ecx; jnz` then `hlt`, after one warm-up run so fixed
costs (first entry, faulting the page in) are not counted. Run natively the loop is 200k simple
instructions, well under 0.1 ms of the thread's CPU time (an estimate: no machine here has hardware
KVM); kvm_pvm needs 40 ms. The 5 ms budget leaves a wide margin below and 8x above. CPU time, not
wall time, so a busy host does not turn a fast KVM into a slow one.

Cost: microseconds when /dev/kvm is absent or closed to us, about 1 ms when KVM works, about 50 ms
when it is emulated. Bounded without a timer: the guest program is finite and every run that does
not halt is counted.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import struct
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from kvd.logs import get_logger

log = get_logger(__name__)

KVM = Path("/dev/kvm")
_ITERATIONS = 100_000
_CPU_BUDGET_SECONDS = 0.005

# ioctl numbers from <linux/kvm.h>: _IO/_IOR/_IOW(0xAE, nr, size).
_KVM_GET_API_VERSION = 0xAE00
_KVM_CREATE_VM = 0xAE01
_KVM_GET_VCPU_MMAP_SIZE = 0xAE04
_KVM_CREATE_VCPU = 0xAE41
_KVM_SET_USER_MEMORY_REGION = 0x4020AE46  # struct kvm_userspace_memory_region, 32 bytes
_KVM_RUN = 0xAE80
_KVM_GET_REGS = 0x8090AE81  # struct kvm_regs, 144 bytes
_KVM_SET_REGS = 0x4090AE82
_KVM_GET_SREGS = 0x8138AE83  # struct kvm_sregs, 312 bytes
_KVM_SET_SREGS = 0x4138AE84
_KVM_API_VERSION = 12
_KVM_EXIT_HLT = 5
_KVM_EXIT_INTR = 10  # a signal interrupted the run: run again

_GUEST_ADDRESS = 0x1000
_PAGE = 0x1000
_MAX_RUNS = 16


def _loop_program(iterations: int) -> bytes:
    # 16-bit real mode: mov ecx, imm32; again: dec ecx; jnz again; hlt
    return b"\x66\xb9" + struct.pack("<I", iterations) + b"\x66\x49\x75\xfc\xf4"


@dataclass(frozen=True)
class KvmCheck:
    usable: bool
    reason: str  # why not, or how fast: for the launcher's log and GetInfo
    cpu_seconds: float | None = None  # the measured loop, when it ran


def check_kvm(device: Path = KVM) -> KvmCheck:
    """Run a tiny guest on `device` and say whether it ran at hardware speed."""
    try:
        with ExitStack() as stack:
            return _probe(stack, device)
    except FileNotFoundError:
        return KvmCheck(False, f"{device} does not exist")
    except OSError as e:
        return KvmCheck(False, f"{device}: {e.strerror or e}")


def kvm_usable(device: Path = KVM) -> bool:
    """True when domains can use type `kvm`; False means emulate (TCG) or refuse to run."""
    result = check_kvm(device)
    log.info(
        "kvm_checked",
        device=str(device),
        usable=result.usable,
        reason=result.reason,
        cpu_seconds=result.cpu_seconds,
    )
    return result.usable


def _probe(stack: ExitStack, device: Path) -> KvmCheck:
    kvm = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    stack.callback(os.close, kvm)
    version = fcntl.ioctl(kvm, _KVM_GET_API_VERSION)
    if version != _KVM_API_VERSION:
        return KvmCheck(False, f"KVM API version {version}, expected {_KVM_API_VERSION}")
    vm = fcntl.ioctl(kvm, _KVM_CREATE_VM, 0)
    stack.callback(os.close, vm)

    memory = mmap.mmap(-1, _PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    stack.callback(memory.close)
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))  # the temporary export ends here
    region = struct.pack("=IIQQQ", 0, 0, _GUEST_ADDRESS, _PAGE, address)
    fcntl.ioctl(vm, _KVM_SET_USER_MEMORY_REGION, region)

    vcpu = fcntl.ioctl(vm, _KVM_CREATE_VCPU, 0)
    stack.callback(os.close, vcpu)
    run_size = fcntl.ioctl(kvm, _KVM_GET_VCPU_MMAP_SIZE)
    run = mmap.mmap(vcpu, run_size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    stack.callback(run.close)

    sregs = bytearray(312)
    fcntl.ioctl(vcpu, _KVM_GET_SREGS, sregs)
    struct.pack_into("=Q", sregs, 0, 0)  # cs.base
    struct.pack_into("=H", sregs, 12, 0)  # cs.selector
    fcntl.ioctl(vcpu, _KVM_SET_SREGS, bytes(sregs))

    warm_up = _run_loop(vcpu, run, memory, 1)
    if isinstance(warm_up, str):
        return KvmCheck(False, warm_up)
    seconds = _run_loop(vcpu, run, memory, _ITERATIONS)
    if isinstance(seconds, str):
        return KvmCheck(False, seconds)
    if seconds > _CPU_BUDGET_SECONDS:
        return KvmCheck(
            False,
            f"a vCPU runs {_ITERATIONS} loop iterations in {seconds * 1000:.1f} ms of CPU time "
            f"(budget {_CPU_BUDGET_SECONDS * 1000:.0f} ms): this KVM emulates guest code instead "
            "of running it on the CPU",
            seconds,
        )
    return KvmCheck(True, f"loop ran in {seconds * 1000:.2f} ms of CPU time", seconds)


def _run_loop(vcpu: int, run: mmap.mmap, memory: mmap.mmap, iterations: int) -> float | str:
    """CPU seconds the loop took, or why it did not run to its `hlt`."""
    program = _loop_program(iterations)
    memory[: len(program)] = program
    regs = bytearray(144)  # rax..r15, rip, rflags: 18 u64
    struct.pack_into("=Q", regs, 16 * 8, _GUEST_ADDRESS)  # rip
    struct.pack_into("=Q", regs, 17 * 8, 0x2)  # rflags: bit 1 is always set
    fcntl.ioctl(vcpu, _KVM_SET_REGS, bytes(regs))
    start = time.thread_time()
    for _ in range(_MAX_RUNS):
        fcntl.ioctl(vcpu, _KVM_RUN, 0)
        (reason,) = struct.unpack_from("=I", run, 8)  # kvm_run.exit_reason
        if reason != _KVM_EXIT_INTR:
            break
    seconds = time.thread_time() - start
    if reason != _KVM_EXIT_HLT:
        return f"the test guest stopped with KVM exit reason {reason}, not hlt"
    fcntl.ioctl(vcpu, _KVM_GET_REGS, regs)
    (rcx,) = struct.unpack_from("=Q", regs, 2 * 8)
    if rcx & 0xFFFFFFFF != 0:
        return f"the test guest halted with ecx={rcx:#x}, not 0: its loop did not run"
    return seconds
