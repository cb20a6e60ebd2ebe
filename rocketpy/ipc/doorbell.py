"""Doorbells: collapsing cross-process wakeups on an eventfd made before the fork.

Ringing a bell twice before anyone listens wakes the listener once (the eventfd
counter is read and reset in one call). Every wait has a timeout, so a lost
wakeup costs one interval, never a hang (ARCHITECTURE.md, shared memory rule 3).
"""

from __future__ import annotations

import errno
import os
import select


class Doorbell:
    __slots__ = ("fd",)

    def __init__(self, fd: int | None = None) -> None:
        # Non-blocking, and inherited across fork (no EFD_CLOEXEC matters only for exec).
        self.fd = fd if fd is not None else os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def ring(self) -> None:
        try:
            os.eventfd_write(self.fd, 1)
        except BlockingIOError:
            pass  # counter saturated: a wakeup is pending anyway
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise

    def clear(self) -> int:
        """Consume pending rings; returns how many collapsed into this wakeup (0 = none)."""
        try:
            return os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0

    def wait(self, timeout_s: float) -> bool:
        """Block until rung or timeout; True when rung. Clears the bell."""
        assert timeout_s >= 0
        try:
            ready, _, _ = select.select([self.fd], [], [], timeout_s)
        except InterruptedError:
            ready = []
        if ready:
            return self.clear() > 0
        return False

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
