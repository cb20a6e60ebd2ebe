"""`rocketpy tune --check`: compare the host with RocketMQ's advice.

Each result is ok, off or unknown (could not be read: a container's masked
/proc, a kernel without the key, a store on overlayfs). Only `off` makes the
check fail; unknown is reported with its reason and left to the operator.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import resource
from pathlib import Path

from rocketpy.tune import settings
from rocketpy.tune.host import BlockDevice, Host
from rocketpy.tune.settings import Relation

DEFAULT_STORE_PATH = Path("/var/lib/rocketpy")
DEPTH_MAX_SLAVES = 4   # dm on md on partitions: deeper stacks are not followed


class Status(enum.Enum):
    OK = "ok"
    OFF = "off"
    UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    kind: str               # sysctl, rlimit, disk, thp
    current: str
    recommended: str
    status: Status
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "current": self.current,
                "recommended": self.recommended, "status": self.status.value,
                "reason": self.reason}


@dataclasses.dataclass(frozen=True, slots=True)
class CheckReport:
    results: tuple[CheckResult, ...]
    notes: tuple[str, ...]

    @property
    def off(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.status is Status.OFF)

    @property
    def all_ok(self) -> bool:
        return not self.off

    def to_json(self) -> dict[str, object]:
        return {"ok": self.all_ok, "off": len(self.off),
                "results": [r.to_json() for r in self.results], "notes": list(self.notes)}


def recommended_sysctl_values(host: Host) -> dict[str, int | None]:
    """The value each persisted setting should have on this host (None: cannot compute)."""
    values: dict[str, int | None] = {}
    for setting in settings.SYSCTL_SETTINGS:
        values[setting.name] = _recommended(setting, host)
    return values


def _recommended(setting: settings.SysctlSetting, host: Host) -> int | None:
    if setting.recommended is not None:
        return setting.recommended
    assert setting.name == "vm.min_free_kbytes", setting.name
    mem_total_kb = host.mem_total_kb()
    if mem_total_kb is None:
        return None
    current = host.read_sysctl(setting.name).as_int()
    return settings.min_free_kbytes_target(mem_total_kb, current)


def check(host: Host, store_path: str | os.PathLike[str] | None = None) -> CheckReport:
    results: list[CheckResult] = []
    results.extend(check_sysctls(host))
    results.extend(check_rlimits(host))
    results.extend(check_disk(host, store_path))
    results.append(check_thp(host))
    return CheckReport(tuple(results), tuple(notes(host)))


def notes(host: Host) -> list[str]:
    found = [settings.DROP_CACHES_NOTE]
    mem_total_kb = host.mem_total_kb()
    if mem_total_kb is not None:
        target = _recommended(_setting("vm.min_free_kbytes"), host)
        found.append(
            f"vm.min_free_kbytes: this host has MemTotal {mem_total_kb} kB, so rocketpy "
            f"recommends {target} = {settings.MIN_FREE_KBYTES_RULE}. "
            f"{settings.MIN_FREE_KBYTES_WHY}")
    return found


def _setting(name: str) -> settings.SysctlSetting:
    return next(s for s in settings.SYSCTL_SETTINGS if s.name == name)


def check_sysctls(host: Host) -> list[CheckResult]:
    results = []
    for setting in settings.SYSCTL_SETTINGS:
        reading = host.read_sysctl(setting.name)
        current = reading.as_int()
        recommended = _recommended(setting, host)
        recommended_text = (f"{setting.relation.value} {recommended}"
                            if setting.relation is not Relation.EQUAL else str(recommended))
        if recommended is None:
            status, recommended_text = Status.UNKNOWN, "(needs MemTotal from /proc/meminfo)"
        elif current is None:
            status = Status.UNKNOWN
        else:
            status = Status.OK if setting.relation.holds(current, recommended) else Status.OFF
        current_text = reading.value if reading.value is not None else f"? ({reading.error})"
        results.append(CheckResult(setting.name, "sysctl", current_text, recommended_text,
                                   status, setting.reason))
    return results


def check_rlimits(host: Host) -> list[CheckResult]:
    results = []
    for limit in settings.RLIMIT_SETTINGS:
        try:
            soft, hard = host.rlimit_soft_hard(limit.resource_id)
        except (OSError, ValueError) as exc:
            results.append(CheckResult(f"ulimit {limit.name}", "rlimit", f"? ({exc})",
                                       f">= {limit.recommended}", Status.UNKNOWN, limit.reason))
            continue
        ok = _rlimit_at_least(soft, limit.recommended) and _rlimit_at_least(hard, limit.recommended)
        results.append(CheckResult(
            f"ulimit {limit.name}", "rlimit",
            f"soft {_rlimit_text(soft)}, hard {_rlimit_text(hard)}", f">= {limit.recommended}",
            Status.OK if ok else Status.OFF, limit.reason))
    return results


def _rlimit_at_least(value: int, recommended: int) -> bool:
    return value == resource.RLIM_INFINITY or value >= recommended


def _rlimit_text(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)


def check_disk(host: Host, store_path: str | os.PathLike[str] | None) -> list[CheckResult]:
    name = "disk scheduler"
    if store_path is None:
        default = host.root / DEFAULT_STORE_PATH.relative_to("/")
        if not default.exists():
            return [CheckResult(name, "disk", "? (no store path)", "mq-deadline",
                                Status.UNKNOWN,
                                f"pass --store-path: {DEFAULT_STORE_PATH} does not exist. "
                                + settings.SCHEDULER_REASON)]
        store_path = default
    device = host.block_device_for(store_path)
    if isinstance(device, str):
        return [CheckResult(name, "disk", f"? ({device})", "mq-deadline", Status.UNKNOWN,
                            settings.SCHEDULER_REASON)]
    return [_scheduler_result(d, store_path) for d in _leaf_devices(host, device, 0)]


def _leaf_devices(host: Host, device: BlockDevice, depth: int) -> list[BlockDevice]:
    slaves = host.slaves_of(device) if depth < DEPTH_MAX_SLAVES else []
    if not slaves:
        return [device]
    leaves: list[BlockDevice] = []
    for slave in slaves:
        leaves.extend(_leaf_devices(host, slave, depth + 1))
    return leaves


def _scheduler_result(device: BlockDevice, store_path: str | os.PathLike[str]) -> CheckResult:
    fast = device.rotational is False or device.virtio
    recommended = "mq-deadline or none" if fast else "mq-deadline"
    kind_text = "virtio" if device.virtio else {True: "rotational", False: "non-rotational",
                                                None: "unknown type"}[device.rotational]
    name = f"disk scheduler ({device.name}, {kind_text})"
    reason = f"{settings.SCHEDULER_REASON}; disk of {os.fspath(store_path)}"
    scheduler = device.scheduler.value
    if scheduler is None:
        return CheckResult(name, "disk", f"? ({device.scheduler.error})", recommended,
                           Status.UNKNOWN, reason)
    allowed = settings.SCHEDULERS_FAST if fast else settings.SCHEDULERS_ROTATIONAL
    status = Status.OK if scheduler in allowed else Status.OFF
    if status is Status.OFF:
        reason += (f"; set it with `echo mq-deadline > /sys/block/{device.name}/queue/scheduler`"
                   " and a udev rule to keep it (tune does not change it)")
    return CheckResult(name, "disk", scheduler, recommended, status, reason)


def check_thp(host: Host) -> CheckResult:
    reading = host.transparent_hugepage()
    name = "transparent_hugepage"
    if reading.value is None:
        return CheckResult(name, "thp", f"? ({reading.error})", "madvise or never",
                           Status.UNKNOWN, settings.THP_REASON)
    status = Status.OK if reading.value in settings.THP_OK else Status.OFF
    reason = settings.THP_REASON
    if status is Status.OFF:
        reason += ("; set it with `echo madvise > /sys/kernel/mm/transparent_hugepage/enabled` "
                   "or the kernel option transparent_hugepage=madvise (tune does not change it)")
    return CheckResult(name, "thp", reading.value, "madvise or never", status, reason)
