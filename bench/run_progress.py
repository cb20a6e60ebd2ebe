"""Progress of a benchmark run on stderr, through rocketpy.progress: quiet unless stderr is a terminal.

A run ends at whichever bound comes first, its duration or its message count, so the
expected total is what the current pace reaches by then; the line shows messages done,
msgs/s and the ETA of that end. The per-second lines on stdout stay as they are:
`say` clears the progress line before one is printed, and the next tick redraws it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

from rocketpy.progress import Progress


class RunProgress:
    def __init__(self, label: str, seconds: float, messages: int | None = None, *,
                 stream: IO[str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.messages = messages or None
        self.clock = clock
        self.started = clock()
        self.progress = Progress(label, unit="msgs", stream=stream, clock=clock)

    @property
    def live(self) -> bool:
        return self.progress.live

    def fraction(self, done: int) -> float:
        """Share of the run behind us: by time, or by count when that bound is nearer."""
        elapsed = self.clock() - self.started
        frac = elapsed / self.seconds if self.seconds > 0 else 0.0
        if self.messages:
            frac = max(frac, done / self.messages)
        return min(1.0, frac)

    def tick(self, done: int) -> None:
        frac = self.fraction(done)
        self.progress.total = max(float(done), done / frac) if frac > 0 and done > 0 else None
        self.progress.update(done)

    def say(self, out: Callable[[str], None], line: str) -> None:
        self.progress.clear()
        out(line)

    def finish(self) -> None:
        self.progress.finish()
