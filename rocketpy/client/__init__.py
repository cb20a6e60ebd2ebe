"""The rocketpy client SDK: producers and consumers for rocketpy and any RocketMQ 4.x cluster.

Blocking classes (`Producer`, `LitePullConsumer`, ...) and asyncio classes
(`AsyncProducer`, `AsyncLitePullConsumer`, ...) share one core; see docs/sdk.md.
"""

from rocketpy.client.config import ClientConfig
from rocketpy.client.fault import MQFaultStrategy
from rocketpy.client.instance import ClientInstance
from rocketpy.client.message import (
    LocalTransactionState,
    Message,
    MessageExt,
    MessageQueue,
    PullResult,
    PullStatus,
    SendResult,
    SendStatus,
    TransactionSendResult,
)
from rocketpy.client.producer import AsyncProducer, Producer, ProducerOptions
from rocketpy.client.pull_consumer import AsyncLitePullConsumer, LitePullConsumer
from rocketpy.client.selector import (
    MessageQueueSelector,
    SelectMessageQueueByHash,
    SelectMessageQueueByRandom,
)
from rocketpy.client.transaction import AsyncTransactionProducer, TransactionProducer
from rocketpy.protocol.bodies import ConsumeFromWhere

__all__ = [
    "AsyncLitePullConsumer",
    "AsyncProducer",
    "AsyncTransactionProducer",
    "ClientConfig",
    "ClientInstance",
    "ConsumeFromWhere",
    "LitePullConsumer",
    "LocalTransactionState",
    "MQFaultStrategy",
    "Message",
    "MessageExt",
    "MessageQueue",
    "MessageQueueSelector",
    "Producer",
    "ProducerOptions",
    "PullResult",
    "PullStatus",
    "SelectMessageQueueByHash",
    "SelectMessageQueueByRandom",
    "SendResult",
    "SendStatus",
    "TransactionProducer",
    "TransactionSendResult",
]

# The push consumer and its allocation strategies (branch consumer).
from rocketpy.client.push_consumer import (  # noqa: E402
    AsyncPushConsumer,
    ConsumeConcurrentlyContext,
    ConsumeConcurrentlyStatus,
    ConsumeOrderlyContext,
    ConsumeOrderlyStatus,
    PushConsumer,
    PushConsumerOptions,
)
from rocketpy.client.rebalance import (  # noqa: E402
    AllocateMessageQueueAveragely,
    AllocateMessageQueueAveragelyByCircle,
    AllocateMessageQueueByConfig,
    AllocateMessageQueueByMachineRoom,
    AllocateMessageQueueConsistentHash,
)
from rocketpy.protocol.bodies import MessageModel  # noqa: E402

__all__ += [
    "AllocateMessageQueueAveragely",
    "AllocateMessageQueueAveragelyByCircle",
    "AllocateMessageQueueByConfig",
    "AllocateMessageQueueByMachineRoom",
    "AllocateMessageQueueConsistentHash",
    "AsyncPushConsumer",
    "ConsumeConcurrentlyContext",
    "ConsumeConcurrentlyStatus",
    "ConsumeOrderlyContext",
    "ConsumeOrderlyStatus",
    "MessageModel",
    "PushConsumer",
    "PushConsumerOptions",
]
