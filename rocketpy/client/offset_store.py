"""Consumer offset stores: the broker's for clustering, a local file for broadcasting.

RocketMQ's OffsetStore: `update_offset` records progress in memory (called after each
consumed batch with the process queue's lowest unconsumed offset); `persist_all` writes it
out (every persistConsumerOffsetInterval, 5 s, and at shutdown). The broker-side store also
rides on pulls (the COMMIT_OFFSET pull flag carries `read_offset(mq)`).

At-least-once: offsets are committed after consumption and only up to the lowest message
still in flight, so a crash redelivers what was consumed since the last commit, never skips.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import tempfile
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from rocketpy.client.rebalance import QueueLike

log = logging.getLogger("rocketpy.client.offset_store")

LOCAL_OFFSET_STORE_DIR_DEFAULT = "~/.rocketmq_offsets"   # rocketmq.client.localOffsetStoreDir
LOCAL_OFFSET_FILE_NAME = "offsets.json"

Q = TypeVar("Q", bound=QueueLike)


class ReadOffsetType(enum.Enum):
    READ_FROM_MEMORY = 0
    READ_FROM_STORE = 1
    MEMORY_FIRST_THEN_STORE = 2


class OffsetBroker(Protocol[Q]):  # type: ignore[misc]
    """The broker requests a remote store needs (ClientInstance provides them)."""

    async def query_consumer_offset(self, mq: Q, group: str) -> int | None:
        """The group's committed offset of `mq`, None when the broker has none."""
        ...

    async def update_consumer_offset(self, mq: Q, group: str, offset: int) -> None:
        ...


class OffsetStore(Protocol[Q]):
    def load(self) -> None: ...
    def update_offset(self, mq: Q, offset: int, increase_only: bool) -> None: ...
    async def read_offset(self, mq: Q, read_type: ReadOffsetType) -> int: ...
    async def persist_all(self, mqs: Collection[Q]) -> None: ...
    async def persist(self, mq: Q) -> None: ...
    def remove_offset(self, mq: Q) -> None: ...
    def offsets(self) -> dict[Q, int]: ...


class _MemoryOffsets(Generic[Q]):
    def __init__(self) -> None:
        self._table: dict[Q, int] = {}

    def update_offset(self, mq: Q, offset: int, increase_only: bool) -> None:
        """Record progress; `increase_only` keeps a late, lower answer from moving it back
        (concurrent listeners finish out of order)."""
        if offset < 0:
            return
        old = self._table.get(mq)
        if old is None or not increase_only or offset > old:
            self._table[mq] = offset

    def remove_offset(self, mq: Q) -> None:
        self._table.pop(mq, None)

    def offsets(self) -> dict[Q, int]:
        return dict(self._table)


class RemoteBrokerOffsetStore(_MemoryOffsets[Q]):
    """Clustering: offsets live on the broker (UPDATE_CONSUMER_OFFSET / QUERY_CONSUMER_OFFSET)."""

    def __init__(self, broker: OffsetBroker[Q], group: str) -> None:
        super().__init__()
        self.broker = broker
        self.group = group

    def load(self) -> None:
        """Nothing to load: the broker is asked per queue when it is assigned."""

    async def read_offset(self, mq: Q, read_type: ReadOffsetType) -> int:
        """The offset to resume `mq` from: -1 when there is none (a new group), as RocketMQ."""
        if read_type in (ReadOffsetType.READ_FROM_MEMORY, ReadOffsetType.MEMORY_FIRST_THEN_STORE):
            offset = self._table.get(mq)
            if offset is not None or read_type == ReadOffsetType.READ_FROM_MEMORY:
                return -1 if offset is None else offset
        committed = await self.broker.query_consumer_offset(mq, self.group)
        if committed is None or committed < 0:
            return -1
        self.update_offset(mq, committed, False)
        return committed

    async def persist_all(self, mqs: Collection[Q]) -> None:
        """Commit every held queue's offset; forget offsets of queues no longer held."""
        for mq, offset in list(self._table.items()):
            if mq not in mqs:
                continue
            try:
                await self.broker.update_consumer_offset(mq, self.group, offset)
            except Exception as exc:  # noqa: BLE001 - retried at the next persist
                log.warning("group %s: committing offset %d of %s/%s/%d failed: %s", self.group, offset,
                            mq.topic, mq.broker_name, mq.queue_id, exc)
        for mq in [mq for mq in self._table if mq not in mqs]:
            del self._table[mq]

    async def persist(self, mq: Q) -> None:
        offset = self._table.get(mq)
        if offset is not None:
            await self.broker.update_consumer_offset(mq, self.group, offset)


def _mq_key(mq: QueueLike) -> tuple[str, str, int]:
    return (mq.topic, mq.broker_name, mq.queue_id)


class LocalFileOffsetStore(_MemoryOffsets[Q]):
    """Broadcasting: every member keeps its own progress in `<dir>/<client id>/<group>/offsets.json`,
    written atomically (temp file, fsync, rename) so a crash leaves the old or the new file."""

    def __init__(self, client_id: str, group: str, make_queue: Callable[[str, str, int], Q], *,
                 store_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        root = Path(os.path.expanduser(store_dir or LOCAL_OFFSET_STORE_DIR_DEFAULT))
        self.group = group
        self.path = root / _safe_name(client_id) / _safe_name(group) / LOCAL_OFFSET_FILE_NAME
        self._make_queue = make_queue

    def load(self) -> None:
        """Read the file if there is one; a corrupt file is an error the user must resolve."""
        self._table.update(self._read_file())

    def _read_file(self) -> dict[Q, int]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        table: dict[Q, int] = {}
        try:
            data = json.loads(text)
            for entry in data["offsetTable"]:
                mq = self._make_queue(str(entry["topic"]), str(entry["brokerName"]), int(entry["queueId"]))
                table[mq] = int(entry["offset"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"offset file {self.path} is not valid ({exc}): "
                             "fix or delete it (deleting restarts from consumeFromWhere)") from None
        return table

    async def read_offset(self, mq: Q, read_type: ReadOffsetType) -> int:
        """-1 when the queue has no offset (a new member)."""
        offset = self._table.get(mq)
        if read_type == ReadOffsetType.READ_FROM_STORE or (
                offset is None and read_type == ReadOffsetType.MEMORY_FIRST_THEN_STORE):
            offset = self._read_file().get(mq)
            if offset is not None:
                self.update_offset(mq, offset, False)
        return -1 if offset is None else offset

    async def persist_all(self, mqs: Collection[Q]) -> None:
        self.write(mq for mq in self._table if mq in mqs)

    async def persist(self, mq: Q) -> None:
        """Java's LocalFileOffsetStore.persist(mq) is a no-op; the file is written as a whole."""
        self.write(self._table)

    def write(self, mqs: Iterable[Q]) -> None:
        entries: list[dict[str, Any]] = [
            {"topic": mq.topic, "brokerName": mq.broker_name, "queueId": mq.queue_id, "offset": self._table[mq]}
            for mq in sorted(mqs, key=_mq_key)]
        data = json.dumps({"offsetTable": entries}, indent=1).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".offsets.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _safe_name(name: str) -> str:
    """A client id or group as one path component (client ids hold '@' and ':' which are fine,
    but never a separator)."""
    return name.replace(os.sep, "_").replace("\0", "_") or "_"
