"""The transactional producer's side of the protocol, against an in-process fake broker that
plays NameServer and broker on one port and records every request."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rocketpy.client.message import LocalTransactionState, Message, MessageQueue, SendStatus
from rocketpy.client.transaction import AsyncTransactionProducer, TransactionProducer
from rocketpy.protocol import headers as h
from rocketpy.protocol.bodies import BrokerData, QueueData, TopicRouteData
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.message import (
    MessageRecord,
    encode_record,
    format_properties,
    parse_properties,
)
from rocketpy.protocol.msgid import offset_msg_id
from rocketpy.protocol.remoting import FrameDecoder, RemotingCommand, encode_frame

COMMIT_LOG_OFFSET = 4096
QUEUE_OFFSET = 7
WAIT_S = 10.0


class FakeBroker(asyncio.Protocol):
    """One connection of the fake; shared state lives on the server object."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.transport = transport
        self.server.conns.append(self)

    def data_received(self, data: bytes) -> None:
        for cmd in self.decoder.feed(data):
            if cmd.is_response:
                continue
            self.server.requests.append(cmd)
            self.server.changed.set()
            resp = self.server.answer(cmd)
            if resp is not None and not cmd.is_oneway:
                assert self.transport is not None
                self.transport.write(encode_frame(resp))


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[RemotingCommand] = []
        self.conns: list[FakeBroker] = []
        self.changed = asyncio.Event()
        self.port = 0

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def answer(self, cmd: RemotingCommand) -> RemotingCommand | None:
        if cmd.code == RequestCode.GET_ROUTEINFO_BY_TOPIC:
            route = TopicRouteData((QueueData("fake", 1, 1, 6),), (BrokerData("C", "fake", {0: self.addr}),))
            return cmd.response(ResponseCode.SUCCESS, body=route.to_json())
        if cmd.code == RequestCode.SEND_MESSAGE_V2:
            ext = h.SendMessageResponseHeader(offset_msg_id("127.0.0.1", self.port, COMMIT_LOG_OFFSET), 0,
                                              QUEUE_OFFSET, transaction_id="TX-1").to_ext()
            return cmd.response(ResponseCode.SUCCESS, ext_fields=ext)
        return cmd.response(ResponseCode.SUCCESS)

    def of(self, code: int) -> list[RemotingCommand]:
        return [c for c in self.requests if c.code == code]

    async def wait(self, code: int, count: int = 1) -> list[RemotingCommand]:
        async def until() -> list[RemotingCommand]:
            while len(self.of(code)) < count:
                self.changed.clear()
                await self.changed.wait()
            return self.of(code)
        return await asyncio.wait_for(until(), WAIT_S)

    def check_back(self, group: str, uniq_key: str) -> None:
        """Send CHECK_TRANSACTION_STATE on the producer's connection, as a broker does."""
        record = MessageRecord(topic="TxTopic", body=b"pay", queue_offset=QUEUE_OFFSET, phys_offset=COMMIT_LOG_OFFSET,
                               sys_flag=0x4, store_host="127.0.0.1", store_port=self.port,
                               properties=format_properties({"TRAN_MSG": "true", "PGROUP": group,
                                                             "UNIQ_KEY": uniq_key}))
        header = h.CheckTransactionStateRequestHeader(QUEUE_OFFSET, COMMIT_LOG_OFFSET, msg_id=uniq_key,
                                                      transaction_id="TX-1")
        cmd = RemotingCommand.request(RequestCode.CHECK_TRANSACTION_STATE, header.to_ext(),
                                      bytes(encode_record(record)), oneway=True)
        conn = next(c for c in self.conns if c.transport is not None and not c.transport.is_closing()
                    and any(r.code == RequestCode.SEND_MESSAGE_V2 for r in self.requests))
        assert conn.transport is not None
        conn.transport.write(encode_frame(cmd))


async def _serve() -> tuple[FakeServer, asyncio.AbstractServer]:
    fake = FakeServer()
    server = await asyncio.get_running_loop().create_server(lambda: FakeBroker(fake), "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    return fake, server


class Listener:
    def __init__(self, execute: LocalTransactionState | Exception, check: LocalTransactionState) -> None:
        self.execute, self.check = execute, check
        self.checked: list[str] = []
        self.check_threads: list[str] = []

    def execute_local_transaction(self, msg, arg):  # type: ignore[no-untyped-def]
        assert arg == "order-9"
        if isinstance(self.execute, Exception):
            raise self.execute
        return self.execute

    def check_local_transaction(self, msg):  # type: ignore[no-untyped-def]
        self.checked.append(msg.msg_id)
        self.check_threads.append(threading.current_thread().name)
        return self.check


@pytest.mark.parametrize(("outcome", "commit_type"), [
    (LocalTransactionState.COMMIT_MESSAGE, 8), (LocalTransactionState.ROLLBACK_MESSAGE, 12),
    (LocalTransactionState.UNKNOW, 0), (RuntimeError("db down"), 0)])
def test_half_message_then_end_transaction(outcome, commit_type):
    async def main() -> None:
        fake, server = await _serve()
        try:
            listener = Listener(outcome, LocalTransactionState.COMMIT_MESSAGE)
            async with AsyncTransactionProducer("TxPG", listener, namesrv_addr=fake.addr) as p:
                msg = Message("TxTopic", b"pay", delay_level=3)
                result = await p.send_message_in_transaction(msg, "order-9")
                assert result.status is SendStatus.SEND_OK
                assert result.send_result.message_queue == MessageQueue("TxTopic", "fake", 0)
                (end,) = await fake.wait(RequestCode.END_TRANSACTION)
            send = fake.of(RequestCode.SEND_MESSAGE_V2)[0]
            header = h.SendMessageRequestHeader.from_command(send)
            props = parse_properties(header.properties or "")
            assert props["TRAN_MSG"] == "true" and props["PGROUP"] == "TxPG" and "DELAY" not in props
            assert header.sys_flag & 0x4
            eh = h.EndTransactionRequestHeader.from_command(end)
            assert end.is_oneway
            assert (eh.producer_group, eh.commit_log_offset, eh.tran_state_table_offset) == (
                "TxPG", COMMIT_LOG_OFFSET, QUEUE_OFFSET)
            assert eh.commit_or_rollback == commit_type and eh.from_transaction_check is False
            assert eh.msg_id == msg.uniq_key and eh.transaction_id == "TX-1"
            assert ("db down" in (end.remark or "")) == isinstance(outcome, Exception)
        finally:
            server.close()
    asyncio.run(main())


def test_check_back_is_answered_with_from_transaction_check():
    async def main() -> None:
        fake, server = await _serve()
        try:
            listener = Listener(LocalTransactionState.UNKNOW, LocalTransactionState.ROLLBACK_MESSAGE)
            async with AsyncTransactionProducer("TxPG2", listener, namesrv_addr=fake.addr) as p:
                msg = Message("TxTopic", b"pay")
                await p.send_message_in_transaction(msg, "order-9")
                await fake.wait(RequestCode.END_TRANSACTION)
                fake.check_back("TxPG2", msg.uniq_key or "")
                ends = await fake.wait(RequestCode.END_TRANSACTION, 2)
            eh = h.EndTransactionRequestHeader.from_command(ends[1])
            assert eh.from_transaction_check is True and eh.commit_or_rollback == 12
            assert (eh.commit_log_offset, eh.tran_state_table_offset) == (COMMIT_LOG_OFFSET, QUEUE_OFFSET)
            assert eh.msg_id == msg.uniq_key and eh.transaction_id == "TX-1" and eh.producer_group == "TxPG2"
            assert listener.checked == [msg.uniq_key]
            assert listener.check_threads[0].startswith("rocketpy-txcheck")   # not on the event loop
        finally:
            server.close()
    asyncio.run(main())


def test_blocking_producer_runs_the_local_transaction_on_the_callers_thread():
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def start() -> None:
        holder["fake"], holder["server"] = await _serve()
        ready.set()
    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(WAIT_S)
    fake = holder["fake"]
    assert isinstance(fake, FakeServer)
    seen: list[str] = []

    class L(Listener):
        def execute_local_transaction(self, msg, arg):  # type: ignore[no-untyped-def]
            seen.append(threading.current_thread().name)
            return LocalTransactionState.COMMIT_MESSAGE
    try:
        with TransactionProducer("TxPG3", L(LocalTransactionState.UNKNOW, LocalTransactionState.UNKNOW),
                                 namesrv_addr=fake.addr) as p:
            result = p.send_message_in_transaction(Message("TxTopic", b"pay"), "order-9")
        assert result.local_transaction_state is LocalTransactionState.COMMIT_MESSAGE
        assert seen == [threading.current_thread().name]
        ends = asyncio.run_coroutine_threadsafe(fake.wait(RequestCode.END_TRANSACTION), loop).result(WAIT_S)
        assert h.EndTransactionRequestHeader.from_command(ends[0]).commit_or_rollback == 8
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT_S)
