"""A minimal HTTP/1.0 server for Prometheus scrapes: GET /metrics, nothing else.

Stdlib asyncio only (no new dependency). Each request is bounded in size and
time; the connection closes after one response, which every scraper accepts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from rocketpy import limits
from rocketpy.metrics.prom import CONTENT_TYPE

log = logging.getLogger("rocketpy.metrics")


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + body


class MetricsServer:
    """Serves `render()` at /metrics on host:port."""

    def __init__(self, host: str, port: int, render: Callable[[], str]) -> None:
        self.host = host
        self.port = port
        self.render = render
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except TimeoutError:
                pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), limits.METRICS_HTTP_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        if len(head) > limits.METRICS_HTTP_REQUEST_SIZE_MAX:
            writer.write(_response("431 Request Header Fields Too Large", b"request too large\n"))
        else:
            parts = head.split(b"\r\n", 1)[0].split()
            if len(parts) < 2 or parts[0] not in (b"GET", b"HEAD"):
                writer.write(_response("405 Method Not Allowed", b"only GET /metrics\n"))
            elif parts[1].split(b"?", 1)[0] != b"/metrics":
                writer.write(_response("404 Not Found", b"the metrics are at /metrics\n"))
            else:
                try:
                    body = self.render().encode()
                except Exception as exc:  # noqa: BLE001 - a broken gauge must not kill the endpoint
                    log.exception("rendering metrics failed")
                    writer.write(_response("500 Internal Server Error", f"{type(exc).__name__}: {exc}\n".encode()))
                else:
                    writer.write(_response("200 OK", b"" if parts[0] == b"HEAD" else body, CONTENT_TYPE))
        try:
            await asyncio.wait_for(writer.drain(), limits.METRICS_HTTP_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            pass
        writer.close()
