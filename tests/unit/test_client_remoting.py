"""The asyncio remoting client against an in-process loopback peer: opaque matching out of
order, timeouts, oneway, server-initiated requests, a malformed frame, a lost connection."""

from __future__ import annotations

import asyncio

import pytest

from rocketpy.client.remoting import RemotingClient, connect
from rocketpy.errors import RemotingConnectError, RemotingTimeoutError
from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.remoting import FrameDecoder, RemotingCommand, encode_frame


class Peer:
    """A scripted server: records requests, answers by a rule, can push its own requests."""

    def __init__(self) -> None:
        self.received: list[RemotingCommand] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.delays: dict[int, float] = {}
        self.silent: set[int] = set()
        self.client_answers: list[RemotingCommand] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            for cmd in decoder.feed(data):
                if cmd.is_response:
                    self.client_answers.append(cmd)
                    continue
                self.received.append(cmd)
                if cmd.is_oneway or cmd.code in self.silent:
                    continue
                asyncio.get_running_loop().create_task(self._answer(writer, cmd))

    async def _answer(self, writer: asyncio.StreamWriter, cmd: RemotingCommand) -> None:
        await asyncio.sleep(self.delays.get(cmd.code, 0))
        writer.write(encode_frame(cmd.response(ResponseCode.SUCCESS, ext_fields={"echo": str(cmd.code)})))


async def _serve(peer: Peer):
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"127.0.0.1:{port}"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_responses_match_requests_out_of_order():
    async def main():
        peer = Peer()
        peer.delays = {11: 0.2}
        server, addr = await _serve(peer)
        conn = await connect(addr)
        slow = asyncio.create_task(conn.request(RemotingCommand.request(11), 2000))
        fast = await conn.request(RemotingCommand.request(14), 2000)
        assert fast.ext_str("echo") == "14" and not slow.done()
        assert (await slow).ext_str("echo") == "11"
        conn.close()
        server.close()

    run(main())


def test_timeout_and_oneway():
    async def main():
        peer = Peer()
        peer.silent = {30}
        server, addr = await _serve(peer)
        conn = await connect(addr)
        with pytest.raises(RemotingTimeoutError):
            await conn.request(RemotingCommand.request(30), 100)
        conn.oneway(RemotingCommand.request(15, {"commitOffset": 5}))
        reply = await conn.request(RemotingCommand.request(14), 2000)
        assert reply.ext_str("echo") == "14"
        assert [c.code for c in peer.received] == [30, 15, 14]
        assert peer.received[1].is_oneway
        conn.close()
        server.close()

    run(main())


def test_server_initiated_request_reaches_the_handler_and_gets_answered():
    async def main():
        peer = Peer()
        server, addr = await _serve(peer)
        seen: list[int] = []

        async def handler(conn, cmd):
            seen.append(cmd.code)
            return None if cmd.is_oneway else cmd.response(ResponseCode.SUCCESS)

        conn = await connect(addr, handler=handler)
        await conn.request(RemotingCommand.request(34), 2000)  # peer now knows the connection
        push = RemotingCommand.request(307, opaque=77)
        peer.writers[0].write(encode_frame(push))
        notify = RemotingCommand.request(40, {"consumerGroup": "g"}, oneway=True)
        peer.writers[0].write(encode_frame(notify))
        for _ in range(200):
            if seen == [307, 40] and peer.client_answers:
                break
            await asyncio.sleep(0.01)
        assert seen == [307, 40]
        assert [(a.opaque, a.code) for a in peer.client_answers] == [(77, 0)]
        conn.close()
        server.close()

    run(main())


def test_malformed_frame_and_lost_connection_fail_pending_requests():
    async def main():
        peer = Peer()
        peer.silent = {11}
        server, addr = await _serve(peer)
        client = RemotingClient()
        pending = asyncio.create_task(client.invoke(addr, RemotingCommand.request(11), 5000))
        for _ in range(200):
            if peer.writers:
                break
            await asyncio.sleep(0.01)
        peer.writers[0].write(b"\x7f\xff\xff\xff")  # a length prefix far over the limit
        with pytest.raises(RemotingConnectError, match="malformed"):
            await pending
        # the pool opens a fresh connection on the next call
        reply = await client.invoke(addr, RemotingCommand.request(14), 2000)
        assert reply.ext_str("echo") == "14"
        await client.close()
        server.close()
        with pytest.raises(RemotingConnectError):
            await connect("127.0.0.1:1", timeout_ms=500)

    run(main())
