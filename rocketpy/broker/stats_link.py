"""The writer's line to control for its metrics: a blocking unix socket, written without waiting.

The writer is synchronous and must never block on control, so the socket is
non-blocking: a shipment that does not fit the socket buffer, or finds control
gone, is dropped (one second of flush-latency counts) and the socket reopened
at the next interval.
"""

from __future__ import annotations

import logging
import socket

from rocketpy.broker.internal import InternalCode
from rocketpy.protocol.remoting import RemotingCommand, encode_frame

log = logging.getLogger("rocketpy.broker.writer")


class StatsLink:
    def __init__(self, socket_name: str) -> None:
        self.socket_name = socket_name
        self._sock: socket.socket | None = None

    def ship(self, body: bytes | None) -> bool:
        if body is None:
            return True
        frame = encode_frame(RemotingCommand.request(InternalCode.STATS, None, body, oneway=True))
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(0.1)
                sock.connect(self.socket_name)
                sock.setblocking(False)
                self._sock = sock
            sent = self._sock.send(frame)
            if sent != len(frame):
                raise BlockingIOError("partial write")
            return True
        except OSError as exc:
            log.debug("metrics not shipped to control: %s", exc)
            self.close()
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
