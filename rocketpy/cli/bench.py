"""`rocketpy bench ...`: the benchmark programs of the repository's bench/ directory.

They are programs, not library code, and live beside the package (bench/ in a checkout), so
these commands run them in a child Python with every argument passed through; they need a
checkout installed with `pip install -e '.[bench]'`.

    rocketpy bench compare --quick               # rocketpy next to redis and nats, < 3 minutes
    rocketpy bench compare --update-results-md   # the full matrix, writes bench/RESULTS.md's block
    rocketpy bench produce --start --quick       # bench/produce.py
    rocketpy bench consume --start --backlog 100000
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

bench_app = typer.Typer(help="Benchmarks: side by side with peer brokers, produce and consume.",
                        no_args_is_help=True)

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def repo_root() -> Path:
    """The checkout holding bench/ next to the installed rocketpy package."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "bench" / "peers" / "compare.py").is_file():
        typer.echo(f"error: no bench/ directory next to the rocketpy package ({root}); run this from a "
                   "source checkout installed with `pip install -e '.[bench]'`.", err=True)
        raise typer.Exit(2)
    return root


def _run(argv: list[str]) -> None:
    root = repo_root()
    proc = subprocess.run([sys.executable, *argv], cwd=root, check=False)
    raise typer.Exit(proc.returncode)


@bench_app.command(context_settings=PASS_THROUGH)
def compare(ctx: typer.Context) -> None:
    """Run the same workloads against rocketpy, Redis Streams, NATS JetStream and RabbitMQ.

    Options (see --help): --quick, --systems rocketpy,redis,nats,rabbitmq, --sizes 128,1024,
    --flush async|sync, --runs N, --out DIR, --update-results-md.
    """
    _run(["-m", "bench.peers", *ctx.args])


@bench_app.command(context_settings=PASS_THROUGH)
def produce(ctx: typer.Context) -> None:
    """bench/produce.py: sends through a real broker (RocketMQ's benchmark Producer); --help for options."""
    _run([str(repo_root() / "bench" / "produce.py"), *ctx.args])


@bench_app.command(context_settings=PASS_THROUGH)
def consume(ctx: typer.Context) -> None:
    """bench/consume.py: drains a backlog (RocketMQ's benchmark Consumer); --help for options."""
    _run([str(repo_root() / "bench" / "consume.py"), *ctx.args])


def register(app: typer.Typer) -> None:
    """Add `rocketpy bench ...` to the root app (called by rocketpy.cli.app)."""
    app.add_typer(bench_app, name="bench")
