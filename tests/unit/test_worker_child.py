"""The Worker child's own setup: a port in use is a configuration error (EXIT_CONFIG), not a crash
loop; siblings share the port through SO_REUSEPORT."""

from __future__ import annotations

import socket

import pytest

from rocketpy.broker.child import EXIT_CONFIG
from rocketpy.broker.worker import Worker, bind_listener
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.ipc.doorbell import Doorbell
from tests.unit.test_worker_rig import WORKER_SLOT, Rig


def test_sibling_workers_share_the_port() -> None:
    first = bind_listener("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = bind_listener("127.0.0.1", port)
    assert second.getsockname()[1] == port
    first.close()
    second.close()


def test_a_port_in_use_exits_with_the_config_code(tmp_path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))          # no SO_REUSEPORT: nobody may share it
    taken.listen(1)
    port = taken.getsockname()[1]
    rig = Rig()
    worker = Worker(WORKER_SLOT, 0, BrokerConfig(listen_host="127.0.0.1", listen_port=port),
                    StoreConfig(store_path_root_dir=str(tmp_path)), "ab12", rig.control_buf, rig.qt_buf,
                    rig.put_buf, rig.resp_buf, Doorbell(), Doorbell(), Doorbell())
    with pytest.raises(SystemExit) as exc:
        worker.setup()
    assert exc.value.code == EXIT_CONFIG
    taken.close()
