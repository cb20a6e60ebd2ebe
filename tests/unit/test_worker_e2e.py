"""A worker with the real Writer and Dispatcher loop turns in one process (no fork): sends go through
the put ring to the real writer, pulls read what the real dispatcher indexed. SYNC_FLUSH included."""

from __future__ import annotations

import asyncio

import pytest

from rocketpy.broker.dispatcher import Dispatcher
from rocketpy.broker.writer import Writer
from rocketpy.config import FlushDiskType, StoreConfig
from rocketpy.ipc.doorbell import Doorbell
from rocketpy.protocol.batch import BatchItem, encode_batch_body
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.message import iter_records, parse_properties
from rocketpy.protocol.msgid import decode_offset_msg_id
from rocketpy.store.file_store import FileStore, StoreReader
from tests.unit.test_worker_rig import Rig, run
from tests.unit.test_worker_send import v2


@pytest.mark.parametrize("flush", [FlushDiskType.SYNC_FLUSH, FlushDiskType.ASYNC_FLUSH])
def test_send_then_pull_through_the_real_writer_and_dispatcher(tmp_path, flush: FlushDiskType) -> None:
    config = StoreConfig(store_path_root_dir=str(tmp_path / "store"), mapped_file_size_commitlog=1 << 16,
                         mapped_file_size_consumequeue=20 * 64, flush_disk_type=flush)
    store = FileStore.open(config)
    reader = StoreReader(config)
    rig = Rig(config, store_reader=reader)
    cl = store.commitlog
    rig.sup.publish_writer(committed_offset=cl.committed_offset, flushed_offset=cl.flushed_offset,
                           flushed_store_ts=0, writer_generation=1)
    dispatcher_bell = Doorbell()
    writer = Writer(0, config, cl, rig.control_buf, [rig.put_buf], [rig.resp_buf], rig.writer_bell,
                    [rig.response_bell], dispatcher_bell, generation=1)
    writer.setup()
    dispatcher = Dispatcher(1, config, rig.control_buf, rig.qt_buf, dispatcher_bell, [rig.pull_bell])
    dispatcher.setup()

    async def main() -> None:
        await rig.start(fake_writer=False)
        loop = asyncio.get_running_loop()

        def writer_turn() -> None:
            rig.writer_bell.clear()
            writer.turn()
            dispatcher.turn()

        loop.add_reader(rig.writer_bell.fd, writer_turn)
        c = rig.client()
        r = await c.call(v2(c, body=b"first"))
        assert r.code == ResponseCode.SUCCESS, r.remark
        host, port, phys = decode_offset_msg_id(r.ext_fields["msgId"])
        assert (host, port, phys) == ("192.168.7.7", 10911, 0)
        batch = encode_batch_body([BatchItem(0, b"b%d" % i, "TAGS\x01TagB") for i in range(3)])
        r = await c.call(v2(c, body=batch, m="true"))
        assert r.code == ResponseCode.SUCCESS and r.ext_fields["queueOffset"] == "1"
        assert len(r.ext_fields["msgId"].split(",")) == 3
        if flush is FlushDiskType.SYNC_FLUSH:
            assert rig.sup.flushed_offset == rig.sup.committed_offset
        pull = c.request(RequestCode.PULL_MESSAGE, {
            "consumerGroup": "CG", "topic": "TopicA", "queueId": "1", "queueOffset": "0", "maxMsgNums": "32",
            "sysFlag": "4", "commitOffset": "0", "suspendTimeoutMillis": "0", "subVersion": "0",
            "subscription": "TagB"})
        r = await c.call(pull)
        assert r.code == ResponseCode.SUCCESS and r.ext_fields["nextBeginOffset"] == "4"
        records = iter_records(r.body)
        assert [m.body for m in records] == [b"b0", b"b1", b"b2"]
        assert [m.queue_offset for m in records] == [1, 2, 3]
        assert parse_properties(records[0].properties)["CLUSTER"] == "DefaultCluster"
        view = await c.call(c.request(RequestCode.VIEW_MESSAGE_BY_ID, {"offset": str(records[1].phys_offset)}))
        assert iter_records(view.body)[0].body == b"b1"
        loop.remove_reader(rig.writer_bell.fd)
        await rig.stop()

    try:
        run(main())
    finally:
        reader.close()
        dispatcher.cqs.close()
        dispatcher.commitlog.close()
        store.close()
