"""Queue selectors for `send(msg, selector=..., arg=...)`: orderly messages go to the queue
the selector names, with no retry on another queue (a retry elsewhere would break order).

A selector is any callable `(queues, msg, arg) -> MessageQueue`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from rocketpy.client.message import Message, MessageQueue
from rocketpy.protocol.message import java_string_hash

MessageQueueSelector = Callable[[Sequence[MessageQueue], Message, Any], MessageQueue]


def java_hash(arg: Any) -> int:
    """Java's hashCode of the argument for the types both sides share, so a Python and a
    Java producer of one topic put a key on the same queue: String, Integer, Long, Boolean.
    Other objects use Python's hash (stable within a process only for str-free objects)."""
    if isinstance(arg, bool):
        return 1231 if arg else 1237
    if isinstance(arg, int):
        if -(1 << 31) <= arg < (1 << 31):
            return arg
        v = arg & 0xFFFFFFFFFFFFFFFF
        h = (v ^ (v >> 32)) & 0xFFFFFFFF
        return h - (1 << 32) if h & 0x80000000 else h
    if isinstance(arg, str):
        return java_string_hash(arg)
    if isinstance(arg, bytes):
        return java_string_hash(arg.decode("latin-1"))
    return hash(arg)


class SelectMessageQueueByHash:
    """queues[|hash(arg)| % len(queues)] — RocketMQ's SelectMessageQueueByHash; the same
    argument (an order id) always lands on the same queue while the queue count holds."""

    def __call__(self, queues: Sequence[MessageQueue], msg: Message, arg: Any) -> MessageQueue:
        value = java_hash(arg)
        if value < 0:
            value = abs(value)
        return queues[value % len(queues)]


class SelectMessageQueueByRandom:
    """A random queue — RocketMQ's SelectMessageQueueByRandom."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def __call__(self, queues: Sequence[MessageQueue], msg: Message, arg: Any) -> MessageQueue:
        return queues[self._rng.randrange(len(queues))]
