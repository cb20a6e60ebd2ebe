"""Progress of long work: a redrawn line with rate and ETA on a terminal, quiet in scripts.

    with Progress("verify", total=n_bytes, unit="B") as p:
        for chunk in work:
            ...
            p.advance(len(chunk))

On a terminal (the stream is a tty) the line is redrawn at most every
PROGRESS_INTERVAL_S; elsewhere nothing is printed unless `log` is given, which
then gets one line every PROGRESS_LOG_INTERVAL_S (store recovery logs its
progress this way, since it runs under systemd). Progress never raises: a
closed stream stops the display, not the work.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import IO

from rocketpy import limits

_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human(value: float, unit: str) -> str:
    """1536 B -> '1.5 KiB'; other units get k/M suffixes (12.3k msgs)."""
    if unit == "B":
        for name in _BINARY_UNITS:
            if abs(value) < 1024 or name == _BINARY_UNITS[-1]:
                return f"{value:.1f} {name}" if name != "B" else f"{value:.0f} B"
            value /= 1024
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{suffix} {unit}"
    return f"{value:.0f} {unit}" if float(value).is_integer() else f"{value:.1f} {unit}"


def format_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """A progress meter (see the module docstring). `total` may be None (no percentage, no ETA)."""

    def __init__(self, label: str, total: float | None = None, *, unit: str = "", stream: IO[str] | None = None,
                 log: logging.Logger | None = None, clock: Callable[[], float] = time.monotonic,
                 live: bool | None = None) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.log = log
        self.clock = clock
        self.done = 0.0
        self.started = clock()
        self._last_draw = float("-inf")
        self._last_log = self.started
        self._drawn = False
        if live is None:
            try:
                live = self.stream.isatty()
            except (AttributeError, ValueError):
                live = False
        self.live = live

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        rate = self.rate()
        if self.total is None or rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / rate)

    def line(self) -> str:
        parts = [self.label]
        if self.total:
            parts.append(f"{human(self.done, self.unit)} / {human(self.total, self.unit)} "
                         f"({100 * min(1.0, self.done / self.total):.0f}%)")
        else:
            parts.append(human(self.done, self.unit))
        parts.append(f"{human(self.rate(), self.unit)}/s")
        eta = self.eta_s()
        if eta is not None:
            parts.append(f"ETA {format_eta(eta)}")
        return "  ".join(parts)

    def advance(self, amount: float = 1) -> None:
        self.done += amount
        self._maybe_show()

    def update(self, done: float) -> None:
        """Set the amount done (for work that knows its position, e.g. a byte offset)."""
        self.done = done
        self._maybe_show()

    def report(self, done: float, total: float) -> None:
        """A store progress callback (store verify, recovery): position and a total that may grow."""
        self.total = total
        self.update(done)

    def _maybe_show(self) -> None:
        if not self.live and self.log is None:
            return
        now = self.clock()
        if self.live and now - self._last_draw >= limits.PROGRESS_INTERVAL_S:
            self._last_draw = now
            self._write("\r\x1b[2K" + self.line())
            self._drawn = True
        elif not self.live and self.log is not None and now - self._last_log >= limits.PROGRESS_LOG_INTERVAL_S:
            self._last_log = now
            self.log.info("%s", self.line())

    def clear(self) -> None:
        """Erase the drawn line, so another line can be printed to the terminal; the next update redraws."""
        if self.live and self._drawn:
            self._write("\r\x1b[2K")
            self._drawn = False
            self._last_draw = float("-inf")

    def finish(self) -> None:
        if self.live and self._drawn:
            self._write("\r\x1b[2K" + self.line() + "\n")
            self._drawn = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.live = False
