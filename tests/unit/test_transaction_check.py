"""Control's transaction service with a FakeClock over a real FileStore: which halves get
CHECK_TRANSACTION_STATE and when, what the check carries, discard after transactionCheckMax,
progress over resolved and closed halves, the persisted state, and the END_TRANSACTION claims."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rocketpy import limits
from rocketpy.broker.control.clients import ClientChannel, ProducerManager
from rocketpy.broker.control.transaction import (
    HALF_TOPIC,
    OP_TOPIC,
    STATE_FILE,
    TransactionService,
)
from rocketpy.clock import FakeClock
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.protocol.codes import RequestCode
from rocketpy.protocol.headers import CheckTransactionStateRequestHeader
from rocketpy.protocol.message import MessageRecord, decode_record, encode_record, format_properties
from rocketpy.protocol.msgid import offset_msg_id
from rocketpy.protocol.remoting import FrameDecoder, RemotingCommand
from rocketpy.store.api import GetResult, PutRequest
from rocketpy.store.file_store import FileStore

NOW_MS = 1_700_000_000_000
TIMEOUT_MS = 6000


class Source:
    def __init__(self, store: FileStore) -> None:
        self.store = store

    def read(self, topic: str, queue_id: int, queue_offset: int, max_count: int) -> GetResult:
        return self.store.get_message(topic, queue_id, queue_offset, max_count)


class Harness:
    def __init__(self, tmp_path: Path, *, check_max: int = 3, store: FileStore | None = None) -> None:
        self.tmp_path = tmp_path
        self.clock = FakeClock(now_ms=NOW_MS)
        self.store = store or FileStore.open(StoreConfig(store_path_root_dir=str(tmp_path / "store"),
                                                         mapped_file_size_commitlog=1 << 20,
                                                         mapped_file_size_consumequeue=20 * 100))
        self.broker = BrokerConfig(transaction_timeout_ms=TIMEOUT_MS, transaction_check_max=check_max)
        self.producers = ProducerManager(clock=self.clock)
        self.pushed: list[tuple[int, int, RemotingCommand]] = []
        self.progress: list[int] = []
        self.service = self.make_service()

    def make_service(self) -> TransactionService:
        service = TransactionService(str(self.tmp_path / "config"), self.broker, self.store.config,
                                     source=Source(self.store), producers=self.producers, push=self.push,
                                     clock=self.clock, on_progress=self.progress.append)
        service.load()
        return service

    def push(self, slot: int, conn_id: int, frame: bytes) -> None:
        (cmd,) = FrameDecoder().feed(frame)
        self.pushed.append((slot, conn_id, cmd))

    def producer(self, group: str = "PG", slot: int = 1, conn_id: int = 7) -> None:
        self.producers.register(group, ClientChannel(worker_slot=slot, conn_id=conn_id, client_id=f"c{conn_id}"))

    def half(self, uniq: str, *, born_ms: int = NOW_MS, group: str = "PG", **extra: str) -> tuple[int, int]:
        """Store a half message; (queue offset, phys offset)."""
        props = {"TAGS": "TagA", "UNIQ_KEY": uniq, "TRAN_MSG": "true", "PGROUP": group, "CLUSTER": "C",
                 "REAL_TOPIC": "RealT", "REAL_QID": "2", **extra}
        rec = MessageRecord(topic=HALF_TOPIC, body=b"body-" + uniq.encode(), born_timestamp=born_ms,
                            born_host="10.0.0.5", born_port=5555, store_host="127.0.0.1", store_port=10911,
                            properties=format_properties(props))
        (result,) = self.store.append([PutRequest(HALF_TOPIC, 0, 0, encode_record(rec))])
        self.store.dispatch()
        return result.queue_offset, result.phys_offset

    def op(self, half_offset: int) -> int:
        rec = MessageRecord(topic=OP_TOPIC, body=str(half_offset).encode(),
                            properties=format_properties({"TAGS": "d", "UNIQ_KEY": f"OP{half_offset}"}))
        (result,) = self.store.append([PutRequest(OP_TOPIC, 0, 0, encode_record(rec))])
        self.store.dispatch()
        return result.queue_offset

    def checks(self) -> list[int]:
        """Half offsets checked since the last call."""
        out = [int(cmd.ext_fields["tranStateTableOffset"]) for _, _, cmd in self.pushed]
        self.pushed.clear()
        return out

    def state(self) -> dict[str, Any]:
        return json.loads((self.tmp_path / "config" / STATE_FILE).read_text())


@pytest.fixture
def h(tmp_path: Path) -> Any:
    harness = Harness(tmp_path)
    yield harness
    harness.store.close()


def test_a_half_is_checked_once_it_is_older_than_the_timeout_with_what_clients_decode(h: Harness) -> None:
    h.producer()
    q, phys = h.half("U0")
    assert h.service.check_pass().checked == 0 and h.checks() == [], "a fresh half is not checked"
    h.clock.advance(TIMEOUT_MS - 1)
    h.service.check_pass()
    assert h.checks() == []
    h.clock.advance(2)
    result = h.service.check_pass()
    assert result.checked == 1 and result.half_progress == 0
    ((slot, conn_id, cmd),) = h.pushed
    assert (slot, conn_id) == (1, 7)
    assert cmd.code == RequestCode.CHECK_TRANSACTION_STATE and cmd.is_oneway
    header = CheckTransactionStateRequestHeader.from_ext(cmd.ext_fields)
    assert header == CheckTransactionStateRequestHeader(
        tran_state_table_offset=q, commit_log_offset=phys, msg_id="U0", transaction_id="U0",
        offset_msg_id=offset_msg_id("127.0.0.1", 10911, phys))
    msg = decode_record(cmd.body, check_crc=True)
    assert (msg.topic, msg.queue_id, msg.body, msg.phys_offset, msg.queue_offset) == ("RealT", 2, b"body-U0", phys, q)
    props = msg.property_map()
    assert props["TRANSACTION_CHECK_TIMES"] == "1" and props["PGROUP"] == "PG" and props["UNIQ_KEY"] == "U0"


def test_one_check_per_pass_then_discard_after_check_max_and_progress_moves_on(h: Harness) -> None:
    h.producer()
    h.half("U0")
    h.clock.advance(TIMEOUT_MS + 1)
    for n in (1, 2, 3):
        assert h.service.check_pass().checked == 1
        (cmd,) = [c for _, _, c in h.pushed]
        assert decode_record(cmd.body).property_map()["TRANSACTION_CHECK_TIMES"] == str(n)
        h.checks()
        assert h.state()["checkTimes"] == {"0": n}
    result = h.service.check_pass()
    assert (result.checked, result.discarded, result.half_progress) == (0, 1, 1)
    assert h.checks() == [] and h.progress == [1]
    assert h.state() == {"halfProgress": 1, "opProgress": 0, "checkTimes": {}, "closed": {}}
    refusal = h.service.claim(0, 0, 1)
    assert refusal is not None and "already over" in refusal


def test_a_discarded_half_above_progress_stays_closed_and_refuses_a_late_commit(h: Harness) -> None:
    h.producer()
    h.half("SLOW", CHECK_IMMUNITY_TIME_IN_SECONDS="3600")     # offset 0: open for an hour, holds progress
    h.half("U1")                                              # offset 1: never answered
    h.clock.advance(TIMEOUT_MS + 1)
    for _ in range(3):
        h.service.check_pass()
    assert h.checks() == [1, 1, 1]
    result = h.service.check_pass()
    assert (result.discarded, result.half_progress) == (1, 0)
    assert h.state()["closed"] == {"1": "discarded"}
    again = h.make_service()
    refusal = again.claim(1, 0, 1)
    assert refusal is not None and "discarded after 3 check-backs" in refusal
    again.check_pass()
    assert h.checks() == []


def test_resolved_halves_are_skipped_and_progress_passes_them_and_survives_a_restart(h: Harness) -> None:
    h.producer()
    for i in range(4):
        h.half(f"U{i}")
    h.op(1)
    h.op(0)
    h.clock.advance(TIMEOUT_MS + 1)
    result = h.service.check_pass()
    assert h.checks() == [2, 3] and result.half_progress == 2
    assert h.state()["halfProgress"] == 2 and h.state()["opProgress"] == 2
    h.op(3)
    h.service.check_pass()
    assert h.checks() == [2]
    # restart: a new service reads the state file and the op queue from opProgress
    again = h.make_service()
    assert again.half_progress == 2 and again.check_times == {2: 2}
    assert again.claim(3, 0, 1) is not None, "resolved by an op message read after the restart"
    assert again.claim(2, 0, 1) is None


def test_check_immunity_property_and_missing_producer(h: Harness) -> None:
    h.half("LATE", CHECK_IMMUNITY_TIME_IN_SECONDS="60")
    h.half("NOW")
    h.clock.advance(TIMEOUT_MS + 1)
    h.service.check_pass()
    assert h.checks() == [], "no live producer of the group: nothing sent"
    assert h.service.check_times == {1: 1}, "the attempt counts, as in RocketMQ"
    h.producer()
    h.clock.advance(60_000)
    h.service.check_pass()
    assert h.checks() == [0, 1]


def test_the_freshest_connection_of_the_group_gets_the_check(h: Harness) -> None:
    h.producer(slot=1, conn_id=1)
    h.clock.advance(10)
    h.producer(slot=2, conn_id=9)
    h.producer("OTHER", slot=3, conn_id=3)
    h.half("U0")
    h.clock.advance(TIMEOUT_MS + 1)
    h.service.check_pass()
    assert [(s, c) for s, c, _ in h.pushed] == [(2, 9)]


def test_claims_one_end_per_half(h: Harness) -> None:
    q, phys = h.half("U0")
    assert h.service.claim(q, phys, 1) is None
    busy = h.service.claim(q, phys, 2)
    assert busy is not None and "being ended by another END_TRANSACTION" in busy
    h.service.worker_gone(1)                        # the claiming worker died: let go
    assert h.service.claim(q, phys, 2) is None
    h.clock.advance(limits.TRANSACTION_END_CLAIM_TIMEOUT_MS)
    assert h.service.claim(q, phys, 3) is None, "a claim older than the timeout is let go"
    h.service.done(q, None)                         # nothing stored: still open
    assert h.service.claim(q, phys, 3) is None
    h.service.done(q, 0)                            # op message at op offset 0
    refusal = h.service.claim(q, phys, 1)
    assert refusal is not None and "already over" in refusal


def test_an_end_whose_op_put_failed_is_closed_durably(h: Harness) -> None:
    q, phys = h.half("U0")
    assert h.service.claim(q, phys, 1) is None
    h.service.done(q, -1)
    assert h.state()["closed"] == {"0": "ended"}
    again = h.make_service()
    assert again.claim(q, phys, 1) is not None
    h.producer()
    h.clock.advance(TIMEOUT_MS + 1)
    assert again.check_pass().half_progress == 1 and h.checks() == []


def test_state_file_decoding_falls_back_to_the_backup(h: Harness) -> None:
    h.service.check_times = {5: 2}
    h.service.half_progress = 5
    h.service.persist()
    h.service.half_progress = 6
    h.service.persist()                             # the first version is now the .bak
    path = h.tmp_path / "config" / STATE_FILE
    path.write_text('{"halfProgress": "x"}')
    again = h.make_service()
    assert again.half_progress == 5 and again.check_times == {5: 2}
