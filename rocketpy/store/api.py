"""The contract every message store keeps: the file store and the in-memory reference store.

The same contract tests run against both (tests/unit/test_store_contract.py),
and the in-memory store is the oracle of the store model test.

Vocabulary (STYLE.md): `phys_offset` is a byte position in the CommitLog,
`queue_offset` an entry number in a ConsumeQueue.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import NamedTuple, Protocol


@dataclasses.dataclass(frozen=True, slots=True)
class PutRequest:
    """One record to append.

    `data` is a full record from `protocol.message.encode_record`; the store
    fills QUEUEOFFSET, PHYSICALOFFSET and STORETIMESTAMP in place
    (`protocol.message.patch_record`). `topic`, `queue_id` and `sys_flag` repeat
    what is inside `data` so the store does not parse it again.
    """

    topic: str
    queue_id: int
    sys_flag: int
    data: bytearray


class AppendResult(NamedTuple):
    """Where one record landed. A NamedTuple, not a dataclass: one is made per appended
    record on the write path, and a tuple costs a fifth of a frozen dataclass to build."""

    phys_offset: int
    size: int
    queue_offset: int        # 0 for PREPARED/ROLLBACK records (they take no queue offset)
    store_timestamp: int


class GetStatus(enum.Enum):
    """RocketMQ's GetMessageStatus; the broker maps it to a pull response code."""

    FOUND = "FOUND"
    NO_MATCHED_MESSAGE = "NO_MATCHED_MESSAGE"
    MESSAGE_WAS_REMOVING = "MESSAGE_WAS_REMOVING"
    OFFSET_FOUND_NULL = "OFFSET_FOUND_NULL"
    OFFSET_OVERFLOW_BADLY = "OFFSET_OVERFLOW_BADLY"
    OFFSET_OVERFLOW_ONE = "OFFSET_OVERFLOW_ONE"
    OFFSET_TOO_SMALL = "OFFSET_TOO_SMALL"
    NO_MATCHED_LOGIC_QUEUE = "NO_MATCHED_LOGIC_QUEUE"
    NO_MESSAGE_IN_QUEUE = "NO_MESSAGE_IN_QUEUE"


@dataclasses.dataclass(frozen=True, slots=True)
class GetResult:
    status: GetStatus
    next_begin_offset: int
    min_offset: int
    max_offset: int
    # One slice per matched message, each exactly the stored record bytes.
    records: Sequence[bytes | memoryview] = ()
    queue_offsets: Sequence[int] = ()

    @property
    def message_count(self) -> int:
        return len(self.records)

    @property
    def body_size(self) -> int:
        return sum(len(r) for r in self.records)


@dataclasses.dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What recovery found and what it cut. Empty lists mean nothing was lost."""

    abnormal: bool                     # the abort marker was present
    commitlog_end: int                 # phys offset where the valid log ends
    truncated_bytes: int               # bytes of torn/corrupt tail dropped from the CommitLog
    deleted_files: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()      # one line per cut, for the log
    consumequeue_entries_truncated: int = 0
    consumequeue_entries_rebuilt: int = 0
    index_entries_rebuilt: int = 0


class MessageStore(Protocol):
    """One writer appends and flushes; dispatch derives the queues; any number of readers."""

    def append(self, group: Sequence[PutRequest]) -> list[AppendResult]:
        """Append records contiguously in one CommitLog file (all or nothing).

        Raises MessageIllegalError for a record that breaks a size rule,
        DiskFullError when the disk passed the reject ratio, StoreError for I/O.
        """

    @property
    def committed_offset(self) -> int:
        """End of the last appended record (next phys offset)."""

    @property
    def flushed_offset(self) -> int:
        """Everything below this is on disk (fdatasync'd)."""

    @property
    def dispatched_offset(self) -> int:
        """Everything below this has its ConsumeQueue and index entries."""

    def flush(self) -> int:
        """fdatasync what was appended; returns the new flushed offset."""

    def dispatch(self) -> int:
        """Build ConsumeQueue and IndexFile entries up to the committed offset."""

    def get_message(self, topic: str, queue_id: int, queue_offset: int, max_msg_nums: int,
                    tag_codes: frozenset[int] | None = None) -> GetResult:
        """Read up to max_msg_nums dispatched messages from queue_offset (tag_codes None = all)."""

    def read_record(self, phys_offset: int) -> bytes | None:
        """The whole record at phys_offset, or None when there is none (deleted, past the end)."""

    def max_queue_offset(self, topic: str, queue_id: int) -> int:
        """Next queue offset to be dispatched; 0 for an unknown queue."""

    def min_queue_offset(self, topic: str, queue_id: int) -> int:
        """Lowest readable queue offset; 0 for an unknown queue."""

    def search_offset_by_time(self, topic: str, queue_id: int, timestamp_ms: int) -> int: ...

    def earliest_store_time(self, topic: str, queue_id: int) -> int:
        """Store time of the message at the min offset; -1 when none."""

    def query_by_key(self, topic: str, key: str, max_num: int, begin_ms: int, end_ms: int
                     ) -> list[int]:
        """Phys offsets of messages indexed under key (KEYS words or UNIQ_KEY), sorted."""

    def queues(self) -> dict[str, list[int]]:
        """topic -> queue ids that have a ConsumeQueue."""

    @property
    def min_phys_offset(self) -> int: ...

    def delete_expired_files(self, now_ms: int, *, force: bool = False) -> int:
        """Retention pass; returns how many CommitLog files were deleted."""

    def close(self) -> None: ...
