"""Retention policy and disk guard (RocketMQ's CleanCommitLogService, storage-format.md §10).

Pure decisions, table-tested with a fake clock and fake disk usage:

- `RetentionPolicy(config).plan_deletions(files, now_ms, usage_ratio, local_hour, force)`
  -> names of CommitLog files to delete this pass, oldest first.
- `DiskGuard(config).update(usage_ratio)` -> whether puts are refused (disk full),
  with hysteresis: set above diskSpaceWarningLevelRatio, cleared once usage is
  at or below diskSpaceCleanForciblyRatio.
- `apply_retention(...)` is the thin application a store calls each pass.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence

from rocketpy import limits
from rocketpy.config import StoreConfig
from rocketpy.errors import DiskFullError

log = logging.getLogger("rocketpy.store")

HOUR_MS = 3_600_000


def parse_delete_hours(delete_when: str) -> frozenset[int]:
    """"04;16" -> {4, 16}; entries that are not hours are ignored (as RocketMQ's parseInt loop)."""
    hours: set[int] = set()
    for part in delete_when.split(";"):
        part = part.strip()
        if part.isdigit() and 0 <= int(part) <= 23:
            hours.add(int(part))
    return frozenset(hours)


def is_delete_hour(now_local_hour: int, delete_when: str = limits.DELETE_WHEN_DEFAULT) -> bool:
    return now_local_hour in parse_delete_hours(delete_when)


def local_hour(now_ms: int) -> int:
    return time.localtime(now_ms / 1000).tm_hour


def disk_usage_ratio(path: str, statvfs: Callable[[str], os.statvfs_result] = os.statvfs) -> float:
    """Used share of the partition holding path, 0..1; -1.0 when it cannot be read.

    Counts the root-reserved blocks as used (f_bavail), since the broker cannot write them.
    """
    try:
        st = statvfs(path)
    except OSError:
        return -1.0
    if st.f_blocks <= 0:
        return -1.0
    return (st.f_blocks - st.f_bavail) / st.f_blocks


@dataclasses.dataclass(frozen=True, slots=True)
class RetentionDecision:
    run: bool          # delete expired files this pass
    forcibly: bool     # ... regardless of age
    reason: str


class RetentionPolicy:
    """Which CommitLog files one retention pass deletes. Usage::

        policy = RetentionPolicy(config)
        names = policy.plan_deletions([(name, mtime_ms, size), ...], now_ms, usage_ratio,
                                      local_hour, force)
    """

    def __init__(self, config: StoreConfig) -> None:
        self.file_reserved_ms = config.file_reserved_time_hours * HOUR_MS
        self.delete_hours = parse_delete_hours(config.delete_when)
        self.max_used_ratio = config.disk_max_used_space_ratio_percent / 100.0
        self.clean_forcibly_ratio = config.disk_space_clean_forcibly_ratio
        self.clean_forcibly_enable = config.clean_file_forcibly_enable

    def decide(self, usage_ratio: float, local_hour: int, force: bool) -> RetentionDecision:
        forcibly = self.clean_forcibly_enable and usage_ratio > self.clean_forcibly_ratio
        if local_hour in self.delete_hours:
            return RetentionDecision(True, forcibly, f"delete hour {local_hour}")
        if usage_ratio < 0 or usage_ratio > self.max_used_ratio:
            return RetentionDecision(True, forcibly, f"disk usage {usage_ratio:.2f}")
        if force:
            return RetentionDecision(True, forcibly, "forced")
        return RetentionDecision(False, False, "not a delete hour, disk has room")

    def plan_deletions(self, files: Sequence[tuple[str, int, int]], now_ms: int, usage_ratio: float,
                       local_hour: int, force: bool) -> list[str]:
        """files: (name, last-modified ms, size); names sort oldest first (20-digit offsets)."""
        decision = self.decide(usage_ratio, local_hour, force)
        if not decision.run:
            return []
        ordered = sorted(files)
        out: list[str] = []
        for name, mtime_ms, _size in ordered[:-1]:            # never the newest file
            if not (decision.forcibly or mtime_ms + self.file_reserved_ms <= now_ms):
                break                                           # never punch holes
            out.append(name)
            if len(out) >= limits.DELETE_FILES_PER_PASS_MAX:
                break
        return out


class DiskGuard:
    """Disk-full state with hysteresis. `update(usage_ratio)` each retention pass;
    `check_writable()` in append raises DiskFullError while `writes_refused`."""

    def __init__(self, config: StoreConfig) -> None:
        self.warning_ratio = config.disk_space_warning_level_ratio
        self.clean_ratio = config.disk_space_clean_forcibly_ratio
        self.writes_refused = False

    def update(self, usage_ratio: float) -> bool:
        if usage_ratio > self.warning_ratio:
            if not self.writes_refused:
                log.error("disk usage %.2f above %.2f: refusing writes", usage_ratio, self.warning_ratio)
            self.writes_refused = True
        elif usage_ratio <= self.clean_ratio and self.writes_refused:
            log.info("disk usage %.2f back at or below %.2f: accepting writes", usage_ratio, self.clean_ratio)
            self.writes_refused = False
        return self.writes_refused

    def check_writable(self) -> None:
        if self.writes_refused:
            raise DiskFullError("disk usage passed the warning ratio; writes are refused until "
                                "retention frees space (delete old files or add disk)")


def apply_retention(policy: RetentionPolicy, guard: DiskGuard, *,
                    files: Sequence[tuple[str, int, int]], delete_file: Callable[[str], bool],
                    now_ms: int, usage_ratio: float, local_hour: int, force: bool = False) -> list[str]:
    """One pass: update the guard, plan, delete in order; stop at the first file that will not go."""
    guard.update(usage_ratio)
    deleted: list[str] = []
    for name in policy.plan_deletions(files, now_ms, usage_ratio, local_hour, force):
        if not delete_file(name):
            break
        deleted.append(name)
    return deleted
