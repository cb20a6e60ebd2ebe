"""Control — the broker child that owns all metadata and the periodic services.

Built in the supervisor before the fork with the configs, the inherited
control-block and queue-table maps and the boot id; after the fork `setup`
loads the metadata files and `run` serves the workers' unix socket in an
asyncio loop, next to NameServer registration, offset persistence and client
expiry. A 100 ms tick beats the heartbeat, watches for the supervisor going
away and for SIGTERM (the signal handler only sets `stopping`); on stop it
persists the offsets, unregisters from the NameServers and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rocketpy.broker.child import EXIT_CONFIG, EXIT_OK, Child
from rocketpy.broker.control.server import ControlServer
from rocketpy.broker.internal import control_socket_name
from rocketpy.broker.reading import FollowingReader
from rocketpy.client.remoting import parse_address
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.errors import ConfigError
from rocketpy.ipc.control_block import ControlBlock, Role
from rocketpy.ipc.queue_table import QueueTable
from rocketpy.store.file_store import StoreReader

log = logging.getLogger("rocketpy.broker.control")

TICK_MS = 100


class Control(Child):
    name = "control"

    def __init__(self, slot: int, broker_config: BrokerConfig, store_config: StoreConfig, control_buf: Any,
                 queue_table_buf: Any, boot_id: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(slot)
        self.broker_config = broker_config
        self.store_config = store_config
        self._control_buf = control_buf
        self._queue_table_buf = queue_table_buf
        self.boot_id = boot_id
        self.clock = clock
        self.server: ControlServer | None = None
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
        except ConfigError as exc:
            log.error("control cannot start: %s", exc)
            raise SystemExit(EXIT_CONFIG) from None

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
        try:
            while not self.stopping:
                self.beat()
                if self.orphaned():
                    log.warning("supervisor gone; control stops")
                    break
                await asyncio.sleep(TICK_MS / 1000)
        finally:
            self.beat(force=True)
            await server.stop()
            if server.store_reader is not None:
                server.store_reader.close()
        log.info("control stopped cleanly")
        return EXIT_OK
