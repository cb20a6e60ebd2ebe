"""`rocketpy broker`: run a broker (supervisor, writer, dispatcher, control, workers) in the foreground."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from rocketpy.cli.namesrv import LOG_FORMAT, parse_set_options
from rocketpy.errors import ConfigError


def load_broker_settings(config_file: str | None, overrides: dict[str, str]):
    from rocketpy.config import load_broker_config, parse_properties

    props: dict[str, str] = {}
    if config_file:
        try:
            props = parse_properties(Path(config_file).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {config_file}: {exc.strerror}") from None
    props.update(overrides)
    return load_broker_config(props)


def broker(
    config_file: Annotated[str | None, typer.Option(
        "--config", "-c", metavar="FILE", help="RocketMQ broker.properties (brokerName, namesrvAddr, "
        "listenPort, storePathRootDir, flushDiskType, ...).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set listenPort=10911 (repeatable).")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR.")] = "INFO",
) -> None:
    """Run a broker. Exit codes: 0 clean stop, 78 bad configuration, 65 corrupt store."""
    from rocketpy.broker.child import EXIT_CONFIG
    from rocketpy.broker.runtime import run_broker

    if not logging.getLogger().handlers:
        logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    try:
        broker_config, store_config = load_broker_settings(config_file, parse_set_options(set_ or []))
    except ConfigError as exc:
        typer.echo(f"rocketpy broker: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    raise typer.Exit(run_broker(broker_config, store_config))


def register(app: typer.Typer) -> None:
    app.command("broker")(broker)


def _standalone() -> None:
    app = typer.Typer(add_completion=False)
    register(app)
    app()


if __name__ == "__main__":
    _standalone()
