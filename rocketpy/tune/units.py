"""The systemd units and the sysusers.d entry that `rocketpy tune --apply` installs.

The files under the repository's `systemd/` are these texts rendered with the
default executable; a test keeps them equal. Why the units look as they do:

- Type=notify, NotifyAccess=main: the supervisor (the main PID) sends READY=1
  once recovery is done and the children are up, STOPPING=1 when it starts
  the SIGTERM drain, WATCHDOG=1 every WatchdogSec/2 from its loop, and
  EXTEND_TIMEOUT_USEC while a long store recovery runs.
- KillMode=mixed: SIGTERM reaches only the supervisor, which drains its
  children in order (workers, writer flush, dispatcher catch-up, checkpoint,
  unregister); whatever is left at TimeoutStopSec is SIGKILLed.
- RestartPreventExitStatus: the supervisor's "do not restart me" codes,
  78 (EX_CONFIG, bad configuration) and 65 (EX_DATAERR, corrupt store).
  Restarting either in a loop can only make things worse.
- Hardening keeps what the broker needs: /dev/shm (POSIX shared memory and
  semaphores) and SysV IPC in the host namespace, so no PrivateIPC; RemoveIPC
  stays off because several brokers of one host share the rocketpy user and
  one stopping must not delete the others' segments (the supervisor sweeps its
  own); no MemoryDenyWriteExecute, because ctypes/libffi callbacks need
  writable+executable memory on some builds and the failure would be a crash at
  first use, on a path tests may not cover; no SystemCallFilter until the broker
  has been run under one.
"""

from __future__ import annotations

import dataclasses

EXEC_PATH_DEFAULT = "/usr/local/bin/rocketpy"
SERVICE_USER = "rocketpy"
STATE_DIR = "/var/lib/rocketpy"
CONFIG_DIR = "/etc/rocketpy"

# The supervisor's exit codes that mean "do not restart me" (sysexits.h).
EXIT_DATAERR = 65   # corrupt store: recovery refused to truncate
EXIT_CONFIG = 78    # configuration error: a restart would fail the same way

WATCHDOG_SEC = 30
BROKER_TIMEOUT_STOP_SEC = 60     # SIGTERM drain: flush, catch up, checkpoint, unregister
BROKER_TIMEOUT_START_SEC = 300   # recovery of a large store; EXTEND_TIMEOUT_USEC stretches it
NAMESRV_TIMEOUT_STOP_SEC = 30

assert BROKER_TIMEOUT_STOP_SEC > WATCHDOG_SEC


@dataclasses.dataclass(frozen=True, slots=True)
class UnitFile:
    name: str       # file name under /etc/systemd/system
    text: str


_HEADER = """\
# Installed by `rocketpy tune --apply` into /etc/systemd/system/.
# Generated from rocketpy/tune/units.py (edit there); local changes belong in a
# drop-in: `systemctl edit {name}`.
"""

_UNIT_COMMON = """\
After=network-online.target{after}
Wants=network-online.target
# Stop a crash loop: at most 5 starts in 5 minutes.
StartLimitIntervalSec=300
StartLimitBurst=5
"""

_SERVICE_COMMON = """\
# The main process (the broker's supervisor, or the NameServer) reports
# READY=1, STOPPING=1 and WATCHDOG=1 on $NOTIFY_SOCKET.
Type=notify
NotifyAccess=main
WatchdogSec={watchdog}
User={user}
Group={user}
Restart=on-failure
RestartSec=5
# 65 EX_DATAERR: corrupt store; 78 EX_CONFIG: bad configuration. Restarting
# cannot fix either, so systemd leaves the service failed for an operator.
RestartPreventExitStatus={dataerr} {config}
# SIGTERM goes to the supervisor only; it drains its children itself and
# anything left when TimeoutStopSec runs out is killed.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStartSec={timeout_start}
TimeoutStopSec={timeout_stop}
LimitNOFILE=1000000
LimitNPROC=1000000
Environment=PYTHONUNBUFFERED=1
# /usr is read-only below: do not try to write .pyc files next to the sources.
Environment=PYTHONDONTWRITEBYTECODE=1
UMask=0027

# Directories, created and owned for {user} by systemd; their paths arrive in
# $STATE_DIRECTORY, $LOGS_DIRECTORY, $RUNTIME_DIRECTORY, $CONFIGURATION_DIRECTORY.
StateDirectory=rocketpy
StateDirectoryMode=0750
LogsDirectory=rocketpy
ConfigurationDirectory=rocketpy
RuntimeDirectory={runtime_dir}
RuntimeDirectoryMode=0750

# Hardening that leaves the broker's needs alone.
NoNewPrivileges=yes
CapabilityBoundingSet=
# Everything read-only except the store; a store elsewhere needs a drop-in
# with ReadWritePaths=/that/path.
ProtectSystem=strict
ReadWritePaths={state_dir}
# The store must not live under /home, /root or /run/user.
ProtectHome=yes
# A private /tmp: unix sockets live in $RUNTIME_DIRECTORY, never in /tmp.
PrivateTmp=yes
# A private /dev still carries /dev/shm, where POSIX shared memory and
# semaphores live.
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
# unix sockets (control, sd_notify), TCP, and netlink to list the host's addresses.
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# Shared memory and semaphores must stay in the host IPC namespace and outlive
# a sibling instance: no PrivateIPC, and RemoveIPC off (several brokers share
# the {user} user; the supervisor unlinks and sweeps its own segments).
RemoveIPC=no
# Not set on purpose: MemoryDenyWriteExecute (ctypes/libffi callbacks may need
# writable+executable memory and would crash at first use) and
# SystemCallFilter (until the broker has been run under one).
"""

_INSTALL = """\

[Install]
WantedBy=multi-user.target
"""


def _unit(name: str, description: str, exec_start: str, *, after: str, runtime_dir: str,
          timeout_start: int, timeout_stop: int, extra_service: str = "") -> UnitFile:
    text = (
        _HEADER.format(name=name)
        + "[Unit]\n"
        + f"Description={description}\n"
        + _UNIT_COMMON.format(after=after)
        + "\n[Service]\n"
        + f"ExecStart={exec_start}\n"
        + extra_service
        + _SERVICE_COMMON.format(
            watchdog=WATCHDOG_SEC, user=SERVICE_USER, dataerr=EXIT_DATAERR, config=EXIT_CONFIG,
            timeout_start=timeout_start, timeout_stop=timeout_stop, runtime_dir=runtime_dir,
            state_dir=STATE_DIR)
        + _INSTALL
    )
    return UnitFile(name, text)


def units(exec_path: str = EXEC_PATH_DEFAULT) -> tuple[UnitFile, ...]:
    """The three units, with `exec_path` as the rocketpy executable (absolute)."""
    assert exec_path.startswith("/"), f"systemd needs an absolute ExecStart path: {exec_path}"
    assert not any(c.isspace() for c in exec_path), f"no spaces in the executable path: {exec_path}"
    return (
        _unit("rocketpy-namesrv.service", "rocketpy NameServer (RocketMQ 4.x route registry)",
              f"{exec_path} namesrv", after="", runtime_dir="rocketpy/namesrv",
              timeout_start=90, timeout_stop=NAMESRV_TIMEOUT_STOP_SEC),
        _unit("rocketpy-broker.service", "rocketpy broker (RocketMQ 4.x message store)",
              f"{exec_path} broker -c {CONFIG_DIR}/broker.properties",
              after=" rocketpy-namesrv.service", runtime_dir="rocketpy/broker",
              timeout_start=BROKER_TIMEOUT_START_SEC, timeout_stop=BROKER_TIMEOUT_STOP_SEC),
        _unit("rocketpy-broker@.service",
              "rocketpy broker %i (RocketMQ 4.x message store)",
              f"{exec_path} broker -c {CONFIG_DIR}/broker-%i.properties",
              after=" rocketpy-namesrv.service", runtime_dir="rocketpy/broker-%i",
              timeout_start=BROKER_TIMEOUT_START_SEC, timeout_stop=BROKER_TIMEOUT_STOP_SEC,
              extra_service=(
                  "# One broker per instance: `systemctl enable --now rocketpy-broker@a` reads\n"
                  f"# {CONFIG_DIR}/broker-a.properties; give each its own storePathRootDir\n"
                  f"# under {STATE_DIR} (e.g. {STATE_DIR}/broker-a) and its own listenPort.\n")),
    )


SYSUSERS_NAME = "rocketpy.conf"
SYSUSERS_TEXT = f"""\
# Installed by `rocketpy tune --apply` into /etc/sysusers.d/; `systemd-sysusers`
# (run at boot, or by hand) creates the user. A system user (uid below
# SYS_UID_MAX) also keeps logind's RemoveIPC from deleting its shared memory.
u {SERVICE_USER} - "rocketpy message broker" {STATE_DIR} /usr/sbin/nologin
"""
