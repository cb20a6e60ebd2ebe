"""A push consumer in its own process, for kill -9 tests: every body it consumes is appended
to a file (flushed per batch) before the listener returns success.

    python -m tests.support.push_consumer_proc NAMESRV GROUP TOPIC OUT_FILE INSTANCE_NAME
"""

from __future__ import annotations

import sys
import threading

from rocketpy.client.message import MessageExt
from rocketpy.client.push_consumer import (
    ConsumeConcurrentlyContext,
    ConsumeConcurrentlyStatus,
    PushConsumer,
)
from rocketpy.protocol.bodies import ConsumeFromWhere


def main() -> None:
    namesrv, group, topic, out_path, name = sys.argv[1:6]
    lock = threading.Lock()
    out = open(out_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def listener(msgs: list[MessageExt], ctx: ConsumeConcurrentlyContext) -> ConsumeConcurrentlyStatus:
        with lock:
            for m in msgs:
                out.write(m.body.decode() + "\n")
            out.flush()
        return ConsumeConcurrentlyStatus.CONSUME_SUCCESS

    consumer = PushConsumer(group, namesrv, instance_name=name, rebalance_interval_ms=1000,
                            persist_consumer_offset_interval_ms=500,
                            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET)
    consumer.subscribe(topic)
    consumer.register_message_listener(listener)
    consumer.start()
    print("consumer started", flush=True)
    threading.Event().wait()      # until killed


if __name__ == "__main__":
    main()
