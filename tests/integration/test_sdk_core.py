"""ClientInstance against a real NameServer and broker: routes with a dead NameServer first,
heartbeats, offsets, pulls, locks."""

from __future__ import annotations

import asyncio

import pytest

from rocketpy.client.config import ClientConfig
from rocketpy.client.instance import ClientInstance
from rocketpy.client.message import MessageQueue, PullStatus
from rocketpy.errors import NoRouteError
from tests.support.broker_ops import send
from tests.support.cluster import cluster, free_port
from tests.support.remoting_client import RemotingTestClient

ROUTE_WAIT_S = 20.0


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("sdkcore")) as c:
        yield c


async def _route_when_registered(inst: ClientInstance, topic: str) -> None:
    async def poll() -> None:
        while True:
            try:
                await inst.topic_route(topic, refresh=True)
                return
            except NoRouteError:
                await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), ROUTE_WAIT_S)


class _Consumer:
    def __init__(self, group: str, topic: str) -> None:
        self.group, self.topic = group, topic

    def consumer_data(self) -> dict[str, object]:
        return {"groupName": self.group, "consumeType": "CONSUME_ACTIVELY", "messageModel": "CLUSTERING",
                "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET", "unitMode": False,
                "subscriptionDataSet": [{"topic": self.topic, "subString": "*", "tagsSet": [], "codeSet": [],
                                         "subVersion": 0, "classFilterMode": False, "expressionType": "TAG"}]}


def test_core_requests_against_a_real_broker(running):
    topic = "SdkCoreTopic"
    with RemotingTestClient("127.0.0.1", running.broker_port, timeout_s=10) as rc:
        for i in range(3):
            assert send(rc, topic, f"m{i}".encode(), tags="A" if i % 2 == 0 else "B", queue_id=0).code == 0

    async def main() -> None:
        dead = f"127.0.0.1:{free_port()}"
        inst = await ClientInstance.get(ClientConfig.make(f"{dead};{running.namesrv_addr}", instance_name="core"))
        inst._namesrv_index = 0                       # the dead address is tried first
        try:
            await _route_when_registered(inst, topic)
            assert inst.config.namesrv_addr[inst._namesrv_index] == running.namesrv_addr
            queues = await inst.publish_queues(topic)
            assert queues[0] == MessageQueue(topic, "broker-a", 0) and len(queues) == 4
            assert inst.broker_addr("broker-a") == running.broker_addr
            unknown = await inst.publish_queues("SdkCoreNoSuchTopic")   # through TBW102
            assert {q.queue_id for q in unknown} == {0, 1, 2, 3}
            mq = MessageQueue(topic, "broker-a", 0)
            assert (await inst.min_offset(mq), await inst.max_offset(mq)) == (0, 3)
            assert await inst.search_offset(mq, 0) == 0
            pulled = await inst.pull(mq, group="CoreG", queue_offset=0, suspend_timeout_ms=1000, subscription="A")
            assert pulled.status is PullStatus.FOUND and pulled.next_begin_offset == 3
            assert [m.body for m in pulled.messages] == [b"m0", b"m2"]
            empty = await inst.pull(mq, group="CoreG", queue_offset=3, sys_flag=0)
            assert empty.status is PullStatus.NO_NEW_MSG
            await inst.update_consumer_offset(mq, "CoreG", 2, oneway=False)
            assert await inst.query_consumer_offset(mq, "CoreG") == 2
            hooks = _Consumer("CoreG", topic)
            inst.register_consumer("CoreG", hooks)
            await inst.send_heartbeat_now()
            assert inst.client_id in await inst.find_consumer_ids(topic, "CoreG")
            assert await inst.lock_batch("broker-a", "CoreG", [mq]) == {mq}
            await inst.unlock_batch("broker-a", "CoreG", [mq])
            await inst.release(hooks)
            hooks = None
        finally:
            if not inst.closed:
                await inst.release(object())
    asyncio.run(main())
