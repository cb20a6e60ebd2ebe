"""The `rocketpy` command: one typer app with a sub-command per area."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="rocketpy",
    help="rocketpy: Apache RocketMQ 4.x rebuilt in Python (NameServer, broker, tools).",
    no_args_is_help=True,
    add_completion=True,
)


@app.callback()
def _root() -> None:
    """rocketpy: Apache RocketMQ 4.x rebuilt in Python."""


@app.command()
def version() -> None:
    """Print rocketpy's version."""
    from rocketpy import __version__

    typer.echo(__version__)


def _register_subcommands() -> None:
    from rocketpy.cli import admin as admin_cli
    from rocketpy.cli import bench as bench_cli
    from rocketpy.cli import broker as broker_cli
    from rocketpy.cli import namesrv as namesrv_cli
    from rocketpy.cli import store as store_cli
    from rocketpy.cli import tune as tune_cli
    from rocketpy.cli import up as up_cli

    up_cli.register(app)
    namesrv_cli.register(app)
    broker_cli.register(app)
    store_cli.register(app)
    tune_cli.register(app)
    admin_cli.register(app)
    bench_cli.register(app)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
