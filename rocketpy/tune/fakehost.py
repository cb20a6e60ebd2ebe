"""A fake /proc and /sys tree for tests of `rocketpy.tune` (no real host is read or written).

    root = build(tmp_path, sysctls={"vm.swappiness": 60}, disks=[FakeDisk("sda", 8, 0)])
    host = Host(root, getrlimit=fixed_rlimits(...), stat=stat_on_device(8, 1))
"""

from __future__ import annotations

import dataclasses
import os
import resource
from collections.abc import Mapping, Sequence
from pathlib import Path

from rocketpy.tune import settings
from rocketpy.tune.host import RlimitGetter, StatFn

GIB_KB = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class FakeDisk:
    """A disk in /sys, with optional partitions and device-mapper style slaves."""

    name: str
    major: int
    minor: int
    scheduler: str | None = "[mq-deadline] kyber bfq none"
    rotational: bool = True
    partitions: int = 0                 # name1..nameN, minors minor+1..
    slaves: tuple[str, ...] = ()        # names of other FakeDisks under this one
    bus: str = "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0"


def good_sysctls(mem_total_kb: int = 16 * GIB_KB) -> dict[str, int]:
    """Every setting at its recommended value for a host with `mem_total_kb`."""
    values = {s.name: s.recommended for s in settings.SYSCTL_SETTINGS if s.recommended is not None}
    values["vm.min_free_kbytes"] = settings.min_free_kbytes_target(mem_total_kb, None)
    return values


def build(root: Path, *, sysctls: Mapping[str, int | str] | None = None,
          mem_total_kb: int | None = 16 * GIB_KB, thp: str | None = "always [madvise] never",
          disks: Sequence[FakeDisk] = ()) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, value in (good_sysctls(mem_total_kb or GIB_KB) if sysctls is None
                        else sysctls).items():
        path = root / "proc" / "sys" / name.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    (root / "proc").mkdir(exist_ok=True)
    if mem_total_kb is not None:
        (root / "proc" / "meminfo").write_text(
            f"MemTotal:       {mem_total_kb} kB\nMemFree:        {mem_total_kb // 2} kB\n")
    if thp is not None:
        thp_dir = root / "sys" / "kernel" / "mm" / "transparent_hugepage"
        thp_dir.mkdir(parents=True, exist_ok=True)
        (thp_dir / "enabled").write_text(thp + "\n")
    for disk in disks:
        _add_disk(root, disk)
    return root


def _add_disk(root: Path, disk: FakeDisk) -> None:
    devices = root / "sys" / "devices" / disk.bus / "block"
    disk_dir = devices / disk.name
    queue = disk_dir / "queue"
    queue.mkdir(parents=True, exist_ok=True)
    if disk.scheduler is not None:
        (queue / "scheduler").write_text(disk.scheduler + "\n")
    (queue / "rotational").write_text("1\n" if disk.rotational else "0\n")
    _link_dev(root, disk.major, disk.minor, disk_dir)
    _link(root / "sys" / "block" / disk.name, disk_dir)
    for number in range(1, disk.partitions + 1):
        part = disk_dir / f"{disk.name}{number}"
        part.mkdir(exist_ok=True)
        (part / "partition").write_text(f"{number}\n")
        _link_dev(root, disk.major, disk.minor + number, part)
    if disk.slaves:
        (disk_dir / "slaves").mkdir(exist_ok=True)
        for slave in disk.slaves:
            _link(disk_dir / "slaves" / slave, root / "sys" / "block" / slave)


def _link_dev(root: Path, major: int, minor: int, target: Path) -> None:
    _link(root / "sys" / "dev" / "block" / f"{major}:{minor}", target)


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(os.path.relpath(target, link.parent))


def fixed_rlimits(nofile: tuple[int, int] = (1_000_000, 1_000_000),
                  nproc: tuple[int, int] = (resource.RLIM_INFINITY, resource.RLIM_INFINITY),
                  ) -> RlimitGetter:
    table = {resource.RLIMIT_NOFILE: nofile, resource.RLIMIT_NPROC: nproc}

    def getrlimit(resource_id: int) -> tuple[int, int]:
        return table[resource_id]

    return getrlimit


def stat_on_device(major: int, minor: int) -> StatFn:
    """A stat() that places every path on device major:minor."""
    def stat(path: str) -> os.stat_result:
        return os.stat_result((0o40755, 0, os.makedev(major, minor), 1, 0, 0, 0, 0, 0, 0))

    return stat
