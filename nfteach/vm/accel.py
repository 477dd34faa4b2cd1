"""Which QEMU accelerator the vm backend uses: KVM where the machine really has hardware
virtualisation, else software emulation (TCG), and why.

KVM counts only when both hold: ``/dev/kvm`` opens read-write, and the CPU flags in
``/proc/cpuinfo`` show ``vmx`` (Intel) or ``svm`` (AMD). A machine that is itself a guest
can expose ``/dev/kvm`` without either flag (a paravirtual KVM); guests do not run under
it, so it does not count. ``$NFTEACH_VM_ACCEL`` (``tcg`` or ``kvm``) overrides the choice.

>>> choose("flags : fpu vme svm sse2", kvm_usable=True).name
'kvm'
>>> a = choose("flags : fpu vme hypervisor sse2", kvm_usable=True)
>>> a.name, a.why
('tcg', '/dev/kvm is present but the CPU flags show neither vmx nor svm (no hardware virtualisation)')
>>> a.args
['-accel', 'tcg,thread=single']
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

ENV_ACCEL = "NFTEACH_VM_ACCEL"
KVM_DEVICE = "/dev/kvm"


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" or "tcg"
    why: str  # one line: why this one

    @property
    def args(self) -> List[str]:
        if self.name == "kvm":
            return ["-accel", "kvm"]
        # one host thread runs both vCPUs in turn: on a 2-core machine that is as fast as a
        # thread per vCPU (measured: boot 6-10 s, article 7-9 s either way), leaves a core
        # to the notebook, and keeps ftrace's cross-CPU code patching (function_graph)
        # out of multi-threaded TCG
        return ["-accel", "tcg,thread=single"]

    def describe(self) -> str:
        return f"{'KVM' if self.name == 'kvm' else 'TCG (software emulation)'}: {self.why}"


def cpu_flags(cpuinfo: str) -> set:
    """The flags of the first CPU listed in ``/proc/cpuinfo`` text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def kvm_usable(device: str = KVM_DEVICE) -> Optional[str]:
    """None if ``device`` opens read-write, else why not (one line)."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return f"there is no {device}"
    except OSError as e:
        return f"{device} cannot be opened read-write ({e.strerror})"
    os.close(fd)
    return None


def choose(cpuinfo: str, kvm_usable: object, override: str = "") -> Accel:
    """The accelerator for this machine. ``kvm_usable`` is True, or why ``/dev/kvm`` is not
    usable (a string); ``override`` is ``$NFTEACH_VM_ACCEL``."""
    if override == "tcg":
        return Accel("tcg", f"{ENV_ACCEL}=tcg")
    flags = cpu_flags(cpuinfo)
    hw = sorted(flags & {"vmx", "svm"})
    if kvm_usable is not True:
        why = str(kvm_usable or f"{KVM_DEVICE} is not usable")
        if override == "kvm":
            raise ValueError(f"{ENV_ACCEL}=kvm, but {why}")
        return Accel("tcg", why)
    if not hw:
        why = f"{KVM_DEVICE} is present but the CPU flags show neither vmx nor svm (no hardware virtualisation)"
        if override == "kvm":
            raise ValueError(f"{ENV_ACCEL}=kvm, but {why}")
        return Accel("tcg", why)
    return Accel("kvm", f"{KVM_DEVICE} is usable and the CPU has {hw[0]}")


_CHOSEN: Optional[Accel] = None


def detect() -> Accel:
    """``choose`` on this machine (``/proc/cpuinfo``, ``/dev/kvm``, ``$NFTEACH_VM_ACCEL``)."""
    global _CHOSEN
    override = os.environ.get(ENV_ACCEL, "").strip().lower()
    if override not in ("", "tcg", "kvm"):
        raise ValueError(f"{ENV_ACCEL}={override!r}: give tcg or kvm")
    if _CHOSEN is not None and not override:
        return _CHOSEN
    try:
        with open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
    except OSError:
        cpuinfo = ""
    why_not = kvm_usable()
    chosen = choose(cpuinfo, True if why_not is None else why_not, override)
    if not override:
        _CHOSEN = chosen
    return chosen


def vm_doctor_line() -> str:
    """``nfteach doctor``'s line on the vm backend: QEMU, the accelerator and why, saved guests."""
    import shutil

    if not shutil.which("qemu-system-x86_64"):
        return "vm backend: no qemu-system-x86_64 (apt-get install --no-install-recommends qemu-system-x86)"
    try:
        a = detect().describe()
    except ValueError as e:
        a = f"not usable: {e}"
    saving = ("new labs restore a saved, booted guest" if shutil.which("qemu-img")
              else "no qemu-img: labs boot cold (apt-get install --no-install-recommends qemu-utils)")
    return f"vm backend: QEMU with {a}; {saving}"
