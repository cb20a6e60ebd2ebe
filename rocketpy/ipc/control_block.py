"""The broker's control block: the shared facts every process of one broker reads.

Each group of fields has exactly one owning role, asserted in its setter
(ARCHITECTURE.md, shared memory rule 1); each group is its own seqlock record,
because a seqlock allows one writer only::

    +0     header      magic 'RKPC', layout version, heartbeat slot count
    +64    supervisor  generation, state, writer pid, boot time (ms)
    +128   writer      committed_offset, flushed_offset, flushed store time, writer generation,
                       CommitLog min phys offset (after retention), writer flags (disk full)
    +192   dispatcher  dispatched_offset, ConsumeQueues flushed up to (phys offset)
    +256   control     flags (broker not writable, ...), reserved
    +320   heartbeat slots, 64 bytes each: pid, last beat (monotonic ms), busy-since (ms, 0 = idle)

Readers never read past `committed_offset` (rule 1). The x86-64 requirement
of the seqlocks is checked by `shm.check_platform` at broker start.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

from rocketpy.ipc.seqlock import SeqlockRecord

MAGIC = 0x52_4B_50_43  # 'RKPC'
LAYOUT_VERSION = 2
_HEADER = struct.Struct("<III")
_GROUP_STRIDE = 64
_SUPERVISOR_AT = 64
_WRITER_AT = 128
_DISPATCHER_AT = 192
_CONTROL_AT = 256
_SLOTS_AT = 320
_SLOT_STRIDE = 64

_SUPERVISOR_FIELDS = "qqqq"   # generation, state, writer_pid, boot_time_ms
_WRITER_FIELDS = "qqqqqq"     # committed, flushed, flushed_store_ts, writer_generation, min_phys, flags
_DISPATCHER_FIELDS = "qq"     # dispatched_offset, consumequeue_flushed_offset
_CONTROL_FIELDS = "qq"        # flags, reserved
_SLOT_FIELDS = "qqq"          # pid, beat_monotonic_ms, busy_since_monotonic_ms

FLAG_DISK_FULL = 0x1
FLAG_NOT_WRITABLE = 0x2


class Role(enum.Enum):
    SUPERVISOR = "supervisor"
    WRITER = "writer"
    DISPATCHER = "dispatcher"
    CONTROL = "control"
    WORKER = "worker"
    READER = "reader"        # tools and tests: reads only


class BrokerState(enum.IntEnum):
    STARTING = 0
    RUNNING = 1
    DRAINING = 2
    STOPPED = 3


def control_block_size(slot_count: int) -> int:
    return _SLOTS_AT + slot_count * _SLOT_STRIDE


class ControlBlock:
    """A typed view of the control block for one role (and, for children, one heartbeat slot)."""

    def __init__(self, buf: Any, role: Role, *, slot: int | None = None, initialize: bool = False,
                 slot_count: int = 0) -> None:
        self._buf = buf
        self.role = role
        if initialize:
            assert role is Role.SUPERVISOR, "only the supervisor lays out the control block"
            assert len(buf) >= control_block_size(slot_count)
            buf[:control_block_size(slot_count)] = bytes(control_block_size(slot_count))
            _HEADER.pack_into(buf, 0, MAGIC, LAYOUT_VERSION, slot_count)
        magic, version, count = _HEADER.unpack_from(buf, 0)
        assert magic == MAGIC and version == LAYOUT_VERSION, "not a rocketpy control block"
        self.slot_count = count
        assert slot is None or 0 <= slot < count, f"heartbeat slot {slot} outside 0..{count - 1}"
        self._slot = slot
        self._supervisor = SeqlockRecord(buf, _SUPERVISOR_AT, _SUPERVISOR_FIELDS)
        self._writer = SeqlockRecord(buf, _WRITER_AT, _WRITER_FIELDS)
        self._dispatcher = SeqlockRecord(buf, _DISPATCHER_AT, _DISPATCHER_FIELDS)
        self._control = SeqlockRecord(buf, _CONTROL_AT, _CONTROL_FIELDS)
        self._slots = [SeqlockRecord(buf, _SLOTS_AT + i * _SLOT_STRIDE, _SLOT_FIELDS) for i in range(count)]
        for rec in (self._supervisor, self._writer, self._dispatcher, self._control):
            assert rec.size <= _GROUP_STRIDE
        # the writer's own last published values: it never needs to read them back
        self._writer_cache: list[int] | None = None

    # --- supervisor ------------------------------------------------------------

    def supervisor_fields(self) -> tuple[int, int, int, int]:
        return self._supervisor.read()

    @property
    def generation(self) -> int:
        return int(self._supervisor.read()[0])

    @property
    def state(self) -> BrokerState:
        return BrokerState(self._supervisor.read()[1])

    def set_supervisor(self, *, generation: int, state: BrokerState, writer_pid: int, boot_time_ms: int
                       ) -> None:
        assert self.role is Role.SUPERVISOR, f"{self.role} may not write supervisor fields"
        self._supervisor.write(generation, int(state), writer_pid, boot_time_ms)

    def reset_torn_records(self) -> None:
        """After a child died mid-update: make its records readable for its successor."""
        assert self.role is Role.SUPERVISOR
        for rec in (self._writer, self._dispatcher, self._control, *self._slots):
            rec.reset()

    # --- writer ----------------------------------------------------------------

    def writer_fields(self) -> tuple[int, int, int, int, int, int]:
        """committed_offset, flushed_offset, flushed_store_ts, writer_generation, min_phys_offset, flags."""
        return self._writer.read()

    @property
    def committed_offset(self) -> int:
        return int(self._writer.read()[0])

    @property
    def flushed_offset(self) -> int:
        return int(self._writer.read()[1])

    @property
    def min_phys_offset(self) -> int:
        """The CommitLog's first byte still on disk (moves when retention deletes files)."""
        return int(self._writer.read()[4])

    @property
    def disk_full(self) -> bool:
        return bool(self._writer.read()[5] & FLAG_DISK_FULL)

    def publish_writer(self, *, committed_offset: int, flushed_offset: int, flushed_store_ts: int,
                       writer_generation: int, min_phys_offset: int = 0, flags: int = 0) -> None:
        assert self.role in (Role.WRITER, Role.SUPERVISOR), f"{self.role} may not write writer fields"
        assert flushed_offset <= committed_offset, "flushed past committed"
        if self._writer_cache is not None:
            assert committed_offset >= self._writer_cache[0], "committed offset went backwards"
            assert flushed_offset >= self._writer_cache[1], "flushed offset went backwards"
        self._writer.write(committed_offset, flushed_offset, flushed_store_ts, writer_generation,
                           min_phys_offset, flags)
        self._writer_cache = [committed_offset, flushed_offset]

    # --- dispatcher ------------------------------------------------------------

    @property
    def dispatched_offset(self) -> int:
        return int(self._dispatcher.read()[0])

    def dispatcher_fields(self) -> tuple[int, int]:
        """dispatched_offset, consumequeue_flushed_offset."""
        return self._dispatcher.read()

    @property
    def consumequeue_flushed_offset(self) -> int:
        """ConsumeQueue entries of every record below this are on disk (retention's bound)."""
        return int(self._dispatcher.read()[1])

    def publish_dispatched(self, dispatched_offset: int, consumequeue_flushed_offset: int) -> None:
        assert self.role in (Role.DISPATCHER, Role.SUPERVISOR), f"{self.role} may not write dispatcher fields"
        assert consumequeue_flushed_offset <= dispatched_offset
        self._dispatcher.write(dispatched_offset, consumequeue_flushed_offset)

    # --- control ---------------------------------------------------------------

    def control_fields(self) -> tuple[int, int]:
        """flags, reserved."""
        return self._control.read()

    def publish_control(self, *, flags: int) -> None:
        assert self.role in (Role.CONTROL, Role.SUPERVISOR), f"{self.role} may not write control fields"
        self._control.write(flags, 0)

    # --- heartbeats ------------------------------------------------------------

    def beat(self, pid: int, now_monotonic_ms: int, busy_since_ms: int = 0) -> None:
        """A child's heartbeat into its own slot; busy_since_ms marks a long syscall (fdatasync)."""
        assert self._slot is not None, "this view has no heartbeat slot"
        self._slots[self._slot].write(pid, now_monotonic_ms, busy_since_ms)

    def heartbeat(self, slot: int) -> tuple[int, int, int]:
        """pid, last beat (monotonic ms), busy since (monotonic ms, 0 = idle)."""
        return self._slots[slot].read()

    def clear_slot(self, slot: int) -> None:
        assert self.role is Role.SUPERVISOR
        rec = self._slots[slot]
        rec.reset()
        rec.write(0, 0, 0)
