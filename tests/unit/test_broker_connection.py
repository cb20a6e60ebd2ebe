"""The worker's client connection driven by a fake transport: framing, dispatch, errors, coalescing."""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

from rocketpy.broker.connection import ClientConnection, build_handler_table
from rocketpy.protocol.codes import RequestCode, ResponseCode, SerializeType
from rocketpy.protocol.headers import GetMaxOffsetRequestHeader
from rocketpy.protocol.remoting import FLAG_ONEWAY, FLAG_RESPONSE, RemotingCommand, encode_frame
from tests.unit.test_worker_rig import Client, run


class Handlers:
    def __init__(self) -> None:
        self.seen: list[RemotingCommand] = []

    def handle_get_max_offset(self, request: RemotingCommand, conn: ClientConnection) -> RemotingCommand:
        header = GetMaxOffsetRequestHeader.from_command(request)    # HeaderError when a field is missing
        self.seen.append(request)
        return request.response(ResponseCode.SUCCESS, None, {"offset": str(header.queue_id * 10)})

    def handle_get_min_offset(self, request: RemotingCommand, conn: ClientConnection) -> None:
        raise RuntimeError("boom")

    async def _later(self, request: RemotingCommand) -> RemotingCommand:
        await asyncio.sleep(0.01)
        return request.response(ResponseCode.SUCCESS, "later")

    def handle_heart_beat(self, request: RemotingCommand, conn: ClientConnection) -> Any:
        return self._later(request)

    def handle_pull_message(self, request: RemotingCommand, conn: ClientConnection) -> None:
        self.seen.append(request)      # kept: answered by the test through conn.respond


class Host:
    def __init__(self) -> None:
        self.handlers_obj = Handlers()
        self.handlers = build_handler_table(self.handlers_obj)
        self.made: list[ClientConnection] = []
        self.lost: list[ClientConnection] = []

    def on_connection_made(self, conn: ClientConnection) -> None:
        self.made.append(conn)

    def on_connection_lost(self, conn: ClientConnection) -> None:
        self.lost.append(conn)


def max_offset(client: Client, queue_id: Any = 1, **kw: Any) -> RemotingCommand:
    return client.request(RequestCode.GET_MAX_OFFSET, {"topic": "T", "queueId": queue_id}, **kw)


def test_split_and_coalesced_frames_are_answered_in_one_write_per_turn() -> None:
    async def main() -> None:
        host = Host()
        c = Client(host)
        assert host.made == [c.conn] and c.conn.peer == "10.1.2.3:5555"
        one, two, three = max_offset(c, 1), max_offset(c, 2), max_offset(c, 3)
        data = encode_frame(one)
        for i in range(len(data)):                      # one byte at a time
            c.conn.data_received(data[i:i + 1])
        (r1,) = await c.responses(1)
        assert (r1.opaque, r1.code, r1.ext_fields, r1.flag) == (one.opaque, 0, {"offset": "10"}, FLAG_RESPONSE)
        writes_before = len(c.transport.writes)
        c.send(two, three)                              # two frames in one read
        got = await c.responses(2)
        assert [r.ext_fields["offset"] for r in got] == ["20", "30"]
        assert len(c.transport.writes) == writes_before + 1, "responses of one turn go out in one write"
        assert c.conn.language == "JAVA" and not c.transport.closed
    run(main())


def test_numeric_ext_values_are_accepted_and_answered_as_strings() -> None:
    async def main() -> None:
        c = Client(Host())
        r = await c.call(max_offset(c, 7, language="CPP", version=63))
        assert r.ext_fields == {"offset": "70"} and isinstance(r.ext_fields["offset"], str)
        assert c.conn.language == "CPP" and c.conn.version == 63
    run(main())


def test_unknown_code_oneway_header_error_and_handler_failure() -> None:
    async def main() -> None:
        host = Host()
        c = Client(host)
        r = await c.call(c.request(9999))
        assert r.code == ResponseCode.REQUEST_CODE_NOT_SUPPORTED and r.remark == " request type 9999 not supported"
        c.send(max_offset(c, flag=FLAG_ONEWAY))         # oneway: served, never answered
        await c.nothing()
        assert len(host.handlers_obj.seen) == 1
        bad = c.request(RequestCode.GET_MAX_OFFSET, {"topic": "T"})
        r = await c.call(bad)
        assert r.code == ResponseCode.SYSTEM_ERROR and "queueId" in (r.remark or "")
        r = await c.call(c.request(RequestCode.GET_MIN_OFFSET, {"topic": "T", "queueId": "0"}))
        assert r.code == ResponseCode.SYSTEM_ERROR and "boom" in (r.remark or "")
        r = await c.call(max_offset(c, 4))              # the connection stays
        assert r.code == ResponseCode.SUCCESS and not c.transport.closed
    run(main())


def test_async_and_deferred_handlers_answer_later() -> None:
    async def main() -> None:
        host = Host()
        c = Client(host)
        r = await c.call(c.request(RequestCode.HEART_BEAT))
        assert r.remark == "later"
        pull = c.request(RequestCode.PULL_MESSAGE)
        c.send(pull)
        await c.nothing()
        c.conn.respond(pull, pull.response(ResponseCode.PULL_NOT_FOUND, "OFFSET_OVERFLOW_ONE"))
        (r,) = await c.responses(1)
        assert r.opaque == pull.opaque and r.code == ResponseCode.PULL_NOT_FOUND
    run(main())


def test_the_response_uses_the_request_serialization() -> None:
    async def main() -> None:
        c = Client(Host())
        r = await c.call(max_offset(c, 2, serialize_type=SerializeType.ROCKETMQ))
        assert r.serialize_type == SerializeType.ROCKETMQ and r.ext_fields == {"offset": "20"}
    run(main())


def test_garbage_closes_the_connection_with_one_log_line(caplog) -> None:
    async def main() -> None:
        host = Host()
        c = Client(host)
        with caplog.at_level(logging.WARNING, "rocketpy.broker.worker"):
            c.conn.data_received(struct.pack(">i", 2) + b"xx")
        assert c.transport.closed
        await asyncio.sleep(0)
        assert host.lost == [c.conn]
        lines = [r for r in caplog.records if "closing connection" in r.getMessage()]
        assert len(lines) == 1 and "10.1.2.3:5555" in lines[0].getMessage()
    run(main())


def test_oversized_prefix_closes_before_buffering() -> None:
    async def main() -> None:
        c = Client(Host())
        c.conn.data_received(struct.pack(">i", 16 * 1024 * 1024))
        assert c.transport.closed and c.conn.decoder.buffered_size == 0
    run(main())


def test_frames_before_a_bad_one_are_answered_then_the_connection_closes() -> None:
    async def main() -> None:
        c = Client(Host())
        c.conn.data_received(encode_frame(max_offset(c, 5)) + struct.pack(">i", 1) + b"\x00")
        (r,) = await c.responses(1)
        assert r.ext_fields == {"offset": "50"} and c.transport.closed
    run(main())


def test_writes_after_close_are_dropped_and_backpressure_pauses_reading() -> None:
    async def main() -> None:
        c = Client(Host())
        c.conn.pause_writing()
        assert not c.transport.reading
        c.conn.resume_writing()
        assert c.transport.reading
        c.conn.close()
        await asyncio.sleep(0)
        assert c.conn.closed
        c.conn.write_frame(b"late")
        await asyncio.sleep(0)
        assert b"late" not in b"".join(c.transport.writes)
    run(main())
