"""Device profiles: the memory, bandwidth and cores of devices edge-et does not run on here.

`profiles.toml` beside this module is the table (every figure with its source). A profile
gives the planner its budget (the memory one app may use there, `profile_budget`) and the
deadline its prediction (edge_et/runtime/prediction.py scales this machine's measured speed by
the profile's bandwidth and cores). Pure: nothing here reads the machine.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_et.errors import InputError
from edge_et.memory.scheduler import Budget

TABLE = Path(__file__).with_name("profiles.toml")
GB = 10**9  # the table is in decimal GB and GB/s, as the sources state them
TARGETS = ("ios", "android")
_REQUIRED = {
    "description": str,
    "os": str,
    "target": str,
    "ram_gb": (int, float),
    "app_memory_gb": (int, float),
    "app_memory_source": str,
    "bandwidth_gbs": (int, float),
    "bandwidth_source": str,
    "cores": int,
    "cores_source": str,
}


@dataclass(frozen=True)
class PublishedDecode:
    """A decode speed someone published for this device (not measured by edge-et)."""

    model: str
    tok_s: float
    runtime: str
    source: str


@dataclass(frozen=True)
class DeviceProfile:
    """One row of the table; sizes in bytes, bandwidth in bytes/s."""

    name: str
    description: str
    os: str
    target: str
    ram_bytes: int
    app_memory_bytes: int
    app_memory_source: str
    bandwidth_bytes_per_s: float
    bandwidth_source: str
    cores: int
    cores_source: str
    published_decode: tuple[PublishedDecode, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return asdict(self)


def load_profiles(path: Path = TABLE) -> dict[str, DeviceProfile]:
    """Every profile of the table at `path`, by name, in the table's order."""
    try:
        table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read the device profiles '{path}': {exc}") from None
    return {name: _profile(name, row) for name, row in table.items()}


def _profile(name: str, row: dict) -> DeviceProfile:
    for key, kind in _REQUIRED.items():
        if not isinstance(row.get(key), kind):
            raise InputError(f"device profile {name!r}: '{key}' is missing or has the wrong type")
    if row["target"] not in TARGETS:
        raise InputError(f"device profile {name!r}: target must be one of {', '.join(TARGETS)}")
    if (
        not 0 < row["app_memory_gb"] <= row["ram_gb"]
        or row["bandwidth_gbs"] <= 0
        or row["cores"] < 1
    ):
        raise InputError(
            f"device profile {name!r}: app memory must be within the RAM, "
            "bandwidth and cores positive"
        )
    published = tuple(
        PublishedDecode(str(p["model"]), float(p["tok_s"]), str(p["runtime"]), str(p["source"]))
        for p in row.get("published_decode", [])
    )
    return DeviceProfile(
        name=name,
        description=row["description"],
        os=row["os"],
        target=row["target"],
        ram_bytes=int(row["ram_gb"] * GB),
        app_memory_bytes=int(row["app_memory_gb"] * GB),
        app_memory_source=row["app_memory_source"],
        bandwidth_bytes_per_s=float(row["bandwidth_gbs"] * GB),
        bandwidth_source=row["bandwidth_source"],
        cores=row["cores"],
        cores_source=row["cores_source"],
        published_decode=published,
    )


def get_profile(name: str, profiles: dict[str, DeviceProfile] | None = None) -> DeviceProfile:
    """The profile called `name`, or one line that lists the known names."""
    profiles = load_profiles() if profiles is None else profiles
    if name not in profiles:
        raise InputError(
            f"unknown device profile {name!r}; known: {', '.join(profiles)} "
            "(`edge-et profiles` shows them)"
        )
    return profiles[name]


def profile_budget(profile: DeviceProfile) -> Budget:
    """The plan's budget on that device: all the memory one app may use there, and why."""
    return Budget(
        profile.app_memory_bytes,
        f"device profile {profile.name}: the memory an app may use there "
        f"({profile.app_memory_source})",
    )
