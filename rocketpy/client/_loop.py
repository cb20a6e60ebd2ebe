"""One asyncio event loop in a daemon thread, shared by the blocking API objects of a process.

The SDK has one core, written for asyncio (`AsyncProducer`, `AsyncLitePullConsumer`, ...).
The blocking classes (`Producer`, `LitePullConsumer`) run that core on this loop and wait
for its results, so a program without asyncio never sees a coroutine, and every blocking
client of a process shares one loop, one `ClientInstance` and one connection per broker
(RocketMQ shares one MQClientInstance per client id the same way).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from rocketpy.errors import ClientStateError, RemotingTimeoutError

log = logging.getLogger("rocketpy.client")

T = TypeVar("T")


class LoopThread:
    """An event loop running forever in a daemon thread.

    `run` waits for a coroutine from any other thread; `spawn` starts one and returns
    its concurrent future. Calling `run` from the loop's own thread would deadlock, so
    it is refused.
    """

    def __init__(self, name: str = "rocketpy-client-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._stopped = False
        self._pid = os.getpid()
        self._thread.start()
        self._started.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._started.set)
        try:
            self._loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(self._loop)
                for task in pending:
                    task.cancel()
                if pending:
                    self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            finally:
                self._loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def is_running(self) -> bool:
        return not self._stopped and self._thread.is_alive() and self._pid == os.getpid()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def spawn(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start coro on the loop; its result or exception arrives in the returned future."""
        if not self.is_running:
            coro.close()
            raise ClientStateError("the client's event loop thread has stopped; create a new client")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run coro on the loop and wait for it, at most timeout_s (None: no bound)."""
        if self.in_loop_thread():
            coro.close()
            raise ClientStateError(
                "a blocking client call was made inside its own event loop (a callback?); "
                "use the Async* API there, or call from another thread")
        fut = self.spawn(coro)
        try:
            return fut.result(timeout_s)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise RemotingTimeoutError(f"the client call did not finish within {timeout_s} s") from None

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop (its pending tasks are cancelled) and join the thread."""
        if self._stopped:
            return
        self._stopped = True
        if self._pid != os.getpid():
            return                      # a forked child has no thread to stop
        self._loop.call_soon_threadsafe(self._loop.stop)
        if not self.in_loop_thread():
            self._thread.join(timeout_s)


_shared_lock = threading.Lock()
_shared: LoopThread | None = None
_shared_users = 0


def acquire_shared_loop() -> LoopThread:
    """The process-wide LoopThread, started on first use; pair with release_shared_loop()."""
    global _shared, _shared_users
    with _shared_lock:
        if _shared is None or not _shared.is_running:
            _shared = LoopThread()
            _shared_users = 0
        _shared_users += 1
        return _shared


def release_shared_loop(loop: LoopThread) -> None:
    """Drop one user of the shared loop; the last one stops its thread."""
    global _shared, _shared_users
    with _shared_lock:
        if loop is not _shared:
            return
        _shared_users -= 1
        if _shared_users > 0:
            return
        _shared = None
    loop.stop()


def _reset_after_fork() -> None:
    global _shared, _shared_users, _shared_lock
    _shared = None
    _shared_users = 0
    _shared_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
