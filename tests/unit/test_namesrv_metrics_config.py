"""metricsPort of the NameServer: default listenPort + 5, 0 off, bad values refused; label bounds."""

from __future__ import annotations

import pytest

from rocketpy import limits
from rocketpy.errors import ConfigError
from rocketpy.namesrv.config import load_namesrv_config
from rocketpy.namesrv.metrics import OTHER, request_code_name, response_code_name


def test_default_follows_the_listen_port() -> None:
    config = load_namesrv_config()
    assert config.metrics_listen_port(config.listen_port) == 9876 + limits.METRICS_PORT_OFFSET == 9881
    assert config.metrics_listen_port(20000) == 20005   # listenPort=0 picked 20000


def test_explicit_and_off() -> None:
    assert load_namesrv_config(overrides={"metricsPort": "0"}).metrics_listen_port(9876) == 0
    assert load_namesrv_config(overrides={"metricsPort": "19000"}).metrics_listen_port(9876) == 19000
    assert load_namesrv_config(metrics_port=0, overrides={"metricsPort": "19000"}).metrics_listen_port(9876) == 0
    assert load_namesrv_config(listen="127.0.0.1:65533").metrics_listen_port(65533) == 0


@pytest.mark.parametrize("bad", ["-2", "65536"])
def test_bad_port_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="metricsPort"):
        load_namesrv_config(overrides={"metricsPort": bad})


def test_unknown_codes_share_one_label() -> None:
    assert request_code_name(105) == "GET_ROUTEINFO_BY_TOPIC"
    assert request_code_name(99_999) == OTHER
    assert response_code_name(17) == "TOPIC_NOT_EXIST"
    assert response_code_name(-5) == OTHER
