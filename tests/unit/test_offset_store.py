"""Offset stores: the remote store's memory/broker rules and the local file's atomic writes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from rocketpy.client.offset_store import (
    LocalFileOffsetStore,
    ReadOffsetType,
    RemoteBrokerOffsetStore,
)
from rocketpy.protocol.bodies import MessageQueue

MQ0 = MessageQueue("T", "broker-a", 0)
MQ1 = MessageQueue("T", "broker-a", 1)


class FakeBroker:
    def __init__(self) -> None:
        self.committed: dict[tuple[MessageQueue, str], int] = {}
        self.fail = False

    async def query_consumer_offset(self, mq: MessageQueue, group: str) -> int | None:
        return self.committed.get((mq, group))

    async def update_consumer_offset(self, mq: MessageQueue, group: str, offset: int) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.committed[(mq, group)] = offset


def test_remote_store_reads_memory_then_broker_and_increases_only() -> None:
    broker = FakeBroker()
    store: RemoteBrokerOffsetStore[MessageQueue] = RemoteBrokerOffsetStore(broker, "G")

    async def scenario() -> None:
        assert await store.read_offset(MQ0, ReadOffsetType.READ_FROM_STORE) == -1     # new group
        broker.committed[(MQ0, "G")] = 40
        assert await store.read_offset(MQ0, ReadOffsetType.READ_FROM_MEMORY) == -1
        assert await store.read_offset(MQ0, ReadOffsetType.MEMORY_FIRST_THEN_STORE) == 40
        store.update_offset(MQ0, 45, True)
        store.update_offset(MQ0, 42, True)            # a late, lower answer does not move it back
        assert await store.read_offset(MQ0, ReadOffsetType.READ_FROM_MEMORY) == 45
        store.update_offset(MQ0, 41, False)           # reset
        store.update_offset(MQ1, 7, True)
        await store.persist_all({MQ0})                # MQ1 no longer held: forgotten, not committed
        assert broker.committed == {(MQ0, "G"): 41}
        assert store.offsets() == {MQ0: 41}
        broker.fail = True
        await store.persist_all({MQ0})                # a failure is logged, retried next time
        broker.fail = False
        store.update_offset(MQ0, 50, True)
        await store.persist(MQ0)
        assert broker.committed[(MQ0, "G")] == 50

    asyncio.run(scenario())


def test_local_store_round_trips_through_an_atomic_file(tmp_path: Path) -> None:
    store: LocalFileOffsetStore[MessageQueue] = LocalFileOffsetStore("10.0.0.1@123", "G", MessageQueue,
                                                                     store_dir=tmp_path)
    store.load()                                      # no file yet
    store.update_offset(MQ0, 12, True)
    store.update_offset(MQ1, 3, True)
    asyncio.run(store.persist_all({MQ0, MQ1}))
    assert store.path == tmp_path / "10.0.0.1@123" / "G" / "offsets.json"
    data = json.loads(store.path.read_text())
    assert data == {"offsetTable": [
        {"topic": "T", "brokerName": "broker-a", "queueId": 0, "offset": 12},
        {"topic": "T", "brokerName": "broker-a", "queueId": 1, "offset": 3}]}
    assert [p.name for p in store.path.parent.iterdir()] == ["offsets.json"]   # no temp file left

    again: LocalFileOffsetStore[MessageQueue] = LocalFileOffsetStore("10.0.0.1@123", "G", MessageQueue,
                                                                     store_dir=tmp_path)
    assert asyncio.run(again.read_offset(MQ0, ReadOffsetType.READ_FROM_STORE)) == 12
    again.load()
    assert again.offsets() == {MQ0: 12, MQ1: 3}


def test_a_corrupt_offset_file_says_what_to_do(tmp_path: Path) -> None:
    store: LocalFileOffsetStore[MessageQueue] = LocalFileOffsetStore("c", "G", MessageQueue, store_dir=tmp_path)
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    with pytest.raises(ValueError, match="fix or delete it"):
        store.load()
