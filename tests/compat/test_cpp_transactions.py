"""Transactional messages seen by the real C++ client (PyPI rocketmq==0.4.4).

The wheel's C API has no transactional producer (no CreateTransactionProducer or
SendMessageTransaction; reference/real-clients.md), so the transactions here are made by rocketpy's
test producer (tests/support/tx_producer.py) and the C++ client is the consumer: it must receive a
committed message (directly, or after a check-back) exactly once and decode it, and never a
rolled-back or still-open one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rocketpy.protocol.codes import ResponseCode
from tests.compat.test_cpp_client import Clients, create_topic
from tests.support.broker_ops import pull, records
from tests.support.cluster import Cluster, cluster, wait_for
from tests.support.tx_producer import COMMIT, ROLLBACK, TxProducer


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("cpp-tx"), transactionTimeOut="300",
                 transactionCheckInterval="200") as c:
        yield c


def test_cpp_pull_consumer_gets_committed_transactions_only(clients: Clients, running: Cluster) -> None:
    topic = "CppTxTopic"
    create_topic(running, topic)
    p = TxProducer(running, "cpp_tx_pg")
    try:
        committed = p.send_half(topic, b"tx-commit", "UNIQ-CPP-1", queue_id=0)
        rolled_back = p.send_half(topic, b"tx-rollback", "UNIQ-CPP-2", queue_id=0)
        p.send_half(topic, b"tx-checked", "UNIQ-CPP-3", queue_id=1)
        p.end_sent(committed, "UNIQ-CPP-1", COMMIT, oneway=False)
        p.end_sent(rolled_back, "UNIQ-CPP-2", ROLLBACK, oneway=False)
        check, message = p.next_check()
        while message.body != b"tx-checked":         # the other halves may be checked first
            check, message = p.next_check()
        p.answer(check, message, COMMIT)
        wait_for(lambda: (r := pull(p.client, topic, 1, 0)).code == ResponseCode.SUCCESS and records(r), 10,
                 "the commit answering the check to be stored")
        p.send_half(topic, b"tx-open", "UNIQ-CPP-4", queue_id=2)   # never ended while the client reads

        got = clients.start("pull", group="cpp_tx_cg", topic=topic, props=["TRAN_MSG", "PGROUP"]).result()["messages"]
        assert sorted(m["body"] for m in got) == ["tx-checked", "tx-commit"], clients.diagnostics()
        for m in got:
            assert m["topic"] == topic and m["tags"] == "TagT" and m["props"]["PGROUP"] == "cpp_tx_pg"
            assert m["props"]["UNIQ_KEY"] == {"tx-commit": "UNIQ-CPP-1", "tx-checked": "UNIQ-CPP-3"}[m["body"]]
        assert {m["body"]: m["queue_id"] for m in got} == {"tx-commit": 0, "tx-checked": 1}
    finally:
        p.close()
