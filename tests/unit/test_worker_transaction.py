"""Half messages and END_TRANSACTION through a worker with the real Writer and Dispatcher turns and a
real ControlServer (its transaction arbiter) in one process: what is stored where, what consumers can
pull before and after, duplicate and concurrent ends, and the refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rocketpy.broker.control.server import ControlServer, WorkerConnection
from rocketpy.broker.dispatcher import Dispatcher
from rocketpy.broker.handlers.transaction import HALF_TOPIC, OP_TOPIC, half_message
from rocketpy.broker.reading import FollowingReader
from rocketpy.broker.writer import Writer
from rocketpy.clock import FakeClock
from rocketpy.config import BrokerConfig, BrokerRole, FlushDiskType, StoreConfig
from rocketpy.ipc.control_block import ControlBlock, Role
from rocketpy.ipc.doorbell import Doorbell
from rocketpy.ipc.queue_table import QueueTable
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.headers import EndTransactionRequestHeader, HeaderError
from rocketpy.protocol.message import (
    TRANSACTION_COMMIT,
    TRANSACTION_NOT,
    TRANSACTION_PREPARED,
    TRANSACTION_ROLLBACK,
    MessageRecord,
    format_properties,
    iter_records,
    parse_properties,
)
from rocketpy.protocol.msgid import decode_offset_msg_id
from rocketpy.protocol.remoting import FLAG_ONEWAY, RemotingCommand
from rocketpy.store.file_store import FileStore, StoreReader
from tests.unit.test_worker_rig import Client, Rig

TX_PROPS = format_properties({"TAGS": "TagA", "KEYS": "k1", "UNIQ_KEY": "UNIQ0001", "TRAN_MSG": "true",
                              "PGROUP": "PG", "WAIT": "true"})


class DirectLink:
    """The worker's ControlLink, wired straight to a ControlServer on the same loop."""

    ready = True

    def __init__(self, server: ControlServer, slot: int) -> None:
        self.server = server
        self.conn = WorkerConnection(server)
        self.conn.slot = slot
        self.requests: list[RemotingCommand] = []
        self.gate: asyncio.Event | None = None       # set: claims wait for it (to interleave two ends)

    async def request(self, cmd: RemotingCommand, **_: Any) -> RemotingCommand:
        self.requests.append(cmd)
        if self.gate is not None:
            await self.gate.wait()
        response = self.server.dispatch(cmd, self.conn)
        assert response is not None
        return response

    def send_oneway(self, cmd: RemotingCommand) -> bool:
        cmd.flag |= FLAG_ONEWAY
        self.requests.append(cmd)
        self.server.dispatch(cmd, self.conn)
        return True


class TxRig:
    def __init__(self, tmp_path: Path, broker_config: BrokerConfig | None = None) -> None:
        self.config = StoreConfig(store_path_root_dir=str(tmp_path / "store"), mapped_file_size_commitlog=1 << 16,
                                  mapped_file_size_consumequeue=20 * 64, flush_disk_type=FlushDiskType.SYNC_FLUSH)
        self.store = FileStore.open(self.config)
        self.reader = StoreReader(self.config)
        self.control_reader = StoreReader(self.config)
        broker = broker_config or BrokerConfig(broker_ip1="192.168.7.7", listen_port=10911)
        self.rig = Rig(self.config, broker, store_reader=self.reader)
        cl = self.store.commitlog
        self.rig.sup.publish_writer(committed_offset=cl.committed_offset, flushed_offset=cl.flushed_offset,
                                    flushed_store_ts=0, writer_generation=1)
        dispatcher_bell = Doorbell()
        self.writer = Writer(0, self.config, cl, self.rig.control_buf, [self.rig.put_buf], [self.rig.resp_buf],
                             self.rig.writer_bell, [self.rig.response_bell], dispatcher_bell, generation=1)
        self.writer.setup()
        self.dispatcher = Dispatcher(1, self.config, self.rig.control_buf, self.rig.qt_buf, dispatcher_bell,
                                     [self.rig.pull_bell])
        self.dispatcher.setup()
        reader_cb = ControlBlock(self.rig.control_buf, Role.READER)
        self.clock = FakeClock()
        self.control = ControlServer(broker, self.config, control_block=reader_cb,
                                     queue_table=QueueTable(self.rig.qt_buf), clock=self.clock,
                                     store_reader=FollowingReader(self.control_reader, reader_cb))
        self.control.load()
        self.link = DirectLink(self.control, self.rig.ctx.slot)
        self.rig.server.transaction.link = self.link  # type: ignore[assignment]

    async def start(self) -> Client:
        await self.rig.start(fake_writer=False)
        loop = asyncio.get_running_loop()

        def writer_turn() -> None:
            self.rig.writer_bell.clear()
            self.writer.turn()
            self.dispatcher.turn()

        loop.add_reader(self.rig.writer_bell.fd, writer_turn)
        return self.rig.client()

    async def stop(self) -> None:
        asyncio.get_running_loop().remove_reader(self.rig.writer_bell.fd)
        await self.rig.stop()

    def close(self) -> None:
        self.reader.close()
        self.control_reader.close()
        self.dispatcher.cqs.close()
        self.store.close()


@pytest.fixture
def tx(tmp_path: Path) -> Iterator[TxRig]:
    rig = TxRig(tmp_path)
    yield rig
    rig.close()


def send_half(c: Client, body: bytes = b"order-1", *, props: str = TX_PROPS, topic: str = "TopicA",
              queue_id: int = 2, sys_flag: int = TRANSACTION_PREPARED) -> RemotingCommand:
    return c.request(RequestCode.SEND_MESSAGE_V2, {
        "a": "PG", "b": topic, "c": "TBW102", "d": "4", "e": str(queue_id), "f": str(sys_flag),
        "g": "1700000000000", "h": "3", "i": props, "j": "0", "k": "false", "m": "false"}, body)


def end(c: Client, send_ok: RemotingCommand, kind: int, *, group: str = "PG", from_check: bool = False,
        oneway: bool = False, **override: Any) -> RemotingCommand:
    _, _, phys = decode_offset_msg_id(send_ok.ext_fields["msgId"])
    ext = {"producerGroup": group, "tranStateTableOffset": send_ok.ext_fields["queueOffset"],
           "commitLogOffset": str(phys), "commitOrRollback": str(kind), "msgId": "UNIQ0001",
           "fromTransactionCheck": str(from_check).lower(), **override}
    return c.request(RequestCode.END_TRANSACTION, ext, flag=FLAG_ONEWAY if oneway else 0)


async def pull(c: Client, topic: str, queue_id: int) -> RemotingCommand:
    return await c.call(c.request(RequestCode.PULL_MESSAGE, {
        "consumerGroup": "CG", "topic": topic, "queueId": str(queue_id), "queueOffset": "0", "maxMsgNums": "32",
        "sysFlag": "4", "commitOffset": "0", "suspendTimeoutMillis": "0", "subVersion": "0", "subscription": "*"}))


def read_queue(tx: TxRig, topic: str, queue_id: int) -> list[MessageRecord]:
    tx.store.commitlog.mfq.refresh()
    result = StoreReader(tx.config)
    try:
        got = result.get_message(topic, queue_id, 0, 32, None, committed_offset=tx.rig.sup.committed_offset,
                                 max_queue_offset=tx.rig.ctx.queue_table.max_offset(topic, queue_id))
        return iter_records(b"".join(bytes(r) for r in got.records))
    finally:
        result.close()


async def settle(tx: TxRig, topic: str, queue_id: int, count: int) -> list[MessageRecord]:
    """The records of a queue once it has `count` of them (puts of an END_TRANSACTION land after its answer)."""
    for _ in range(200):
        got = read_queue(tx, topic, queue_id)
        if len(got) >= count:
            return got
        await asyncio.sleep(0.005)
    raise AssertionError(f"{topic}/{queue_id} has {len(read_queue(tx, topic, queue_id))} records, wanted {count}")


def test_half_message_rewrite() -> None:
    assert half_message("T", 3, "TAGS\x01a", TRANSACTION_PREPARED | 0x2) == (
        HALF_TOPIC, 0, "TAGS\x01a\x02REAL_TOPIC\x01T\x02REAL_QID\x013", 0x2)
    assert half_message("T", 0, "", TRANSACTION_PREPARED)[2] == "REAL_TOPIC\x01T\x02REAL_QID\x010"
    topic, qid, props, flag = half_message("T", 1, "REAL_TOPIC\x01X\x02TAGS\x01a\x02", 0)
    assert parse_properties(props) == {"REAL_TOPIC": "T", "TAGS": "a", "REAL_QID": "1"} and flag == 0


def test_end_transaction_header_from_java_and_cpp() -> None:
    java = EndTransactionRequestHeader.from_ext({
        "producerGroup": "PG", "tranStateTableOffset": "5", "commitLogOffset": "1234", "commitOrRollback": "8",
        "fromTransactionCheck": "true", "msgId": "U", "transactionId": "U"})
    assert java == EndTransactionRequestHeader("PG", 5, 1234, 8, "U", True, "U")
    cpp = EndTransactionRequestHeader.from_ext({
        "producerGroup": "PG", "tranStateTableOffset": 5, "commitLogOffset": 1234, "commitOrRollback": 12,
        "fromTransactionCheck": "0", "msgId": "U"})
    assert (cpp.commit_or_rollback, cpp.from_transaction_check, cpp.transaction_id) == (12, False, None)
    with pytest.raises(HeaderError, match="msgId"):
        EndTransactionRequestHeader.from_ext({"producerGroup": "PG", "tranStateTableOffset": "5",
                                              "commitLogOffset": "1", "commitOrRollback": "8"})


def test_commit_makes_the_message_visible_once_in_its_real_queue(tx: TxRig) -> None:
    async def main() -> None:
        c = await tx.start()
        ok = await c.call(send_half(c))
        assert ok.code == ResponseCode.SUCCESS, ok.remark
        assert ok.ext_fields["queueOffset"] == "0"
        (half,) = read_queue(tx, HALF_TOPIC, 0)
        props = parse_properties(half.properties)
        assert (props["REAL_TOPIC"], props["REAL_QID"], props["TRAN_MSG"], props["PGROUP"]) == ("TopicA", "2",
                                                                                                 "true", "PG")
        assert half.sys_flag & 0xC == TRANSACTION_NOT and "WAIT" not in props
        before = await pull(c, "TopicA", 2)
        assert before.code == ResponseCode.PULL_NOT_FOUND, "a half message is not visible before the commit"
        refused = await pull(c, HALF_TOPIC, 0)
        assert refused.code == ResponseCode.TOPIC_NOT_EXIST, "consumers cannot read the half topic"
        assert (await pull(c, OP_TOPIC, 0)).code == ResponseCode.TOPIC_NOT_EXIST

        r = await c.call(end(c, ok, TRANSACTION_COMMIT))
        assert r.code == ResponseCode.SUCCESS, r.remark
        (real,) = await settle(tx, "TopicA", 2, 1)
        assert (real.body, real.flag, real.born_timestamp, real.born_host) == (b"order-1", 3, 1700000000000,
                                                                               "10.1.2.3")
        assert real.sys_flag & 0xC == TRANSACTION_COMMIT and real.prepared_transaction_offset == half.phys_offset
        assert parse_properties(real.properties) == props, "RocketMQ 4.9 stores the half's properties as they were"
        (op,) = await settle(tx, OP_TOPIC, 0, 1)
        assert (op.body, op.tags) == (b"0", "d")
        after = await pull(c, "TopicA", 2)
        assert after.code == ResponseCode.SUCCESS
        assert [m.body for m in iter_records(after.body)] == [b"order-1"]

        again = await c.call(end(c, ok, TRANSACTION_COMMIT, from_check=True))
        assert again.code == ResponseCode.SYSTEM_ERROR and "already over" in (again.remark or "")
        tx.control.check_transactions()                   # reads the op message; the half is resolved
        assert tx.control.transactions.half_progress == 1
        assert len(read_queue(tx, "TopicA", 2)) == 1 and len(read_queue(tx, OP_TOPIC, 0)) == 1
        await tx.stop()
    asyncio.run(main())


def test_rollback_stores_only_the_op_message(tx: TxRig) -> None:
    async def main() -> None:
        c = await tx.start()
        ok = await c.call(send_half(c))
        c.send(end(c, ok, TRANSACTION_ROLLBACK, oneway=True))      # as every client sends it
        (op,) = await settle(tx, OP_TOPIC, 0, 1)
        assert op.body == b"0"
        await c.nothing()
        assert read_queue(tx, "TopicA", 2) == []
        assert (await c.call(end(c, ok, TRANSACTION_COMMIT))).code == ResponseCode.SYSTEM_ERROR
        assert read_queue(tx, "TopicA", 2) == [], "a commit after the rollback stores nothing"
        await tx.stop()
    asyncio.run(main())


def test_two_ends_of_one_half_at_once_commit_it_once(tx: TxRig) -> None:
    async def main() -> None:
        c = await tx.start()
        ok = await c.call(send_half(c))
        tx.link.gate = asyncio.Event()
        first, second = end(c, ok, TRANSACTION_COMMIT), end(c, ok, TRANSACTION_COMMIT, from_check=True)
        c.send(first, second)
        await asyncio.sleep(0.01)
        tx.link.gate.set()
        answers = {r.opaque: r for r in await c.responses(2)}
        assert answers[first.opaque].code == ResponseCode.SUCCESS
        assert answers[second.opaque].code == ResponseCode.SYSTEM_ERROR
        assert "being ended by another" in (answers[second.opaque].remark or "")
        await settle(tx, OP_TOPIC, 0, 1)
        assert len(read_queue(tx, "TopicA", 2)) == 1
        await tx.stop()
    asyncio.run(main())


def test_refusals_name_what_is_wrong(tx: TxRig) -> None:
    async def main() -> None:
        c = await tx.start()
        ok = await c.call(send_half(c))
        plain = await c.call(c.request(RequestCode.SEND_MESSAGE_V2, {
            "a": "PG", "b": "TopicA", "c": "TBW102", "d": "4", "e": "1", "f": "0", "g": "1", "h": "0",
            "i": "TAGS\x01x", "j": "0", "k": "false", "m": "false"}, b"plain"))
        cases = [
            (end(c, ok, TRANSACTION_COMMIT, group="OTHER"), "The producer group wrong"),
            (end(c, ok, TRANSACTION_COMMIT, tranStateTableOffset="7"), "The transaction state table offset wrong"),
            (end(c, ok, TRANSACTION_COMMIT, commitLogOffset="5"), "Find prepared transaction message failed"),
            (end(c, ok, TRANSACTION_COMMIT, commitLogOffset="99999999"), "Find prepared transaction message failed"),
            (end(c, plain, TRANSACTION_COMMIT), "not a transactional half message"),
        ]
        for request, remark in cases:
            r = await c.call(request)
            assert r.code == ResponseCode.SYSTEM_ERROR and remark in (r.remark or ""), (remark, r.remark)
        c.send(end(c, ok, TRANSACTION_NOT))
        await c.nothing()                                  # type NOT: nothing done, no answer (as RocketMQ)
        bad = await c.call(send_half(c, props="TAGS\x01a"))
        assert bad.code == ResponseCode.MESSAGE_ILLEGAL and "TRAN_MSG" in (bad.remark or "")
        assert read_queue(tx, "TopicA", 2) == [] and read_queue(tx, OP_TOPIC, 0) == []
        r = await c.call(end(c, ok, TRANSACTION_COMMIT))
        assert r.code == ResponseCode.SUCCESS, "the half is still there to commit after the refusals"
        await tx.stop()
    asyncio.run(main())


def test_reject_transaction_message_and_slave(tmp_path: Path) -> None:
    async def main(rig: TxRig, code: int, what: str) -> RemotingCommand:
        c = await rig.start()
        r = await c.call(send_half(c))
        assert r.code == code and what in (r.remark or "")
        e = await c.call(c.request(RequestCode.END_TRANSACTION, {
            "producerGroup": "PG", "tranStateTableOffset": "0", "commitLogOffset": "0", "commitOrRollback": "8",
            "msgId": "U"}))
        await rig.stop()
        return e

    rejecting = TxRig(tmp_path / "a", BrokerConfig(broker_ip1="192.168.7.7", reject_transaction_message=True))
    try:
        asyncio.run(main(rejecting, ResponseCode.NO_PERMISSION, "transaction message is forbidden"))
    finally:
        rejecting.close()
    slave = TxRig(tmp_path / "b", BrokerConfig(broker_ip1="192.168.7.7", broker_role=BrokerRole.SLAVE))
    try:
        e = asyncio.run(main(slave, ResponseCode.SERVICE_NOT_AVAILABLE, "slave"))
        assert e.code == ResponseCode.SLAVE_NOT_AVAILABLE
    finally:
        slave.close()


def test_a_commit_stored_without_its_op_message_is_not_stored_again(tx: TxRig) -> None:
    """A worker killed between the commit and the op message: the next END_TRANSACTION finds the
    committed copy through the IndexFile and stores only the op message."""
    async def main() -> None:
        c = await tx.start()
        ok = await c.call(send_half(c))
        (half,) = read_queue(tx, HALF_TOPIC, 0)
        props = parse_properties(half.properties)
        first = tx.rig.server.send.put_record(
            "TopicA", 2, half.body, half.properties, flag=half.flag, sys_flag=TRANSACTION_COMMIT,
            born_timestamp_ms=half.born_timestamp, born_ip=bytes([10, 1, 2, 3]), born_port=half.born_port,
            prepared_transaction_offset=half.phys_offset)
        assert (await first).code == ResponseCode.SUCCESS
        assert props["UNIQ_KEY"] == "UNIQ0001"
        r = await c.call(end(c, ok, TRANSACTION_COMMIT, from_check=True))
        assert r.code == ResponseCode.SUCCESS, r.remark
        (op,) = await settle(tx, OP_TOPIC, 0, 1)
        assert op.body == b"0"
        (real,) = read_queue(tx, "TopicA", 2)
        assert real.prepared_transaction_offset == half.phys_offset
        await tx.stop()
    asyncio.run(main())
