"""A transactional producer built from the test remoting client (the SDK's comes later): it registers
its group with HEART_BEAT, sends half messages, ends them, and reads CHECK_TRANSACTION_STATE pushes."""

from __future__ import annotations

import json
import time

from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.headers import CheckTransactionStateRequestHeader
from rocketpy.protocol.message import MessageRecord, decode_record
from rocketpy.protocol.msgid import decode_offset_msg_id
from rocketpy.protocol.remoting import RemotingCommand
from tests.support.broker_ops import send
from tests.support.cluster import Cluster
from tests.support.remoting_client import RemotingTestClient

CHECK_WAIT_S = 30.0           # bound on waiting for a check-back (a few intervals on a slow machine)
COMMIT = 8                    # MessageSysFlag.TRANSACTION_COMMIT_TYPE
ROLLBACK = 12                 # MessageSysFlag.TRANSACTION_ROLLBACK_TYPE


class TxProducer:
    """A transactional producer of one group on one connection."""

    def __init__(self, c: Cluster, group: str) -> None:
        self.group = group
        self.client = RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10)
        body = json.dumps({"clientID": f"127.0.0.1@{group}", "producerDataSet": [{"groupName": group}],
                           "consumerDataSet": []}).encode()
        assert self.client.request(RequestCode.HEART_BEAT, {}, body).code == ResponseCode.SUCCESS

    def close(self) -> None:
        self.client.close()

    def send_half(self, topic: str, body: bytes, uniq: str, queue_id: int = 1) -> RemotingCommand:
        r = send(self.client, topic, body, tags="TagT", queue_id=queue_id, sys_flag=0x4,
                 props={"TRAN_MSG": "true", "PGROUP": self.group, "UNIQ_KEY": uniq})
        assert r.code == ResponseCode.SUCCESS, r.remark
        return r

    def end(self, *, half_offset: int, phys: int, uniq: str, kind: int, from_check: bool = False,
            oneway: bool = True) -> RemotingCommand | None:
        ext = {"producerGroup": self.group, "tranStateTableOffset": half_offset, "commitLogOffset": phys,
               "commitOrRollback": kind, "fromTransactionCheck": from_check, "msgId": uniq, "transactionId": uniq}
        if oneway:
            self.client.oneway(RequestCode.END_TRANSACTION, ext)
            return None
        return self.client.request(RequestCode.END_TRANSACTION, ext)

    def end_sent(self, sent: RemotingCommand, uniq: str, kind: int, *, oneway: bool = True) -> RemotingCommand | None:
        _, _, phys = decode_offset_msg_id(sent.ext_str("msgId") or "")
        return self.end(half_offset=int(sent.ext_str("queueOffset") or -1), phys=phys, uniq=uniq, kind=kind,
                        oneway=oneway)

    def next_check(self, timeout_s: float = CHECK_WAIT_S) -> tuple[CheckTransactionStateRequestHeader, MessageRecord]:
        deadline = time.monotonic() + timeout_s
        while True:
            frame = self.client.read_frame(max(0.01, deadline - time.monotonic()))
            if not frame.is_response and frame.code == RequestCode.CHECK_TRANSACTION_STATE:
                return CheckTransactionStateRequestHeader.from_ext(frame.ext_fields), decode_record(frame.body)

    def answer(self, check: CheckTransactionStateRequestHeader, message: MessageRecord, kind: int) -> None:
        """What a Java client answers: the header's tranStateTableOffset, the body's commitLogOffset."""
        self.end(half_offset=check.tran_state_table_offset, phys=message.phys_offset,
                 uniq=message.property_map()["UNIQ_KEY"], kind=kind, from_check=True)
