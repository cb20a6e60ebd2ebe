"""Helpers for push-consumer tests: topics with N queues, raw sends, a thread-safe record of
what listeners saw. Every wait is bounded and polls a condition."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from rocketpy.client.message import MessageExt
from rocketpy.protocol.codes import RequestCode, ResponseCode
from tests.support.broker_ops import send
from tests.support.cluster import Cluster, wait_for
from tests.support.remoting_client import RemotingTestClient


def create_topic(c: Cluster, topic: str, queues: int) -> None:
    """Create the topic on the broker and wait until the NameServer routes it."""
    with RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10) as b:
        r = b.request(RequestCode.UPDATE_AND_CREATE_TOPIC, {
            "topic": topic, "defaultTopic": "TBW102", "readQueueNums": queues, "writeQueueNums": queues,
            "perm": 6, "topicFilterType": "SINGLE_TAG"})
        assert r.code == ResponseCode.SUCCESS, r.remark
    with RemotingTestClient("127.0.0.1", c.namesrv_port, timeout_s=10) as ns:
        wait_for(lambda: ns.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic}).code
                 == ResponseCode.SUCCESS, 20, f"{topic} to be routed by the NameServer")


def produce(c: Cluster, topic: str, bodies: Iterable[str], queues: int, *, tags: Iterable[str | None] | None = None,
            queue_of: Iterable[int] | None = None, props: dict[str, str] | None = None) -> list[str]:
    """Send each body (queue i % queues unless `queue_of` says) and return the bodies sent."""
    bodies = list(bodies)
    tag_list = list(tags) if tags is not None else [None] * len(bodies)
    qs = list(queue_of) if queue_of is not None else [i % queues for i in range(len(bodies))]
    with RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10) as b:
        for body, tag, q in zip(bodies, tag_list, qs, strict=True):
            r = send(b, topic, body.encode(), tags=tag, keys=f"k-{body}", props=props, queue_id=q)
            assert r.code == ResponseCode.SUCCESS, r.remark
    return bodies


class Seen:
    """What listeners received, in arrival order, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[str, MessageExt]] = []      # (consumer name, message)

    def add(self, who: str, msgs: Iterable[MessageExt]) -> None:
        with self.lock:
            self.log.extend((who, m) for m in msgs)

    def bodies(self, who: str | None = None) -> list[str]:
        with self.lock:
            return [m.body.decode() for w, m in self.log if who is None or w == who]

    def has_all(self, expected: Iterable[str], who: str | None = None) -> bool:
        return set(expected) <= set(self.bodies(who))
