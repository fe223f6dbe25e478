"""What memory this device has and what this process uses: the planner's measurements.

- `available_memory()`: Linux MemAvailable, lowered to what a cgroup (v2 or v1) still allows,
  because in a container /proc/meminfo shows the host; macOS from sysctl + vm_stat; else a
  sysconf fallback.
- `nvidia_smi_memory()`: free/total VRAM of the first GPU from nvidia-smi; a backend with GPU
  offload may read it more directly (the planner is handed whichever probe applies).
- `runtime_baseline_bytes()`: the RSS of this process with the runtime imported and no model
  loaded, measured now (call it before loading a model).
- `parse_size()`: "6GB", "512MiB", "1.5 GiB", "800000000".

Footprint *estimates* from GGUF headers live in `footprint.py`.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_et.errors import InputError

MiB = 1 << 20
# RSS of `python -c "import edge_et.backends.llama_cpp.model"` (numpy, PIL, llama_cpp and its
# libraries), measured on Linux x86_64 / CPython 3.11 / llama-cpp-python 0.3.36: the baseline
# when it cannot be measured in-process (the [llama] extra is not installed).
BASELINE_FALLBACK_BYTES = 46 * MiB
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Bytes from "6GB" (10^9), "6GiB" (2^30), "512MiB", "512M" (10^6) or plain digits.

    Raises a one-line InputError naming the accepted forms.
    """
    if isinstance(text, bool):
        raise InputError(f"memory size {text!r} is not a size")
    if isinstance(text, int):
        if text <= 0:
            raise InputError(f"memory size must be positive, got {text}")
        return text
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS:
        raise InputError(
            f"cannot read memory size {text!r}: use a number of bytes or a unit, "
            "e.g. 6GB, 6GiB, 512MiB, 800M"
        )
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise InputError(f"memory size must be positive, got {text!r}")
    return value


def format_size(value: int) -> str:
    """Human bytes in binary units, e.g. '1.50 GiB', '312.0 MiB'."""
    if abs(value) >= 2**30:
        return f"{value / 2**30:.2f} GiB"
    return f"{value / MiB:.1f} MiB"


# -- system memory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryInfo:
    """Memory this process may still use (`available_bytes`), the total, and where it was read."""

    available_bytes: int
    total_bytes: int
    source: str


def available_memory() -> MemoryInfo:
    """Available memory now: the smaller of the OS's view and the cgroup's remaining limit."""
    if sys.platform.startswith("linux"):
        info = _linux_meminfo(Path("/proc/meminfo"))
        if info is not None:
            limited = cgroup_limit(Path("/sys/fs/cgroup"), Path("/proc/self/cgroup"))
            if limited is not None and limited.available_bytes < info.available_bytes:
                return limited
            return info
    if sys.platform == "darwin":
        info = _macos_memory()
        if info is not None:
            return info
    return _sysconf_memory()


def _linux_meminfo(path: Path) -> MemoryInfo | None:
    try:
        fields = dict(line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
        kib = lambda key: int(fields[key].split()[0]) * 1024  # noqa: E731
        return MemoryInfo(kib("MemAvailable"), kib("MemTotal"), "/proc/meminfo MemAvailable")
    except (OSError, KeyError, ValueError):
        return None


def cgroup_limit(root: Path, self_cgroup: Path) -> MemoryInfo | None:
    """Tightest limit minus usage over this process's memory cgroup and its ancestors.

    cgroup v2: `<root>/<path>/memory.max` and `memory.current`; v1: the `memory` controller's
    `memory.limit_in_bytes` and `memory.usage_in_bytes`. None when nothing is limited.
    """
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    best: MemoryInfo | None = None
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hierarchy == "0" and controllers == "":
            base, files, label = root, ("memory.max", "memory.current"), "cgroup v2"
        elif "memory" in controllers.split(","):
            base = root / "memory"
            files, label = ("memory.limit_in_bytes", "memory.usage_in_bytes"), "cgroup v1"
        else:
            continue
        for folder in _ancestors(base, path):
            found = _cgroup_pair(folder, *files)
            if found and (best is None or found[0] < best.available_bytes):
                best = MemoryInfo(found[0], found[1], f"{label} limit - usage ({folder})")
    return best


def _ancestors(base: Path, path: str) -> list[Path]:
    parts = [p for p in path.strip().split("/") if p and p != ".."]
    return [base.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _cgroup_pair(folder: Path, limit_file: str, usage_file: str) -> tuple[int, int] | None:
    """(limit - usage, limit) of one cgroup folder, or None when unlimited or unreadable."""
    try:
        limit_text = (folder / limit_file).read_text().strip()
        usage = int((folder / usage_file).read_text().strip())
    except (OSError, ValueError):
        return None
    # "max" (v2) or a huge page-rounded number (v1) mean no limit.
    if not limit_text.isdigit() or int(limit_text) >= 2**60:
        return None
    limit = int(limit_text)
    return max(limit - usage, 0), limit


def _macos_memory() -> MemoryInfo | None:
    """Free + inactive + speculative pages (what macOS hands out without swapping), and hw.memsize."""
    try:
        total = int(
            subprocess.run(
                ["sysctl", "-n", "hw.memsize"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout
        )
        stat = subprocess.run(
            ["vm_stat"], capture_output=True, text=True, timeout=5, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return parse_vm_stat(stat, total)


def parse_vm_stat(text: str, total: int) -> MemoryInfo | None:
    """Available bytes from `vm_stat` output (its first line names the page size)."""
    page = re.search(r"page size of (\d+) bytes", text)
    if not page:
        return None
    pages = {
        m.group(1).strip(): int(m.group(2))
        for m in re.finditer(r"^(Pages [^:]+):\s+(\d+)\.?$", text, re.MULTILINE)
    }
    free = sum(pages.get(f"Pages {kind}", 0) for kind in ("free", "inactive", "speculative"))
    return MemoryInfo(free * int(page.group(1)), total, "vm_stat free+inactive+speculative")


def _sysconf_memory() -> MemoryInfo:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        avail = os.sysconf("SC_AVPHYS_PAGES") * page
        return MemoryInfo(avail, os.sysconf("SC_PHYS_PAGES") * page, "sysconf")
    except (ValueError, OSError, AttributeError):
        return MemoryInfo(0, 0, "unknown (no memory probe on this platform)")


# -- GPU memory --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VRAM:
    """Free and total memory of the first GPU a backend would offload to."""

    free_bytes: int
    total_bytes: int
    name: str
    source: str


def nvidia_smi_memory(run=subprocess.run) -> VRAM | None:
    """First GPU's free/total MiB from nvidia-smi, when it is on PATH."""
    if run is subprocess.run and shutil.which("nvidia-smi") is None:
        return None
    try:
        done = run(
            [
                "nvidia-smi",
                "--query-gpu=memory.free,memory.total,name",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else None


def parse_nvidia_smi(text: str) -> VRAM | None:
    """'81000, 81559, NVIDIA H100' (MiB) → VRAM of the first line; None if unreadable."""
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        try:
            free, total = int(parts[0]) * MiB, int(parts[1]) * MiB
        except (IndexError, ValueError):
            return None
        return VRAM(free, total, parts[2] if len(parts) > 2 else "GPU", "nvidia-smi")
    return None


# -- this process ------------------------------------------------------------------------------


def process_peak_rss() -> int:
    """Peak resident set size of this process image.

    Linux: VmHWM of /proc/self/status. Not ru_maxrss: Linux carries the parent's RSS into it
    across fork/vfork + exec, so a child of a 350 MiB pytest reports >= 350 MiB whatever it
    does. Elsewhere ru_maxrss (KiB on Linux, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss() -> int | None:
    """Resident set size now (Linux /proc/self/statm); None where it cannot be read."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def runtime_baseline_bytes(import_backends: Callable[[], object]) -> tuple[int, str]:
    """RSS of the runtime with no model loaded, and how it was obtained.

    `import_backends` imports the backends' native libraries first (they are part of the
    baseline; the planner hands it in, so this module never imports a backend); then the
    current RSS is read. Call it before any model is loaded. Without the backend's extra, or
    where RSS cannot be read, the documented constant measured on Linux x86_64.
    """
    try:
        import_backends()
    except ImportError:
        return BASELINE_FALLBACK_BYTES, "constant (a backend's library is not importable)"
    rss = current_rss()
    if rss is None:
        return BASELINE_FALLBACK_BYTES, "constant (RSS unreadable here)"
    return rss, "measured (this process, before any model)"
