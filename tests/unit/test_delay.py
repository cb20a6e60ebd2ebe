"""Delay levels, the delay rewrite, deliver-time tagsCodes, the scheduler's decisions (FakeClock, a
real store in a temp dir, a fake put ring) and the send-back decisions, table-driven."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from rocketpy.broker.control.groups import SubscriptionGroupConfig
from rocketpy.broker.control.putter import PutOutcome, PutResult
from rocketpy.broker.control.schedule import (
    DelayOffsets,
    ScheduleService,
    deliver_at_ms,
    delivery_of,
    parse_source_mark,
)
from rocketpy.broker.handlers.sendback import decide_send_back
from rocketpy.broker.records import deliver_timestamp_ms, schedule_rewrite
from rocketpy.clock import FakeClock
from rocketpy.config import StoreConfig, parse_message_delay_level
from rocketpy.errors import ConfigError
from rocketpy.protocol.message import (
    MessageRecord,
    encode_record,
    format_properties,
    parse_properties,
)
from rocketpy.store.api import PutRequest
from rocketpy.store.file_store import FileStore, StoreReader

# --- messageDelayLevel --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "levels_ms"), [
    ("1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h",
     (1000, 5000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000, 480_000,
      540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000)),
    ("1s 2s 3s", (1000, 2000, 3000)),
    ("  2d\t1h ", (172_800_000, 3_600_000)),
])
def test_delay_levels_parse(text: str, levels_ms: tuple[int, ...]) -> None:
    assert parse_message_delay_level(text) == levels_ms


@pytest.mark.parametrize("text", ["", "   ", "1x", "s", "0s", "-1s", "1.5s", "1S", "5", " ".join(["1s"] * 65)])
def test_bad_delay_levels_are_a_config_error_that_says_what_to_write(text: str) -> None:
    with pytest.raises(ConfigError, match="messageDelayLevel"):
        StoreConfig(message_delay_level=text)


def test_the_default_store_config_has_rocketmqs_18_levels() -> None:
    assert len(StoreConfig().delay_levels_ms) == 18


# --- the rewrite ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("props", "expect_topic", "expect_qid", "expect_delay"), [
    ({"DELAY": "1"}, "SCHEDULE_TOPIC_XXXX", 0, "1"),
    ({"DELAY": "3"}, "SCHEDULE_TOPIC_XXXX", 2, "3"),
    ({"DELAY": "4"}, "SCHEDULE_TOPIC_XXXX", 2, "3"),
    ({"DELAY": "0"}, "T", 5, "0"),
    ({"DELAY": "-1"}, "T", 5, "-1"),
    ({"DELAY": "soon"}, "T", 5, "soon"),
    ({}, "T", 5, None),
])
def test_schedule_rewrite(props: dict[str, str], expect_topic: str, expect_qid: int, expect_delay: str | None) -> None:
    given = format_properties({"TAGS": "a", **props, "KEYS": "k"})
    dest = schedule_rewrite("T", 5, given, 3)
    out = parse_properties(dest.props)
    assert (dest.topic, dest.queue_id, out.get("DELAY")) == (expect_topic, expect_qid, expect_delay)
    assert out["TAGS"] == "a" and out["KEYS"] == "k"
    if expect_topic == "T":
        assert dest.props == given
    else:
        assert (out["REAL_TOPIC"], out["REAL_QID"]) == ("T", "5")


def test_deliver_time_is_store_time_plus_the_levels_delay_in_the_queue_entry(tmp_path) -> None:
    cfg = StoreConfig(store_path_root_dir=str(tmp_path / "s"), mapped_file_size_commitlog=1 << 16,
                      message_delay_level="1s 2s 7s", max_hash_slot_num=64, max_index_num=256)
    clock = FakeClock()
    store = FileStore(cfg, clock=clock)
    try:
        for level in (1, 3):
            dest = schedule_rewrite("T", 0, format_properties({"DELAY": str(level)}), 3)
            rec = MessageRecord(topic=dest.topic, body=b"x", queue_id=dest.queue_id, properties=dest.props)
            store.append([PutRequest(dest.topic, dest.queue_id, 0, encode_record(rec))])
        store.dispatch()
        now = clock.now_ms()
        assert store.cqs.get("SCHEDULE_TOPIC_XXXX", 0).entry(0)[2] == now + 1000
        assert store.cqs.get("SCHEDULE_TOPIC_XXXX", 2).entry(0)[2] == now + 7000
        assert deliver_timestamp_ms(now, 3, cfg.delay_levels_ms) == now + 7000
    finally:
        store.close()


@pytest.mark.parametrize(("tags_code", "now", "delay", "due"), [
    (10_000, 9_000, 1000, 10_000),     # in the future: wait
    (10_000, 10_000, 1000, 10_000),    # due now
    (10_000, 12_000, 1000, 10_000),    # overdue
    (50_000, 10_000, 1000, 10_000),    # further than now + delay: the clock went back, due now
])
def test_deliver_at(tags_code: int, now: int, delay: int, due: int) -> None:
    assert deliver_at_ms(tags_code, now, delay) == due


def test_delivery_rebuilds_the_real_message_and_marks_its_source() -> None:
    parked = MessageRecord(topic="SCHEDULE_TOPIC_XXXX", body=b"b", queue_id=1, properties=format_properties(
        {"DELAY": "2", "REAL_TOPIC": "T", "REAL_QID": "3", "TAGS": "a", "UNIQ_KEY": "U"}))
    d = delivery_of(parked, 2, 41)
    assert d is not None and (d.topic, d.queue_id) == ("T", 3)
    props = parse_properties(d.props)
    assert "DELAY" not in props and props["TAGS"] == "a" and props["UNIQ_KEY"] == "U"
    assert props["REAL_TOPIC"] == "T" and parse_source_mark(props["RKPY_DELAY_SRC"]) == (2, 41)
    assert delivery_of(MessageRecord(topic="SCHEDULE_TOPIC_XXXX", body=b"", properties="DELAY\x011"), 1, 0) is None


def test_delay_offsets_read_rocketmqs_file_and_write_quoted_keys() -> None:
    fastjson = DelayOffsets.from_obj(json.loads('{"offsetTable":{"1":7,"3":2}}'))
    assert (fastjson.offsets, fastjson.scan_from_phys) == ({1: 7, 3: 2}, 0)
    ours = DelayOffsets({2: 5}, 4096)
    assert ours.to_obj() == {"offsetTable": {"2": 5}, "scanFromPhysOffset": 4096}
    assert DelayOffsets.from_obj(ours.to_obj()) == ours


# --- the scheduler with a fake clock ------------------------------------------------------------------


class FakeControlBlock:
    def __init__(self) -> None:
        self.flushed_offset = 0
        self.generation = 1

    def writer_fields(self) -> tuple[int, int, int, int, int, int]:
        return (0, self.flushed_offset, 0, self.generation, 0, 0)


class FakePutter:
    """Stores each re-put in the same store (so reconcile scans see it) or fails as told."""

    def __init__(self, store: FileStore) -> None:
        self.store = store
        self.control_block = FakeControlBlock()
        self.puts: list[tuple[str, int, bytes, dict[str, str]]] = []
        self.fail_next: PutResult | None = None

    def put(self, topic: str, queue_id: int, body: bytes, props: str, **kw: Any) -> asyncio.Future[PutOutcome]:
        future: asyncio.Future[PutOutcome] = asyncio.get_running_loop().create_future()
        if self.fail_next is not None:
            future.set_result(PutOutcome(self.fail_next, "told to", low_phys=self.store.committed_offset))
            self.fail_next = None
            return future
        low = self.store.committed_offset
        rec = MessageRecord(topic=topic, body=body, queue_id=queue_id, properties=props)
        result = self.store.append([PutRequest(topic, queue_id, 0, encode_record(rec))])[0]
        self.puts.append((topic, queue_id, body, parse_properties(props)))
        future.set_result(PutOutcome(PutResult.STORED, "", result.phys_offset, result.phys_offset + result.size,
                                     0, low))
        return future


class Following:
    """What the scheduler needs of FollowingReader: a read-only StoreReader over the FileStore the
    test writes (dispatched before each look, as the dispatcher would)."""

    def __init__(self, store: FileStore, cfg: StoreConfig) -> None:
        self.store = store
        self.reader = StoreReader(cfg)

    def get(self) -> StoreReader:
        self.store.dispatch()
        self.store.flush_consumequeues()
        return self.reader

    @property
    def committed_offset(self) -> int:
        return self.store.committed_offset


class StoreQueueTable:
    def __init__(self, store: FileStore) -> None:
        self.store = store

    def get(self, topic: str, queue_id: int) -> tuple[int, int, int] | None:
        self.store.dispatch()
        if self.store.cqs.get(topic, queue_id) is None:
            return None
        return self.store.max_queue_offset(topic, queue_id), 0, 0


@pytest.fixture
def rig(tmp_path):
    cfg = StoreConfig(store_path_root_dir=str(tmp_path / "s"), mapped_file_size_commitlog=1 << 16,
                      message_delay_level="1s 2s 3s", max_hash_slot_num=64, max_index_num=256)
    clock = FakeClock()
    store = FileStore(cfg, clock=clock)
    putter = FakePutter(store)
    following = Following(store, cfg)
    config_dir = tmp_path / "config"
    config_dir.mkdir()

    def service() -> ScheduleService:
        s = ScheduleService(str(config_dir), cfg.delay_levels_ms, following,  # type: ignore[arg-type]
                            StoreQueueTable(store), putter, clock=clock)  # type: ignore[arg-type]
        s.load()
        return s

    def park(body: bytes, level: int, qid: int = 0) -> None:
        dest = schedule_rewrite("Real", qid, format_properties({"DELAY": str(level), "TAGS": "t"}), 3)
        rec = MessageRecord(topic=dest.topic, body=body, queue_id=dest.queue_id, properties=dest.props)
        store.append([PutRequest(dest.topic, dest.queue_id, 0, encode_record(rec))])

    yield clock, store, putter, service, park, config_dir
    following.reader.close()
    store.close()


def test_due_messages_are_re_put_in_order_and_not_before_their_time(rig) -> None:
    clock, store, putter, service, park, _ = rig

    async def main() -> None:
        s = service()
        park(b"a", 2, qid=1)
        park(b"b", 2, qid=2)
        park(b"c", 1)
        park(b"d", 3)
        assert await s.round() == 1000 and putter.puts == []        # level 1 due in 1 s
        clock.advance(999)
        assert await s.round() == 1 and putter.puts == []
        clock.advance(1)
        assert await s.round() == 100                              # level 1 now empty: poll it
        assert [(p[0], p[1], p[2]) for p in putter.puts] == [("Real", 0, b"c")]
        clock.advance(1000)
        await s.round()
        assert [(p[0], p[1], p[2]) for p in putter.puts[1:]] == [("Real", 1, b"a"), ("Real", 2, b"b")]
        assert "DELAY" not in putter.puts[1][3] and putter.puts[1][3]["RKPY_DELAY_SRC"] == "2:0"
        clock.advance(1000)
        assert await s.round() == 100                              # nothing parked: poll again soon
        assert [p[2] for p in putter.puts] == [b"c", b"a", b"b", b"d"]
        assert s.offsets() == {1: 1, 2: 2, 3: 1}
    asyncio.run(main())


def test_a_failed_put_is_retried_later_never_skipped(rig) -> None:
    clock, store, putter, service, park, _ = rig

    async def main() -> None:
        s = service()
        park(b"a", 1)
        park(b"b", 1)
        clock.advance(1000)
        putter.fail_next = PutResult.REFUSED
        assert await s.round() == 100 and putter.puts == [] and s.offsets()[1] == 0
        assert await s.round() == 100 and putter.puts == []        # not before the retry wait
        clock.advance(1000)
        await s.round()
        assert [p[2] for p in putter.puts] == [b"a", b"b"]
    asyncio.run(main())


def test_offsets_persist_only_once_flushed_and_a_restart_finds_unpersisted_re_puts(rig) -> None:
    clock, store, putter, service, park, config_dir = rig

    async def main() -> None:
        s = service()
        for body in (b"a", b"b", b"c"):
            park(body, 1)
        first_put_phys = store.committed_offset
        clock.advance(1000)
        await s.round()
        assert len(putter.puts) == 3
        assert s.persist(force=True)
        saved = json.loads((config_dir / "delayOffset.json").read_text())
        assert saved["offsetTable"]["1"] == 0, "nothing flushed: nothing counted"
        assert saved["scanFromPhysOffset"] <= first_put_phys
        # Crash here: a new scheduler loads the file and must not deliver a, b, c again.
        again = service()
        again.reconcile(again.scan_from_phys)
        assert again.offsets()[1] == 3
        await again.round()
        assert len(putter.puts) == 3
        putter.control_block.flushed_offset = store.committed_offset
        assert again.persist(force=True)
        saved = json.loads((config_dir / "delayOffset.json").read_text())
        assert saved["offsetTable"]["1"] == 3 and saved["scanFromPhysOffset"] == store.committed_offset
    asyncio.run(main())


def test_an_unknown_outcome_looks_in_the_log_before_trying_again(rig) -> None:
    clock, store, putter, service, park, _ = rig

    async def main() -> None:
        s = service()
        park(b"a", 1)
        clock.advance(1000)
        # The writer restarted after storing the put but before answering it.
        low = store.committed_offset
        rec = MessageRecord(topic="Real", body=b"a", properties=format_properties({"RKPY_DELAY_SRC": "1:0"}))
        store.append([PutRequest("Real", 0, 0, encode_record(rec))])
        putter.fail_next = PutResult.UNKNOWN
        original_put = putter.put

        def unknown_from(*args: Any, **kw: Any) -> asyncio.Future[PutOutcome]:
            future = original_put(*args, **kw)
            assert future.result().low_phys == store.committed_offset
            return _with_low(future, low)
        putter.put = unknown_from  # type: ignore[method-assign]
        await s.round()
        assert s.offsets()[1] == 1 and putter.puts == []
    asyncio.run(main())


def _with_low(future: asyncio.Future[PutOutcome], low: int) -> asyncio.Future[PutOutcome]:
    out: asyncio.Future[PutOutcome] = asyncio.get_running_loop().create_future()
    r = future.result()
    out.set_result(PutOutcome(r.result, r.reason, r.phys_offset, r.end_phys_offset, r.queue_offset, low))
    return out


# --- send-back decisions ------------------------------------------------------------------------------


GROUP = SubscriptionGroupConfig(group_name="G", retry_queue_nums=4, retry_max_times=3)


@pytest.mark.parametrize(("reconsumed", "delay_level", "header_max", "topic", "delay"), [
    (0, 0, None, "%RETRY%G", "3"),       # 3 + reconsume times
    (2, 0, None, "%RETRY%G", "5"),
    (1, 7, None, "%RETRY%G", "7"),       # the client's level
    (3, 0, None, "%DLQ%G", None),        # reconsume times >= retryMaxTimes
    (0, -1, None, "%DLQ%G", None),       # a negative level: straight to the DLQ
    (3, 0, 5, "%RETRY%G", "6"),          # the header's maxReconsumeTimes wins
    (1, 0, 1, "%DLQ%G", None),
])
def test_send_back_decisions(reconsumed: int, delay_level: int, header_max: int | None, topic: str,
                             delay: str | None) -> None:
    record = MessageRecord(topic="T", body=b"x", reconsume_times=reconsumed, properties=format_properties(
        {"TAGS": "a", "DELAY": "9", "RKPY_DELAY_SRC": "1:4"}))
    d = decide_send_back("G", GROUP, record, "MSGID", delay_level, header_max, None, randint=lambda n: n - 1)
    props = parse_properties(d.props)
    assert (d.topic, props.get("DELAY"), d.reconsume_times) == (topic, delay, reconsumed + 1)
    assert d.queue_id == (0 if topic.startswith("%DLQ%") else 3)
    assert props["RETRY_TOPIC"] == "T" and props["ORIGIN_MESSAGE_ID"] == "MSGID" and props["TAGS"] == "a"
    assert "RKPY_DELAY_SRC" not in props and d.dead_letter == topic.startswith("%DLQ%")


def test_send_back_keeps_the_first_topic_and_message_id_across_retries() -> None:
    record = MessageRecord(topic="%RETRY%G", body=b"x", reconsume_times=1, properties=format_properties(
        {"RETRY_TOPIC": "Orig", "ORIGIN_MESSAGE_ID": "FIRST"}))
    d = decide_send_back("G", GROUP, record, "SECOND", 0, None, "HEADER")
    props = parse_properties(d.props)
    assert (props["RETRY_TOPIC"], props["ORIGIN_MESSAGE_ID"]) == ("Orig", "FIRST")
    fresh = MessageRecord(topic="T", body=b"x")
    assert parse_properties(decide_send_back("G", GROUP, fresh, "OFFSETID", 0, None, "HEADER").props)[
        "ORIGIN_MESSAGE_ID"] == "HEADER"
