"""Reading the host: /proc/sys, /proc/meminfo, process limits, block devices, THP.

Everything goes through `Host`, whose `root` is "/" in production and a fake
tree under tmp_path in tests; `getrlimit` and `stat` are injectable for the
same reason. Nothing here writes.
"""

from __future__ import annotations

import dataclasses
import os
import resource
from collections.abc import Callable
from pathlib import Path

RlimitGetter = Callable[[int], tuple[int, int]]
StatFn = Callable[[str], os.stat_result]


@dataclasses.dataclass(frozen=True, slots=True)
class Reading:
    """A value read from the host, or why it could not be read."""

    value: str | None
    error: str | None = None

    def as_int(self) -> int | None:
        if self.value is None:
            return None
        try:
            return int(self.value.split()[0])
        except (ValueError, IndexError):
            return None


@dataclasses.dataclass(frozen=True, slots=True)
class BlockDevice:
    """The whole disk under a path: `name` as in /sys/block/<name>."""

    name: str
    sys_dir: Path           # .../block/<name>, resolved
    scheduler: Reading      # the selected scheduler, without brackets
    rotational: bool | None
    virtio: bool


def selected_choice(text: str) -> str | None:
    """`always [madvise] never` -> `madvise`; a file with one bare word -> that word."""
    words = text.split()
    for word in words:
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return words[0] if len(words) == 1 else None


@dataclasses.dataclass(slots=True)
class Host:
    root: Path = Path("/")
    getrlimit: RlimitGetter = resource.getrlimit
    stat: StatFn = os.stat

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def proc_sys(self) -> Path:
        return self.root / "proc" / "sys"

    def sysctl_path(self, name: str) -> Path:
        return self.proc_sys / name.replace(".", "/")

    def read_sysctl(self, name: str) -> Reading:
        return _read(self.sysctl_path(name), f"no {name} in this kernel")

    def mem_total_kb(self) -> int | None:
        reading = _read(self.root / "proc" / "meminfo", "no /proc/meminfo")
        for line in (reading.value or "").splitlines():
            if line.startswith("MemTotal:"):
                try:
                    return int(line.split()[1])
                except (IndexError, ValueError):
                    return None
        return None

    def rlimit_soft_hard(self, resource_id: int) -> tuple[int, int]:
        return self.getrlimit(resource_id)

    def transparent_hugepage(self) -> Reading:
        path = self.root / "sys" / "kernel" / "mm" / "transparent_hugepage" / "enabled"
        reading = _read(path, "no transparent huge page support in this kernel")
        if reading.value is None:
            return reading
        return Reading(selected_choice(reading.value), None)

    def block_device_for(self, path: str | os.PathLike[str]) -> BlockDevice | str:
        """The disk holding `path`, or a sentence saying why it cannot be found.

        st_dev major:minor -> /sys/dev/block/M:m, a symlink into /sys/devices; a
        partition's directory has a `partition` file and sits inside its disk's.
        """
        try:
            st = self.stat(os.fspath(path))
        except OSError as exc:
            return f"cannot stat {path}: {exc.strerror}"
        major, minor = os.major(st.st_dev), os.minor(st.st_dev)
        if major == 0:
            return (f"{path} is on a virtual file system (device 0:{minor}, e.g. overlayfs, "
                    "tmpfs or a container layer); check the disk under it on the host")
        link = self.root / "sys" / "dev" / "block" / f"{major}:{minor}"
        if not link.exists():
            return f"no {link} for device {major}:{minor} of {path}"
        dev_dir = link.resolve()
        if (dev_dir / "partition").exists():
            dev_dir = dev_dir.parent
        return self._describe(dev_dir)

    def _describe(self, dev_dir: Path) -> BlockDevice:
        queue = dev_dir / "queue"
        raw = _read(queue / "scheduler", f"no I/O scheduler for {dev_dir.name}")
        scheduler = (Reading(selected_choice(raw.value), None) if raw.value is not None else raw)
        rotational_reading = _read(queue / "rotational", "")
        rotational = (None if rotational_reading.value is None
                      else rotational_reading.value.strip() == "1")
        virtio = dev_dir.name.startswith(("vd", "xvd")) or "/virtio" in str(dev_dir)
        return BlockDevice(dev_dir.name, dev_dir, scheduler, rotational, virtio)

    def slaves_of(self, device: BlockDevice) -> list[BlockDevice]:
        """The disks under a device-mapper or md device (their scheduler is the one that counts)."""
        slaves = device.sys_dir / "slaves"
        if not slaves.is_dir():
            return []
        found: list[BlockDevice] = []
        for entry in sorted(slaves.iterdir()):
            dev_dir = entry.resolve()
            if (dev_dir / "partition").exists():
                dev_dir = dev_dir.parent
            found.append(self._describe(dev_dir))
        return found


def _read(path: Path, missing: str) -> Reading:
    try:
        return Reading(path.read_text().strip())
    except FileNotFoundError:
        return Reading(None, missing)
    except PermissionError:
        return Reading(None, f"permission denied reading {path}")
    except OSError as exc:
        return Reading(None, f"cannot read {path}: {exc.strerror}")
