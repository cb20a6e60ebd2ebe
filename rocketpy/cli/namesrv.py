"""`rocketpy namesrv`: run a NameServer in the foreground."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from rocketpy.errors import ConfigError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def parse_set_options(items: list[str]) -> dict[str, str]:
    """`--set key=value` options -> {key: value}; ConfigError names a malformed one."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} is not key=value; write e.g. --set listenPort=9876")
        out[key.strip()] = value.strip()
    return out


def namesrv(
    listen: Annotated[str | None, typer.Option(
        "--listen", "-l", metavar="HOST:PORT",
        help="Address to listen on (default 0.0.0.0:9876; port 0 picks a free one).")] = None,
    config_file: Annotated[str | None, typer.Option(
        "--config", "-c", metavar="FILE", help="RocketMQ namesrv.properties file.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Override a config key, e.g. --set brokerChannelExpiredTime=120000 (repeatable).")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR.")] = "INFO",
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", metavar="PORT",
        help="Serve Prometheus GET /metrics on this port (default listen port + 5 = 9881; 0 turns it off).")] = None,
) -> None:
    """Run a NameServer: the route registry brokers register with and clients ask for routes."""
    from rocketpy.namesrv.config import load_namesrv_config
    from rocketpy.namesrv.server import run

    if not logging.getLogger().handlers:
        logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    try:
        config = load_namesrv_config(config_file, parse_set_options(set_ or []), listen, metrics_port)
    except ConfigError as exc:
        typer.echo(f"rocketpy namesrv: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(run(config))


def register(app: typer.Typer) -> None:
    """Add the `namesrv` command to the rocketpy app."""
    app.command("namesrv")(namesrv)


def _standalone() -> None:
    """`python -m rocketpy.cli.namesrv ...`: the same command without the rest of the app."""
    app = typer.Typer(add_completion=False)
    register(app)
    app()


if __name__ == "__main__":
    _standalone()
