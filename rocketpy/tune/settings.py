"""The host settings RocketMQ's deployment guide asks for, with the reason for each.

Sources: RocketMQ's `bin/os.sh` and its "JVM/Linux configuration" page. Two of
the documented recipes are unsafe as written and are changed here on purpose:

- `vm.drop_caches=1` is an action (drop the clean page cache once), not a
  setting. Written into sysctl.conf it empties the cache at every boot and on
  every `sysctl --system`, which throws away the CommitLog pages the broker
  reads from. It is never persisted; `tune` prints how to run it by hand.
- `vm.min_free_kbytes=5000000` is meant for hosts with hundreds of GiB. The
  kernel keeps this much memory free (and starts reclaim 25% above it), so on
  an 8 GiB host 5 GB would leave ~2 GiB for the broker and the page cache and
  invite the OOM killer. The value is scaled with memory instead, see
  `min_free_kbytes_target`.
"""

from __future__ import annotations

import dataclasses
import enum
import resource


class Relation(enum.Enum):
    """How a current value is compared with the recommended one."""

    EQUAL = "="
    AT_LEAST = ">="
    AT_MOST = "<="

    def holds(self, current: int, recommended: int) -> bool:
        if self is Relation.EQUAL:
            return current == recommended
        if self is Relation.AT_LEAST:
            return current >= recommended
        return current <= recommended

    def target(self, current: int | None, recommended: int) -> int:
        """The value to set: never move a host that is already past the advice
        backwards (e.g. a distribution's vm.max_map_count=1048576 stays)."""
        if current is None or not self.holds(current, recommended):
            return recommended
        return current


@dataclasses.dataclass(frozen=True, slots=True)
class SysctlSetting:
    """One `vm.*` key. `recommended` is None when a rule computes it per host."""

    name: str
    recommended: int | None
    relation: Relation
    reason: str
    persisted: bool = True

    @property
    def proc_path(self) -> str:
        """Path under /proc/sys: dots become slashes (vm.page-cluster -> vm/page-cluster)."""
        return self.name.replace(".", "/")


# --- vm.min_free_kbytes ---------------------------------------------------------

MIN_FREE_KBYTES_DOCUMENTED = 5_000_000   # RocketMQ's value, reached at 500 GB of RAM
MIN_FREE_KBYTES_RAM_DIVISOR = 100        # 1% of MemTotal
MIN_FREE_KBYTES_FLOOR = 1024             # kernel docs: below this the system "becomes subtly broken"

MIN_FREE_KBYTES_RULE = "max(1024, current kernel value, min(5000000, 1% of MemTotal in kB))"
MIN_FREE_KBYTES_WHY = (
    "RocketMQ documents 5000000 (5 GB), which is meant for hosts with ~500 GB of RAM: the "
    "kernel keeps this much free and starts reclaiming 25% above it, so on a small host it "
    "would starve the page cache and wake the OOM killer; rocketpy scales it with memory "
    "and never lowers what the kernel already chose"
)


def min_free_kbytes_target(mem_total_kb: int, current_kb: int | None) -> int:
    """RocketMQ keeps a large free reserve so that page-cache allocations on the
    put path rarely fall into direct reclaim. 1% of RAM, capped at the documented
    5000000, floored at the kernel's own value (it already accounts for THP and
    zones) and at 1024."""
    assert mem_total_kb > 0, mem_total_kb
    scaled = min(MIN_FREE_KBYTES_DOCUMENTED, mem_total_kb // MIN_FREE_KBYTES_RAM_DIVISOR)
    return max(MIN_FREE_KBYTES_FLOOR, current_kb or 0, scaled)


# RocketMQ's deployment guide: ulimit -n 1000000 for the broker's user.
NOFILE_RECOMMENDED = 1_000_000
NPROC_RECOMMENDED = 1_000_000
LIMITS_USER = "rocketpy"

# --- the table ----------------------------------------------------------------

SYSCTL_SETTINGS: tuple[SysctlSetting, ...] = (
    SysctlSetting(
        "vm.overcommit_memory", 1, Relation.EQUAL,
        "always allow mappings: the broker maps whole CommitLog and ConsumeQueue files "
        "and forks its children, and heuristic overcommit may refuse either"),
    SysctlSetting(
        "vm.min_free_kbytes", None, Relation.AT_LEAST,
        "free reserve so page-cache allocations on the put path rarely fall into direct "
        "reclaim; rule: " + MIN_FREE_KBYTES_RULE),
    SysctlSetting(
        "vm.zone_reclaim_mode", 0, Relation.EQUAL,
        "on NUMA hosts, take memory from another node instead of reclaiming the local "
        "page cache that holds the CommitLog"),
    SysctlSetting(
        "vm.max_map_count", 655360, Relation.AT_LEAST,
        "every mapped CommitLog, ConsumeQueue and IndexFile is a memory area in every "
        "process that maps it; the default 65530 runs out on a large store"),
    SysctlSetting(
        "vm.dirty_background_ratio", 50, Relation.EQUAL,
        "let dirty pages build up so the broker's own flush writes them in large batches "
        "(the kernel uses half of vm.dirty_ratio when both are equal)"),
    SysctlSetting(
        "vm.dirty_ratio", 50, Relation.EQUAL,
        "block writers only when half of RAM is dirty, so a burst of puts does not "
        "stall in the kernel's throttling"),
    SysctlSetting(
        "vm.page-cluster", 3, Relation.EQUAL,
        "read 8 pages at a time back from swap (the kernel default, stated explicitly)"),
    SysctlSetting(
        "vm.dirty_writeback_centisecs", 360000, Relation.EQUAL,
        "wake the kernel flusher once an hour only: the broker flushes the CommitLog "
        "itself (fdatasync, flushIntervalCommitLog), so background writeback would only "
        "compete with it"),
    SysctlSetting(
        "vm.swappiness", 10, Relation.AT_MOST,
        "keep the broker's memory out of swap; a swapped-in page on the put or pull "
        "path costs milliseconds"),
    SysctlSetting(
        "fs.nr_open", NOFILE_RECOMMENDED, Relation.AT_LEAST,
        "ceiling for any process's open-file limit: LimitNOFILE and limits.d above it "
        "are refused (the kernel default 1048576 is enough)", persisted=False),
)

DROP_CACHES_NOTE = (
    "vm.drop_caches is not persisted: it is a one-shot action, and in sysctl.d it would "
    "empty the page cache (the CommitLog the broker reads from) at every boot and every "
    "`sysctl --system`; to drop clean caches once, run `sync; sysctl -w vm.drop_caches=1`"
)

# --- process limits -------------------------------------------------------------



@dataclasses.dataclass(frozen=True, slots=True)
class RlimitSetting:
    """A process limit (limits.d item) checked against this process's soft limit."""

    name: str            # limits.d item: nofile, nproc
    resource_id: int     # resource.RLIMIT_*
    recommended: int
    reason: str


RLIMIT_SETTINGS: tuple[RlimitSetting, ...] = (
    RlimitSetting(
        "nofile", resource.RLIMIT_NOFILE, NOFILE_RECOMMENDED,
        "store files plus one socket per client connection; checked for this shell "
        "(services under systemd get LimitNOFILE from their unit instead)"),
    RlimitSetting(
        "nproc", resource.RLIMIT_NPROC, NPROC_RECOMMENDED,
        "processes and threads of the broker's user; checked for this shell "
        "(services under systemd get LimitNPROC from their unit instead)"),
)

# --- disk and memory advice (checked, never changed) -----------------------------

SCHEDULERS_ROTATIONAL = frozenset({"mq-deadline", "deadline"})
SCHEDULERS_FAST = frozenset({"mq-deadline", "deadline", "none", "noop"})
SCHEDULER_REASON = (
    "RocketMQ recommends the deadline scheduler, which bounds the latency of each "
    "request; SSD, NVMe and virtio disks may use none/noop"
)
THP_OK = frozenset({"never", "madvise"})
THP_REASON = (
    "with 'always' the kernel compacts memory and splits huge pages behind the broker's "
    "back, which shows up as latency spikes on the put path; use madvise or never"
)

assert MIN_FREE_KBYTES_FLOOR < MIN_FREE_KBYTES_DOCUMENTED
assert len({s.name for s in SYSCTL_SETTINGS}) == len(SYSCTL_SETTINGS)
assert all(s.recommended is not None or s.name == "vm.min_free_kbytes" for s in SYSCTL_SETTINGS)
assert NOFILE_RECOMMENDED <= 1_048_576, "must stay under the kernel default fs.nr_open"
