"""ConsumerOffsetManager: committed consumer offsets, persisted in `config/consumerOffset.json`.

Key `<topic>@<group>` -> {queueId: next queue offset to consume}
(storage-format.md §8). Commits only mark the table dirty; `persist` writes it
(every flushConsumerOffsetInterval and at shutdown), so a burst of commits
costs one file write.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from rocketpy.broker.control import persist
from rocketpy.ipc.queue_table import QueueTable
from rocketpy.protocol.bodies import ConsumerOffsetTable

log = logging.getLogger("rocketpy.broker.control")

OFFSETS_FILE = "consumerOffset.json"
TOPIC_GROUP_SEPARATOR = "@"
QUERY_NOT_FOUND_REMARK = "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first"


@dataclasses.dataclass(frozen=True, slots=True)
class OffsetQuery:
    """The answer to QUERY_CONSUMER_OFFSET: an offset (SUCCESS) or not found (QUERY_NOT_FOUND)."""

    offset: int | None
    remark: str | None = None


def offset_key(topic: str, group: str) -> str:
    return f"{topic}{TOPIC_GROUP_SEPARATOR}{group}"


class ConsumerOffsetManager:
    def __init__(self, config_dir: str, queue_table: QueueTable | None = None) -> None:
        self.path = os.path.join(config_dir, OFFSETS_FILE)
        self.queue_table = queue_table
        self.table: dict[str, dict[int, int]] = {}
        self.dirty = False

    def load(self) -> None:
        loaded = persist.load_json(self.path, ConsumerOffsetTable.from_obj)
        self.table = {k: dict(v) for k, v in loaded.offset_table.items()} if loaded is not None else {}
        self.dirty = False
        log.info("consumer offsets loaded: %d topic@group entries", len(self.table))

    def persist(self, *, force: bool = False) -> bool:
        """Write the table if it changed since the last write; True if written."""
        if not self.dirty and not force:
            return False
        self.dirty = False
        try:
            persist.write_json(self.path, self.wrapper().to_obj())
        except OSError:
            self.dirty = True
            raise
        return True

    def wrapper(self) -> ConsumerOffsetTable:
        return ConsumerOffsetTable({k: dict(v) for k, v in self.table.items()})

    def commit(self, group: str, topic: str, queue_id: int, queue_offset: int) -> None:
        """commitOffset; negative offsets are ignored (as Java's clients never mean them)."""
        if queue_offset < 0:
            return
        queues = self.table.setdefault(offset_key(topic, group), {})
        if queues.get(queue_id) != queue_offset:
            queues[queue_id] = queue_offset
            self.dirty = True

    def query(self, group: str, topic: str, queue_id: int) -> int | None:
        queues = self.table.get(offset_key(topic, group))
        if queues is None:
            return None
        return queues.get(queue_id)

    def query_for_client(self, group: str, topic: str, queue_id: int) -> OffsetQuery:
        """QUERY_CONSUMER_OFFSET (remoting-protocol.md §9.4).

        Without a stored offset: 0 when the queue's min offset is 0 or the queue
        does not exist yet, else not found. Java also answers not found when
        offset 0 is "on disk" (more than 40 % of RAM behind the write position);
        we do not model that and treat the whole queue as in memory.
        """
        stored = self.query(group, topic, queue_id)
        if stored is not None and stored >= 0:
            return OffsetQuery(stored)
        min_offset = 0
        if self.queue_table is not None:
            entry = self.queue_table.get(topic, queue_id)
            if entry is not None:
                min_offset = entry[1]
        if min_offset <= 0:
            return OffsetQuery(0)
        return OffsetQuery(None, QUERY_NOT_FOUND_REMARK)

    def groups_of_topic(self, topic: str) -> set[str]:
        prefix = topic + TOPIC_GROUP_SEPARATOR
        return {k[len(prefix):] for k in self.table if k.startswith(prefix)}
