"""This machine: the cores a process may use and the CPU's name and flags, read one way
everywhere (threads, plans, benchmark records)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask; all logical cores where the OS
    has none, as on macOS); at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _cpuinfo_field(*names: str) -> str | None:
    try:
        for line in CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(names):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's marketing name as the OS reports it (the machine type where it reports none)."""
    return (
        _cpuinfo_field("model name", "Hardware", "Model")
        or platform.processor()
        or platform.machine()
    )


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (x86 `flags`, Arm `Features`); empty where the OS has no cpuinfo."""
    return frozenset((_cpuinfo_field("flags", "Features") or "").split())
