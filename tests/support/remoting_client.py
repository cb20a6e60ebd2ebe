"""A tiny synchronous remoting client for tests: connect, send, read the matching response.

Every wait is bounded; a test never hangs on a silent server. The real SDK
client (rocketpy/client/) comes later and will replace this in new tests.
"""

from __future__ import annotations

import itertools
import socket
import time
from typing import Any

from rocketpy.protocol.codes import SerializeType
from rocketpy.protocol.remoting import (
    FLAG_ONEWAY,
    ExtValue,
    FrameDecoder,
    RemotingCommand,
    encode_frame,
)

TIMEOUT_S_DEFAULT = 5.0
_opaques = itertools.count(1)


class ConnectionClosed(Exception):
    """The server closed the connection."""


class RemotingTestClient:
    """One TCP connection to a NameServer or broker."""

    def __init__(self, host: str, port: int, *, timeout_s: float = TIMEOUT_S_DEFAULT) -> None:
        self.timeout_s = timeout_s
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = FrameDecoder()
        self.pending: list[RemotingCommand] = []

    def __enter__(self) -> RemotingTestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    @staticmethod
    def command(code: int, ext_fields: dict[str, Any] | None = None, body: bytes = b"", *,
                oneway: bool = False, version: int = 409, raw_ext: bool = False,
                serialize_type: SerializeType = SerializeType.JSON) -> RemotingCommand:
        """A request with a fresh opaque. Ext values are stringified the way Java peers send
        them, or with `raw_ext` kept as JSON numbers and booleans (what C++ and ali-ons send)."""
        ext: dict[str, ExtValue] = {}
        for key, value in (ext_fields or {}).items():
            if value is None:
                continue
            if raw_ext and isinstance(value, int | str):
                ext[key] = value
            else:
                ext[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return RemotingCommand(code=int(code), version=version, opaque=next(_opaques),
                               flag=FLAG_ONEWAY if oneway else 0, ext_fields=ext, body=body,
                               serialize_type=serialize_type)

    def send(self, cmd: RemotingCommand) -> None:
        self.sock.sendall(encode_frame(cmd))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, code: int, ext_fields: dict[str, Any] | None = None, body: bytes = b"", *,
                timeout_s: float | None = None, **kwargs: Any) -> RemotingCommand:
        """Send a request and return the response with the same opaque."""
        cmd = self.command(code, ext_fields, body, **kwargs)
        return self.call(cmd, timeout_s=timeout_s)

    def call(self, cmd: RemotingCommand, *, timeout_s: float | None = None) -> RemotingCommand:
        self.send(cmd)
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            frame = self.read_frame(deadline - time.monotonic())
            if frame.is_response and frame.opaque == cmd.opaque:
                return frame

    def oneway(self, code: int, ext_fields: dict[str, Any] | None = None, body: bytes = b"") -> None:
        self.send(self.command(code, ext_fields, body, oneway=True))

    def read_frame(self, timeout_s: float | None = None) -> RemotingCommand:
        """The next frame from the server; TimeoutError or ConnectionClosed when none comes."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the server in time")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError("no frame from the server in time") from None
            except ConnectionResetError:
                raise ConnectionClosed("connection reset by the server") from None
            if not data:
                raise ConnectionClosed("the server closed the connection")
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def wait_closed(self, timeout_s: float | None = None) -> bool:
        """True once the server has closed the connection (within the timeout)."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not data:
                return True
