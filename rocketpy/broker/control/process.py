"""Control — the broker child that owns all metadata and the periodic services.

Built in the supervisor before the fork with the configs, the inherited
control-block and queue-table maps and the boot id; after the fork `setup`
loads the metadata files and `run` serves the workers' unix socket in an
asyncio loop, next to NameServer registration, offset persistence and client
expiry. A 100 ms tick beats the heartbeat, watches for the supervisor going
away and for SIGTERM (the signal handler only sets `stopping`); on stop it
persists the offsets, unregisters from the NameServers and exits 0.

With its own put ring to the writer (allocated by the supervisor next to the
workers' rings), control also runs the delay scheduler (`control/schedule.py`),
whose re-puts go through `control/putter.py`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rocketpy.broker.child import EXIT_CONFIG, EXIT_OK, Child
from rocketpy.broker.control.putter import ControlPutter
from rocketpy.broker.control.registration import broker_ip1
from rocketpy.broker.control.schedule import ScheduleService
from rocketpy.broker.control.server import ControlServer
from rocketpy.broker.internal import control_socket_name
from rocketpy.broker.reading import FollowingReader
from rocketpy.client.remoting import parse_address
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.errors import ConfigError
from rocketpy.ipc.control_block import ControlBlock, Role
from rocketpy.ipc.doorbell import Doorbell
from rocketpy.ipc.queue_table import QueueTable
from rocketpy.ipc.ring import RingConsumer, RingProducer
from rocketpy.protocol import topics as t
from rocketpy.store.file_store import StoreReader

log = logging.getLogger("rocketpy.broker.control")

TICK_MS = 100


class Control(Child):
    name = "control"

    def __init__(self, slot: int, broker_config: BrokerConfig, store_config: StoreConfig, control_buf: Any,
                 queue_table_buf: Any, boot_id: str, *, clock: Clock = SYSTEM_CLOCK,
                 put_ring_buf: Any = None, response_ring_buf: Any = None, writer_bell: Doorbell | None = None,
                 response_bell: Doorbell | None = None) -> None:
        super().__init__(slot)
        self.broker_config = broker_config
        self.store_config = store_config
        self._control_buf = control_buf
        self._queue_table_buf = queue_table_buf
        self.boot_id = boot_id
        self.clock = clock
        self.server: ControlServer | None = None
        self._put_ring_buf = put_ring_buf
        self._response_ring_buf = response_ring_buf
        self._writer_bell = writer_bell
        self._response_bell = response_bell
        self.putter: ControlPutter | None = None
        self.schedule: ScheduleService | None = None
        self._unroutable_warned: set[str] = set()
        self.socket_name = control_socket_name(broker_config.broker_name, boot_id)

    def setup(self) -> None:
        self.control_block = ControlBlock(self._control_buf, Role.CONTROL, slot=self.slot)
        queue_table = QueueTable(self._queue_table_buf)
        try:
            for addr in self.broker_config.namesrv_addrs:
                try:
                    parse_address(addr)
                except ValueError:
                    raise ConfigError(f"namesrvAddr entry {addr!r} is not host:port; "
                                      "write e.g. namesrvAddr=127.0.0.1:9876") from None
            self.server = ControlServer(self.broker_config, self.store_config, boot_id=self.boot_id,
                                        control_block=self.control_block, queue_table=queue_table,
                                        clock=self.clock,
                                        store_reader=FollowingReader(StoreReader(self.store_config),
                                                                     self.control_block))
            self.server.load()
            self._setup_schedule(queue_table)
        except ConfigError as exc:
            log.error("control cannot start: %s", exc)
            raise SystemExit(EXIT_CONFIG) from None

    def _setup_schedule(self, queue_table: QueueTable) -> None:
        server = self.server
        assert server is not None and server.store_reader is not None
        if self._put_ring_buf is None or self._writer_bell is None or self._response_bell is None:
            log.warning("control has no put ring to the writer: delayed messages stay parked")
            return
        assert self.control_block is not None, "setup() made the control block"
        self.putter = ControlPutter(RingProducer(self._put_ring_buf), RingConsumer(self._response_ring_buf),
                                    self._writer_bell, self._response_bell, self.control_block,
                                    store_host=broker_ip1(self.broker_config), store_port=self.broker_config.listen_port,
                                    max_message_size=self.store_config.max_message_size)
        self.schedule = ScheduleService(server.config_dir, self.store_config.delay_levels_ms, server.store_reader,
                                        queue_table, self.putter, clock=self.clock,
                                        ensure_topic=self._ensure_topic)
        self.schedule.load()

    async def _start_schedule(self) -> None:
        """In the background, so heartbeats go on while the writer takes an earlier incarnation's puts."""
        if self.putter is None or self.schedule is None:
            return
        await self.putter.settle()
        self.putter.start()
        self.schedule.start()

    def _ensure_topic(self, topic: str) -> None:
        """A delayed message's real topic is gone: create it by the broker's rules so consumers can route
        to it; the message is delivered into the store either way (as RocketMQ does)."""
        server = self.server
        assert server is not None
        if server.topics.get(topic) is not None:
            return
        group = t.group_of_retry_topic(topic)
        created = None
        if group is not None:
            group_config = server.groups.find_or_create(group)
            if group_config is not None:
                created = (server.topics.create_retry_topic(group, group_config.retry_queue_nums)
                           if t.is_retry_topic(topic) else server.topics.create_dlq_topic(group))
        else:
            created = server.topics.create_from_template(topic, t.AUTO_CREATE_TOPIC_KEY_TOPIC,
                                                         self.broker_config.default_topic_queue_nums)
        if created is None and topic not in self._unroutable_warned:
            self._unroutable_warned.add(topic)
            log.warning("delayed messages of topic %s are delivered although the topic does not exist and "
                        "cannot be auto-created; create it to consume them", topic)

    def run(self) -> int:
        return asyncio.run(self._main())

    async def _main(self) -> int:
        server = self.server
        assert server is not None, "setup() runs before run()"
        try:
            await server.start(self.socket_name)
        except OSError as exc:
            log.error("control cannot listen on its unix socket %r: %s", self.socket_name, exc)
            return 1
        starting = asyncio.get_running_loop().create_task(self._start_schedule(), name="control-schedule-start")
        try:
            while not self.stopping:
                self.beat()
                if self.orphaned():
                    log.warning("supervisor gone; control stops")
                    break
                await asyncio.sleep(TICK_MS / 1000)
        finally:
            self.beat(force=True)
            starting.cancel()
            try:
                await starting
            except asyncio.CancelledError:
                pass
            if self.schedule is not None:
                await self.schedule.stop()
            if self.putter is not None:
                await self.putter.stop()
            await server.stop()
            if server.store_reader is not None:
                server.store_reader.close()
        log.info("control stopped cleanly")
        return EXIT_OK
