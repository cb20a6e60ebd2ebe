"""Transactional messages through a real NameServer and broker on loopback: commit, rollback,
check-back to a live producer, discard after transactionCheckMax, a broker restart (SIGTERM and
kill -9) with a transaction awaiting its check-back, and a duplicate END_TRANSACTION.

The producer is the test remoting client: it registers its group with HEART_BEAT, sends the half
message, and answers CHECK_TRANSACTION_STATE with END_TRANSACTION (fromTransactionCheck=true), as
RocketMQ's clients do. Timers are shortened in the broker config; every wait polls a condition.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.message import MessageRecord, parse_properties
from rocketpy.protocol.msgid import decode_offset_msg_id
from tests.support.broker_ops import pull, records
from tests.support.cluster import Cluster, cluster, wait_for
from tests.support.remoting_client import RemotingTestClient
from tests.support.tx_producer import CHECK_WAIT_S, TxProducer

TX_TIMERS = {"transactionTimeOut": "300", "transactionCheckInterval": "200", "transactionCheckMax": "3"}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("tx"), **TX_TIMERS) as c:
        yield c


def kill_whole_broker(c: Cluster) -> None:
    """SIGKILL the supervisor and every child, and wait until none is left."""
    assert c.broker is not None
    procs = [psutil.Process(c.broker.pid), *psutil.Process(c.broker.pid).children(recursive=True)]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(c.broker.pid, signal.SIGKILL)       # the broker runs in a session of its own
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    c.broker.popen.wait(10)
    _, alive = psutil.wait_procs(procs, timeout=10)
    assert not alive, f"still alive after SIGKILL: {alive}"


def visible(client: RemotingTestClient, topic: str, queue_id: int) -> list[MessageRecord]:
    r = pull(client, topic, queue_id, 0)
    return records(r) if r.code == ResponseCode.SUCCESS else []


def test_commit_is_visible_once_in_its_queue_and_rollback_never(running: Cluster) -> None:
    p = TxProducer(running, "PG_commit")
    try:
        sent = p.send_half("TxCommitTopic", b"pay 10", "UNIQ-C1", queue_id=1)
        dropped = p.send_half("TxCommitTopic", b"pay 20", "UNIQ-R1", queue_id=1)
        assert visible(p.client, "TxCommitTopic", 1) == [], "nothing half-committed is visible"
        r = p.end_sent(dropped, "UNIQ-R1", 12, oneway=False)
        assert r is not None and r.code == ResponseCode.SUCCESS, r and r.remark
        p.end_sent(sent, "UNIQ-C1", 8)
        p.end_sent(sent, "UNIQ-C1", 8)                       # a duplicate: commits once
        got = wait_for(lambda: visible(p.client, "TxCommitTopic", 1), 10, "the committed message")
        dup = p.end_sent(sent, "UNIQ-C1", 8, oneway=False)   # answered: the end of a settled transaction
        assert dup is not None and dup.code == ResponseCode.SYSTEM_ERROR and "already over" in (dup.remark or "")
        assert [m.body for m in visible(p.client, "TxCommitTopic", 1)] == [b"pay 10"]
        (msg,) = got
        props = parse_properties(msg.properties)
        assert props["UNIQ_KEY"] == "UNIQ-C1" and props["TAGS"] == "TagT" and msg.queue_id == 1
        assert msg.sys_flag & 0xC == 0x8
        for queue_id in range(4):
            assert all(m.body != b"pay 20" for m in visible(p.client, "TxCommitTopic", queue_id))
    finally:
        p.close()


def test_an_unended_transaction_is_checked_back_and_the_answer_commits(running: Cluster) -> None:
    p = TxProducer(running, "PG_check")
    try:
        sent = p.send_half("TxCheckTopic", b"ship it", "UNIQ-K1", queue_id=2)
        check, message = p.next_check()
        _, _, phys = decode_offset_msg_id(sent.ext_str("msgId") or "")
        assert check.tran_state_table_offset == int(sent.ext_str("queueOffset") or -1)
        assert check.commit_log_offset == phys and check.msg_id == "UNIQ-K1" == check.transaction_id
        assert check.offset_msg_id == sent.ext_str("msgId")
        assert (message.topic, message.queue_id, message.body) == ("TxCheckTopic", 2, b"ship it")
        assert visible(p.client, "TxCheckTopic", 2) == [], "still not visible while being checked"
        p.answer(check, message, 8)
        got = wait_for(lambda: visible(p.client, "TxCheckTopic", 2), 10, "the message committed by the check")
        assert [m.body for m in got] == [b"ship it"]
    finally:
        p.close()


def test_a_transaction_never_answered_is_discarded_after_check_max(running: Cluster) -> None:
    p = TxProducer(running, "PG_silent")
    try:
        sent = p.send_half("TxSilentTopic", b"maybe", "UNIQ-S1", queue_id=0)
        offsets = [p.next_check()[0].tran_state_table_offset for _ in range(3)]
        assert len(set(offsets)) == 1
        assert running.broker is not None
        broker = running.broker
        wait_for(lambda: "UNIQ-S1: checked 3 times" in broker.log(), CHECK_WAIT_S, "the discard log line")
        with pytest.raises(TimeoutError):
            p.next_check(timeout_s=0.5)           # no fourth check (a slow machine only makes this easier)
        late = p.end_sent(sent, "UNIQ-S1", 8, oneway=False)
        assert late is not None and late.code == ResponseCode.SYSTEM_ERROR and "discarded" in (late.remark or "")
        assert visible(p.client, "TxSilentTopic", 0) == []
    finally:
        p.close()


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_a_transaction_awaiting_check_back_survives_a_broker_restart(tmp_path: Path, how: str) -> None:
    timers = {"transactionTimeOut": "500", "transactionCheckInterval": "300", "transactionCheckMax": "100",
              "flushDiskType": "SYNC_FLUSH"}
    with cluster(tmp_path, **timers) as c:
        p = TxProducer(c, "PG_restart")
        try:
            p.send_half("TxRestartTopic", b"survive", "UNIQ-X1", queue_id=3)
        finally:
            p.close()
        assert c.broker is not None
        broker = c.broker
        if how == "sigterm":
            assert broker.stop() == 0
        else:
            kill_whole_broker(c)
        readies = broker.log().count("broker ready")
        c.start_broker()
        restarted = c.broker
        wait_for(lambda: restarted.log().count("broker ready") > readies, 30, "the restarted broker to be ready")
        p = TxProducer(c, "PG_restart")
        try:
            assert visible(p.client, "TxRestartTopic", 3) == []
            check, message = p.next_check()
            assert message.body == b"survive" and check.msg_id == "UNIQ-X1"
            p.answer(check, message, 8)
            got = wait_for(lambda: visible(p.client, "TxRestartTopic", 3), 10, "the commit after the restart")
            assert [m.body for m in got] == [b"survive"]
        finally:
            p.close()
