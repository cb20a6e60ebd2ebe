"""QUERY_MESSAGE gaps: the time range bounds, and UNIQ_KEY / KEYS lookups after a broker restart
(the IndexFile is read back from disk, not rebuilt from memory).

An index entry keeps its store time as whole seconds after its file's begin timestamp (RocketMQ's
IndexFile timeDiff), so a range is matched against that rounded-down time: the two batches below
are stored more than two seconds apart so that every bound in the test is unambiguous."""

from __future__ import annotations

import time

from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.message import iter_records
from rocketpy.protocol.remoting import RemotingCommand
from tests.support.broker_ops import send
from tests.support.cluster import cluster, wait_for
from tests.support.remoting_client import RemotingTestClient

TOPIC = "RangeTopic"


def query(client: RemotingTestClient, key: str, begin: int, end: int, *, uniq: bool = False,
          max_num: int = 32) -> RemotingCommand:
    ext: dict[str, object] = {"topic": TOPIC, "key": key, "maxNum": max_num, "beginTimestamp": begin,
                              "endTimestamp": end}
    if uniq:
        ext["_UNIQUE_KEY_QUERY"] = "true"
    return client.request(RequestCode.QUERY_MESSAGE, ext)


def bodies(r: RemotingCommand) -> list[bytes]:
    return [m.body for m in iter_records(r.body, check_crc=True)] if r.code == ResponseCode.SUCCESS else []


def test_time_range_bounds_and_lookups_after_restart(tmp_path):
    far = int(time.time() * 1000) + 3_600_000
    with cluster(tmp_path) as c:
        with RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10) as cl:
            for i in range(3):
                assert send(cl, TOPIC, b"early-%d" % i, keys="range-key").code == ResponseCode.SUCCESS
            early = wait_for(lambda: (r := query(cl, "range-key", 0, far)) and len(bodies(r)) == 3 and r, 20,
                             "3 early messages indexed")
            early_ts = [m.store_timestamp for m in iter_records(early.body)]
            wait_for(lambda: time.time() * 1000 > max(early_ts) + 2100, 10, "the clock to pass the early batch")
            uniq = "7F00000100002A9F0000000000000042"
            assert send(cl, TOPIC, b"late", keys="range-key",
                        props={"UNIQ_KEY": uniq}).code == ResponseCode.SUCCESS
            late = wait_for(lambda: (r := query(cl, "range-key", 0, far)) and len(bodies(r)) == 4 and r, 20,
                            "the late message indexed")
            late_ts = max(m.store_timestamp for m in iter_records(late.body))
            # the indexed time of the late message is > max(early_ts) + 1100 and <= late_ts
            assert bodies(query(cl, "range-key", max(early_ts) + 1, far)) == [b"late"]
            assert bodies(query(cl, "range-key", 0, max(early_ts))) == [b"early-0", b"early-1", b"early-2"]
            assert bodies(query(cl, "range-key", 0, late_ts)) == [
                b"early-0", b"early-1", b"early-2", b"late"]
            r = query(cl, "range-key", max(early_ts) + 1, max(early_ts) + 1000)
            assert r.code == ResponseCode.QUERY_NOT_FOUND
        assert c.broker is not None
        assert c.broker.stop() == 0
        c.start_broker()
        with RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10) as cl:
            assert bodies(query(cl, uniq, 0, far, uniq=True)) == [b"late"]
            assert bodies(query(cl, "range-key", 0, far)) == [b"early-0", b"early-1", b"early-2", b"late"]
            assert bodies(query(cl, "range-key", 0, far, max_num=1)) == [b"late"]
