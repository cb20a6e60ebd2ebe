"""A capturing stub that plays NameServer and broker for third-party RocketMQ clients.

It answers just enough of the remoting protocol (reference/remoting-protocol.md)
for an unmodified client to route, send, heartbeat, rebalance and pull, and it
records every frame it receives, raw and with its 4-byte length prefix, as
``<seq>_<code>.bin`` in a directory. Golden vectors (tests/vectors/) are cut
from those files; tests use the in-memory record and ``wait_for``.

Self-contained on purpose: it runs in the compat virtualenvs, where rocketpy is
not installed, so it imports nothing from rocketpy.

    NameServer listener ----+                  +---- broker listener
      (105 route query)     |  one handler,    |   (10, 11, 14, 15, 30, 34, 35, 38, ...)
                            +-> records every  <-+
                                frame, answers
                                with JSON headers,
                                string extFields,
                                flag=1, echoed opaque

Responses follow the rules the C++ wheel needs (real-clients.md): JSON header
only, every extFields value a JSON string, the response bit set, the request's
opaque echoed, the full SEND and PULL response headers always present, route
JSON with quoted ``brokerAddrs`` keys.

Run by hand: ``python tests/support/capture_server.py --out /tmp/frames``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("rocketpy.tests.capture_server")

FRAME_MAX_BYTES = 16 * 1024 * 1024          # reference §1: whole frame incl. the length prefix
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")

# Request codes (reference §6) this stub answers.
SEND_MESSAGE = 10
PULL_MESSAGE = 11
QUERY_CONSUMER_OFFSET = 14
UPDATE_CONSUMER_OFFSET = 15
SEARCH_OFFSET_BY_TIMESTAMP = 29
GET_MAX_OFFSET = 30
GET_MIN_OFFSET = 31
GET_EARLIEST_MSG_STORETIME = 32
HEART_BEAT = 34
UNREGISTER_CLIENT = 35
CONSUMER_SEND_MSG_BACK = 36
GET_CONSUMER_LIST_BY_GROUP = 38
LOCK_BATCH_MQ = 41
UNLOCK_BATCH_MQ = 42
GET_ROUTEINFO_BY_TOPIC = 105
SEND_MESSAGE_V2 = 310
SEND_BATCH_MESSAGE = 320

# Response codes (reference §7).
SUCCESS = 0
SYSTEM_ERROR = 1
REQUEST_CODE_NOT_SUPPORTED = 3
PULL_NOT_FOUND = 19
QUERY_NOT_FOUND = 22

RESPONSE_FLAG = 0x1
ONEWAY_FLAG = 0x2
PULL_SUSPEND_FLAG = 0x2
SERVER_VERSION = 409                         # V4_9_8, what a Java 4.9.8 server stamps

MESSAGE_MAGIC = 0xDAA320A7
STORED_PHYS_OFFSET_BASE = 4096               # CommitLog offset of the first stub message


@dataclasses.dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One received frame. ``raw`` includes the 4-byte length prefix."""

    seq: int
    role: str                   # "namesrv" or "broker": which listener received it
    peer: str
    raw: bytes
    serialize_type: int         # high byte of the header-length word
    header: dict[str, Any]      # parsed JSON header ({} if not JSON)
    body: bytes
    path: Path | None

    @property
    def code(self) -> int:
        return int(self.header.get("code", -1))

    @property
    def opaque(self) -> int:
        return int(self.header.get("opaque", 0))

    @property
    def flag(self) -> int:
        return int(self.header.get("flag", 0))

    @property
    def ext(self) -> dict[str, Any]:
        ext = self.header.get("extFields")
        return ext if isinstance(ext, dict) else {}

    def ext_str(self, key: str) -> str | None:
        """The value as a Java peer would read it (numbers in decimal, booleans lower case)."""
        value = self.ext.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def body_json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class FrameError(Exception):
    """A frame this stub cannot parse; the connection is closed."""


def split_frame(payload: bytes) -> tuple[int, dict[str, Any], bytes]:
    """Minimal parse of a frame without its length prefix: (serialize_type, header, body).

    Frame (reference §2): int32 total | int32 (type << 24 | H) | header H bytes | body.
    A ROCKETMQ binary header (type 1) is reduced to code/language/version/opaque/flag.
    """
    if len(payload) < 4:
        raise FrameError(f"frame of {len(payload)} bytes has no header-length word")
    (word,) = _UINT32.unpack_from(payload, 0)
    serialize_type, header_len = word >> 24, word & 0xFFFFFF
    if header_len > len(payload) - 4:
        raise FrameError(f"header length {header_len} exceeds frame length {len(payload)}")
    header_bytes = payload[4 : 4 + header_len]
    body = payload[4 + header_len :]
    if serialize_type == 0:
        try:
            header = json.loads(header_bytes.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise FrameError(f"JSON header does not parse: {exc}") from exc
        if not isinstance(header, dict):
            raise FrameError("JSON header is not an object")
        return serialize_type, header, body
    if serialize_type == 1 and header_len >= 13:
        code, language, version, opaque, flag = struct.unpack_from(">hBhii", header_bytes, 0)
        return serialize_type, {
            "code": code, "language": language, "version": version, "opaque": opaque, "flag": flag,
        }, body
    raise FrameError(f"unknown serialize type {serialize_type}")


def encode_response(
    code: int,
    opaque: int,
    ext_fields: dict[str, Any] | None = None,
    body: bytes = b"",
    remark: str | None = None,
) -> bytes:
    """A JSON-header response frame, length prefix included; every ext value a string."""
    header: dict[str, Any] = {
        "code": code,
        "extFields": {k: _java_str(v) for k, v in (ext_fields or {}).items()},
        "flag": RESPONSE_FLAG,
        "language": "JAVA",
        "opaque": opaque,
        "serializeTypeCurrentRPC": "JSON",
        "version": SERVER_VERSION,
    }
    if remark is not None:
        header["remark"] = remark
    header_bytes = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return (
        _INT32.pack(4 + len(header_bytes) + len(body))
        + _INT32.pack(len(header_bytes))
        + header_bytes
        + body
    )


def _java_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_properties(props: dict[str, str]) -> bytes:
    """Properties string (reference §10.1): name \\x01 value \\x02, repeated."""
    return "".join(f"{k}\x01{v}\x02" for k, v in props.items()).encode("utf-8")


def encode_stored_message(
    *,
    topic: str,
    body: bytes,
    queue_id: int,
    queue_offset: int,
    phys_offset: int,
    props: dict[str, str],
    born_host: tuple[str, int] = ("127.0.0.1", 50000),
    store_host: tuple[str, int] = ("127.0.0.1", 10911),
    born_timestamp_ms: int = 1_700_000_000_000,
    store_timestamp_ms: int = 1_700_000_000_001,
) -> bytes:
    """One MessageDecoder v1 record with IPv4 hosts (storage-format.md §3), as a pull body holds it."""
    topic_b = topic.encode("utf-8")
    props_b = encode_properties(props)
    total = 91 + len(body) + len(topic_b) + len(props_b)
    return b"".join([
        struct.pack(
            ">iIiiiqqiq",
            total, MESSAGE_MAGIC, zlib.crc32(body) & 0x7FFFFFFF, queue_id, 0,
            queue_offset, phys_offset, 0, born_timestamp_ms,
        ),
        socket.inet_aton(born_host[0]), struct.pack(">i", born_host[1]),
        struct.pack(">q", store_timestamp_ms),
        socket.inet_aton(store_host[0]), struct.pack(">i", store_host[1]),
        struct.pack(">iqi", 0, 0, len(body)), body,
        struct.pack(">b", len(topic_b)), topic_b,
        struct.pack(">h", len(props_b)), props_b,
    ])


class CaptureServer:
    """NameServer + broker stub on two ephemeral loopback ports, run in a background thread.

    ``pull_messages``: bodies delivered once each, in order, on queue 0 of any
    topic that does not start with ``%RETRY%`` (queue offsets 0, 1, ...).
    ``query_offset_found``: False answers QUERY_CONSUMER_OFFSET with 22
    (QUERY_NOT_FOUND), which makes the C++ client ask GET_MAX_OFFSET.
    ``pull_hold_ms``: how long a pull with the SUSPEND bit is held before 19.
    """

    def __init__(
        self,
        out_dir: Path | str | None = None,
        *,
        host: str = "127.0.0.1",
        queue_nums: int = 4,
        broker_name: str = "broker-a",
        pull_hold_ms: int = 1000,
        query_offset_found: bool = True,
        pull_messages: list[tuple[bytes, dict[str, str]]] | None = None,
    ) -> None:
        assert host.startswith("127."), "the capture server binds loopback only"
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.host = host
        self.queue_nums = queue_nums
        self.broker_name = broker_name
        self.pull_hold_ms = pull_hold_ms
        self.query_offset_found = query_offset_found
        self._pull_messages = list(pull_messages or [])
        self._frames: list[CapturedFrame] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._consumers: dict[str, set[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._by_peer: dict[str, asyncio.StreamWriter] = {}
        self._server_opaque = 1_000_000             # server-initiated requests, apart from clients'
        self.namesrv_port = 0
        self.broker_port = 0
        self.errors: list[str] = []

    # --- lifecycle -------------------------------------------------------

    @property
    def namesrv_addr(self) -> str:
        return f"{self.host}:{self.namesrv_port}"

    @property
    def broker_addr(self) -> str:
        return f"{self.host}:{self.broker_port}"

    def start(self) -> CaptureServer:
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:           # reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._close_all())
                loop.close()

        self._thread = threading.Thread(target=run, name="capture-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("capture server did not start within 10 s")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _listen(self) -> None:
        ns = await asyncio.start_server(
            lambda r, w: self._serve(r, w, "namesrv"), self.host, 0, reuse_address=True)
        br = await asyncio.start_server(
            lambda r, w: self._serve(r, w, "broker"), self.host, 0, reuse_address=True)
        self._servers = [ns, br]
        self.namesrv_port = ns.sockets[0].getsockname()[1]
        self.broker_port = br.sockets[0].getsockname()[1]

    async def _close_all(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        pending = [t for t in asyncio.all_tasks(self._loop) if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # --- what tests read -------------------------------------------------

    @property
    def frames(self) -> list[CapturedFrame]:
        with self._cond:
            return list(self._frames)

    def wait_for(
        self, predicate: Callable[[CapturedFrame], bool], timeout_s: float,
    ) -> CapturedFrame | None:
        """The first recorded frame matching ``predicate``, waiting up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for frame in self._frames:
                    if predicate(frame):
                        return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def wait_for_code(self, code: int, timeout_s: float) -> CapturedFrame | None:
        return self.wait_for(lambda f: f.code == code, timeout_s)

    def send_request(self, peer: str, code: int, ext_fields: dict[str, Any] | None = None,
                     body: bytes = b"") -> int:
        """Send a server-initiated request (e.g. GET_CONSUMER_RUNNING_INFO, 307) down the
        connection of ``peer`` (a CapturedFrame.peer); returns its opaque. The client's
        answer is recorded like any frame, with the response flag and this opaque."""
        loop = self._loop
        assert loop is not None, "server not started"
        with self._cond:
            self._server_opaque += 1
            opaque = self._server_opaque
        header = {"code": code, "extFields": {k: _java_str(v) for k, v in (ext_fields or {}).items()},
                  "flag": 0, "language": "JAVA", "opaque": opaque,
                  "serializeTypeCurrentRPC": "JSON", "version": SERVER_VERSION}
        header_bytes = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
        frame = (_INT32.pack(4 + len(header_bytes) + len(body)) + _INT32.pack(len(header_bytes))
                 + header_bytes + body)

        def write() -> None:
            writer = self._by_peer.get(peer)
            if writer is None or writer.is_closing():
                self._error(f"send_request: no open connection from {peer}")
                return
            writer.write(frame)

        loop.call_soon_threadsafe(write)
        return opaque

    # --- connection ------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, role: str) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        self._writers.add(writer)
        self._by_peer[peer] = writer
        held: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    prefix = await reader.readexactly(4)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                (total,) = _INT32.unpack(prefix)
                if total < 4 or total + 4 > FRAME_MAX_BYTES:
                    self._error(f"{peer}: bad frame length {total}; closing")
                    return
                try:
                    payload = await reader.readexactly(total)
                except (asyncio.IncompleteReadError, ConnectionError):
                    self._error(f"{peer}: connection closed inside a frame of {total} bytes")
                    return
                try:
                    serialize_type, header, body = split_frame(payload)
                except FrameError as exc:
                    self._error(f"{peer}: {exc}; closing")
                    return
                frame = self._record(role, peer, prefix + payload, serialize_type, header, body)
                if frame.flag & RESPONSE_FLAG:
                    continue                         # a client's answer to a server request
                self._dispatch(frame, writer, held)
        finally:
            for task in held:
                task.cancel()
            self._writers.discard(writer)
            self._by_peer.pop(peer, None)
            writer.close()

    def _record(self, role: str, peer: str, raw: bytes, serialize_type: int,
                header: dict[str, Any], body: bytes) -> CapturedFrame:
        with self._cond:
            seq = self._seq
            self._seq += 1
            path = None
            if self.out_dir is not None:
                path = self.out_dir / f"{seq:04d}_{header.get('code', 'x')}.bin"
                path.write_bytes(raw)
            frame = CapturedFrame(seq, role, peer, raw, serialize_type, header, body, path)
            self._frames.append(frame)
            self._cond.notify_all()
        log.debug("frame %d %s code=%s from %s", seq, role, frame.code, peer)
        return frame

    def _error(self, text: str) -> None:
        log.warning("%s", text)
        with self._cond:
            self.errors.append(text)
            self._cond.notify_all()

    def _dispatch(self, frame: CapturedFrame, writer: asyncio.StreamWriter,
                  held: set[asyncio.Task[None]]) -> None:
        if frame.code == PULL_MESSAGE and self._should_hold(frame):
            task = asyncio.ensure_future(self._answer_held_pull(frame, writer))
            held.add(task)
            task.add_done_callback(held.discard)
            return
        response = self._respond(frame)
        if response is None or frame.flag & ONEWAY_FLAG:
            return
        writer.write(response)

    # --- handlers --------------------------------------------------------

    def _respond(self, f: CapturedFrame) -> bytes | None:
        code, opaque = f.code, f.opaque
        if code == GET_ROUTEINFO_BY_TOPIC:
            return encode_response(SUCCESS, opaque, body=self._route_body())
        if code in (SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE):
            queue_id = f.ext_str("queueId") or f.ext_str("e") or "0"
            return encode_response(SUCCESS, opaque, {
                "msgId": "7F00000100002A9F0000000000000000",
                "queueId": queue_id if not queue_id.startswith("-") else "0",
                "queueOffset": "0",
                "MSG_REGION": "DefaultRegion",
                "TRACE_ON": "true",
            })
        if code == PULL_MESSAGE:
            return self._pull_response(f)
        if code == QUERY_CONSUMER_OFFSET:
            if self.query_offset_found or (f.ext_str("topic") or "").startswith("%RETRY%"):
                return encode_response(SUCCESS, opaque, {"offset": "0"})
            return encode_response(QUERY_NOT_FOUND, opaque,
                                   remark="Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first")
        if code in (GET_MAX_OFFSET, GET_MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP):
            return encode_response(SUCCESS, opaque, {"offset": "0"})
        if code == GET_EARLIEST_MSG_STORETIME:
            return encode_response(SUCCESS, opaque, {"timestamp": "0"})
        if code == HEART_BEAT:
            self._note_heartbeat(f)
            return encode_response(SUCCESS, opaque)
        if code == GET_CONSUMER_LIST_BY_GROUP:
            group = f.ext_str("consumerGroup") or ""
            with self._cond:
                ids = sorted(self._consumers.get(group, ()))
            if not ids:
                return encode_response(SYSTEM_ERROR, opaque, remark=f"no consumer for this group, {group}")
            return encode_response(SUCCESS, opaque, body=json.dumps({"consumerIdList": ids}).encode())
        if code == LOCK_BATCH_MQ:
            try:
                mq_set = f.body_json().get("mqSet", [])
            except ValueError:
                mq_set = []
            return encode_response(SUCCESS, opaque, body=json.dumps({"lockOKMQSet": mq_set}).encode())
        if code in (UPDATE_CONSUMER_OFFSET, UNREGISTER_CLIENT, CONSUMER_SEND_MSG_BACK, UNLOCK_BATCH_MQ):
            return encode_response(SUCCESS, opaque)
        return encode_response(REQUEST_CODE_NOT_SUPPORTED, opaque,
                               remark=f" request type {code} not supported")

    def _route_body(self) -> bytes:
        route = {
            "brokerDatas": [{
                "brokerAddrs": {"0": self.broker_addr},
                "brokerName": self.broker_name,
                "cluster": "DefaultCluster",
            }],
            "filterServerTable": {},
            "queueDatas": [{
                "brokerName": self.broker_name,
                "perm": 6,
                "readQueueNums": self.queue_nums,
                "topicSysFlag": 0,
                "writeQueueNums": self.queue_nums,
            }],
        }
        return json.dumps(route, separators=(",", ":")).encode("utf-8")

    def _note_heartbeat(self, f: CapturedFrame) -> None:
        try:
            data = f.body_json()
        except ValueError:
            return
        client_id = data.get("clientID")
        if not client_id:
            return
        with self._cond:
            for consumer in data.get("consumerDataSet") or []:
                self._consumers.setdefault(consumer.get("groupName", ""), set()).add(client_id)

    def _messages_for(self, topic: str, queue_id: int, queue_offset: int, max_nums: int) -> list[bytes]:
        if topic.startswith("%RETRY%") or queue_id != 0:
            return []
        out: list[bytes] = []
        phys_offset = STORED_PHYS_OFFSET_BASE
        for i, (body, props) in enumerate(self._pull_messages):
            # The C++ client sends CONSUMER_SEND_MSG_BACK to the record's store host,
            # so it must be this stub's broker address.
            record = encode_stored_message(
                topic=topic, body=body, queue_id=0, queue_offset=i, phys_offset=phys_offset,
                props=props, store_host=(self.host, self.broker_port))
            if i >= queue_offset and len(out) < max_nums:
                out.append(record)
            phys_offset += len(record)
        return out

    def _queue_max(self, topic: str, queue_id: int) -> int:
        if topic.startswith("%RETRY%") or queue_id != 0:
            return 0
        return len(self._pull_messages)

    def _should_hold(self, f: CapturedFrame) -> bool:
        sys_flag = int(f.ext_str("sysFlag") or 0)
        if not sys_flag & PULL_SUSPEND_FLAG or self.pull_hold_ms <= 0:
            return False
        return not self._messages_for(*self._pull_args(f))

    def _pull_args(self, f: CapturedFrame) -> tuple[str, int, int, int]:
        return (f.ext_str("topic") or "", int(f.ext_str("queueId") or 0),
                int(f.ext_str("queueOffset") or 0), int(f.ext_str("maxMsgNums") or 32))

    def _pull_response(self, f: CapturedFrame) -> bytes:
        topic, queue_id, queue_offset, max_nums = self._pull_args(f)
        records = self._messages_for(topic, queue_id, queue_offset, max_nums)
        max_offset = self._queue_max(topic, queue_id)
        if records:
            return encode_response(SUCCESS, f.opaque, {
                "suggestWhichBrokerId": "0", "nextBeginOffset": str(queue_offset + len(records)),
                "minOffset": "0", "maxOffset": str(max_offset),
            }, body=b"".join(records), remark="FOUND")
        next_offset = min(queue_offset, max_offset) if queue_offset >= 0 else 0
        return encode_response(PULL_NOT_FOUND, f.opaque, {
            "suggestWhichBrokerId": "0", "nextBeginOffset": str(next_offset),
            "minOffset": "0", "maxOffset": str(max_offset),
        }, remark="OFFSET_OVERFLOW_ONE")

    async def _answer_held_pull(self, f: CapturedFrame, writer: asyncio.StreamWriter) -> None:
        suspend_ms = int(f.ext_str("suspendTimeoutMillis") or 0)
        await asyncio.sleep(min(self.pull_hold_ms, max(suspend_ms, 0)) / 1000)
        if not writer.is_closing():
            writer.write(self._pull_response(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory for <seq>_<code>.bin files")
    parser.add_argument("--queue-nums", type=int, default=4)
    parser.add_argument("--pull-hold-ms", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(message)s")
    server = CaptureServer(args.out, queue_nums=args.queue_nums, pull_hold_ms=args.pull_hold_ms).start()
    print(f"namesrv {server.namesrv_addr} broker {server.broker_addr}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
