"""Retries and latency fault tolerance with two brokers, one of which goes down."""

from __future__ import annotations

import asyncio

from rocketpy.client import AsyncProducer, Message, SendStatus
from tests.support.broker_ops import send
from tests.support.cluster import Cluster, cluster
from tests.support.remoting_client import RemotingTestClient

WAIT_S = 30.0


def test_sends_move_to_the_live_broker_and_avoid_the_dead_one(tmp_path):
    topic = "SdkFailoverTwoBrokers"
    with cluster(tmp_path / "a") as c:
        (tmp_path / "b").mkdir()
        b = Cluster(tmp_path / "b")
        try:
            b.start_broker(brokerName="broker-b", namesrvAddr=c.namesrv_addr)
            for port in (c.broker_port, b.broker_port):      # the topic on both brokers
                with RemotingTestClient("127.0.0.1", port, timeout_s=10) as rc:
                    assert send(rc, topic, b"create").code == 0

            async def main() -> None:
                async with AsyncProducer("SdkFailPG", namesrv_addr=c.namesrv_addr) as p:
                    inst = p.instance

                    async def both_routed() -> None:
                        while True:
                            await inst.refresh_routes()
                            route = inst._routes.get(topic)
                            if route and {q.broker_name for q in route.queue_datas} == {"broker-a", "broker-b"}:
                                return
                            await asyncio.sleep(0.05)
                    inst._topics_in_use.add(topic)           # refreshed by refresh_routes()
                    await asyncio.wait_for(both_routed(), WAIT_S)
                    assert b.broker is not None
                    b.broker.kill_tree()                     # broker-b dies; the route still names it
                    results = [await p.send(Message(topic, f"after-{i}".encode())) for i in range(20)]
                    assert all(r.status is SendStatus.SEND_OK for r in results)
                    assert {r.message_queue.broker_name for r in results} == {"broker-a"}
                    assert not p.fault_strategy.tolerance.is_available("broker-b")
                    assert p.fault_strategy.tolerance.is_available("broker-a")
            asyncio.run(main())
        finally:
            b.stop()
