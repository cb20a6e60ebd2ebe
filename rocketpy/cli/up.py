"""`rocketpy up`: a NameServer and a broker on loopback with an embedded default config.

The first command a new user runs. Both servers run as child processes of this
one, in the foreground; Ctrl-C or SIGTERM stops the broker (drained: in-flight
requests answered, store flushed and closed) and then the NameServer.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_HOME = Path.home() / ".rocketpy"
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0



PR_SET_PDEATHSIG = 1          # prctl(2)


def _stop_with_parent() -> None:
    """In the child, before exec: SIGTERM it (a clean drain) when `rocketpy up` dies, even by
    SIGKILL, so a killed `up` never leaves a NameServer and a broker running on their own."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

def _child_name(proc: subprocess.Popen[bytes]) -> str:
    """The module a child runs (`python -m rocketpy.cli.<name> ...`), for messages."""
    args = proc.args
    return str(args[2]) if isinstance(args, list | tuple) and len(args) > 2 else str(args)

def default_broker_properties(home: Path, namesrv_port: int, broker_port: int, flush_disk_type: str) -> str:
    return "\n".join([
        "# written by `rocketpy up`; edit and pass to `rocketpy broker -c` to run a broker yourself",
        "brokerClusterName=DefaultCluster",
        "brokerName=broker-a",
        "brokerId=0",
        "brokerRole=ASYNC_MASTER",
        f"flushDiskType={flush_disk_type}",
        f"namesrvAddr=127.0.0.1:{namesrv_port}",
        "listenHost=127.0.0.1",
        "brokerIP1=127.0.0.1",
        f"listenPort={broker_port}",
        f"storePathRootDir={home / 'store'}",
        "autoCreateTopicEnable=true",
        "autoCreateSubscriptionGroup=true",
        "",
    ])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def up(
    home: Annotated[Path, typer.Option("--home", help="Directory for the store and the generated config.")
                    ] = DEFAULT_HOME,
    namesrv_port: Annotated[int, typer.Option("--namesrv-port", help="NameServer port on 127.0.0.1.")] = 9876,
    broker_port: Annotated[int, typer.Option("--broker-port", help="Broker port on 127.0.0.1.")] = 10911,
    sync_flush: Annotated[bool, typer.Option("--sync-flush/--async-flush",
                                             help="Acknowledge sends only after fdatasync (SYNC_FLUSH).")] = False,
) -> None:
    """Start a NameServer and a broker on loopback, in the foreground (Ctrl-C stops both)."""
    home = home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    props = home / "broker.properties"
    props.write_text(default_broker_properties(home, namesrv_port, broker_port,
                                               "SYNC_FLUSH" if sync_flush else "ASYNC_FLUSH"))
    stop_requested: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    env = dict(os.environ)
    # Own sessions: a terminal's Ctrl-C reaches only this process, which stops the broker
    # first (so it can unregister) and the NameServer last.
    namesrv = subprocess.Popen([sys.executable, "-m", "rocketpy.cli.namesrv", "--listen",
                                f"127.0.0.1:{namesrv_port}"], env=env, start_new_session=True,
                               preexec_fn=_stop_with_parent)
    procs = [namesrv]
    code = 0
    try:
        if not wait_for_port(namesrv_port, namesrv, STARTUP_TIMEOUT_S):
            typer.echo(f"rocketpy up: the NameServer did not start on 127.0.0.1:{namesrv_port} "
                       "(is the port in use? try --namesrv-port)", err=True)
            raise typer.Exit(1)
        broker = subprocess.Popen([sys.executable, "-m", "rocketpy.cli.broker", "-c", str(props)], env=env,
                                  start_new_session=True, preexec_fn=_stop_with_parent)
        procs.append(broker)
        if not wait_for_port(broker_port, broker, STARTUP_TIMEOUT_S):
            typer.echo(f"rocketpy up: the broker did not start on 127.0.0.1:{broker_port} "
                       f"(exit code {broker.poll()}; is the port in use? try --broker-port)", err=True)
            raise typer.Exit(1)
        typer.echo(f"rocketpy up: NameServer on 127.0.0.1:{namesrv_port}, broker broker-a on "
                   f"127.0.0.1:{broker_port}, data in {home}. Ctrl-C stops both.", err=False)
        sys.stdout.flush()
        while not stop_requested:
            for proc in procs:
                if proc.poll() is not None:
                    typer.echo(f"rocketpy up: {_child_name(proc)} exited with {proc.returncode}; stopping",
                               err=True)
                    code = proc.returncode or 1
                    stop_requested.append(0)
                    break
            time.sleep(0.2)
    finally:
        for proc in reversed(procs):
            rc = stop(proc, STOP_TIMEOUT_S)
            if rc not in (0, None) and not code and rc != -signal.SIGTERM:
                code = rc
    if code:
        raise typer.Exit(code)
    typer.echo("rocketpy up: stopped")


def register(app: typer.Typer) -> None:
    app.command("up")(up)
