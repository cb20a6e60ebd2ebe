"""`rocketpy tune --dry-run / --apply`: the files to install and the live sysctl changes.

`plan` is pure: it reads the host and says, for each file under `root`, whether
it would be created, updated or left alone, and for each sysctl key whether the
running kernel would change. `apply` carries the plan out: files first
(temp file, fsync, rename), then, only when `root` is "/", the live values,
written to /proc/sys one key at a time so that each success or failure is
reported on its own (a container's read-only /proc/sys is a message, not a
crash). A second `apply` finds nothing to do and says so.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import os
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from rocketpy.tune import settings, units
from rocketpy.tune.checks import recommended_sysctl_values
from rocketpy.tune.host import Host

SYSCTL_FILE = Path("etc/sysctl.d/60-rocketpy.conf")
LIMITS_FILE = Path("etc/security/limits.d/60-rocketpy.conf")
UNIT_DIR = Path("etc/systemd/system")
SYSUSERS_FILE = Path("etc/sysusers.d") / units.SYSUSERS_NAME
FILE_MODE = 0o644


# --- rendering --------------------------------------------------------------------

def render_sysctl_conf(values: dict[str, int | None] | None, mem_total_kb: int | None = None) -> str:
    """The sysctl.d file. `values` None renders the repository's reference copy,
    where vm.min_free_kbytes is left commented out because it depends on the host."""
    lines = [
        "# /etc/sysctl.d/60-rocketpy.conf: host tuning for rocketpy (Apache RocketMQ 4.x in Python).",
        "# Installed by `rocketpy tune --apply`, which also applies it to the running kernel;",
        "# `rocketpy tune --check` compares the running values with it.",
        "# Generated from rocketpy/tune/settings.py (edit there). Values follow RocketMQ's",
        "# bin/os.sh and deployment guide, except where noted. --apply rewrites this file:",
        "# put local overrides in a later file, e.g. /etc/sysctl.d/61-local.conf.",
        "#",
        "# vm.drop_caches is deliberately absent. RocketMQ's recipe persists",
        "# vm.drop_caches=1, but it is a one-shot action, not a setting: kept here it would",
        "# empty the page cache (the CommitLog the broker serves reads from) at every boot",
        "# and every `sysctl --system`. To drop clean caches once: sync; sysctl -w vm.drop_caches=1",
    ]
    for setting in settings.SYSCTL_SETTINGS:
        if not setting.persisted:
            continue
        lines.append("")
        lines.extend(_comment(setting.reason))
        if setting.name == "vm.min_free_kbytes":
            lines.extend(_comment(settings.MIN_FREE_KBYTES_WHY + "."))
            value = None if values is None else values.get(setting.name)
            if value is None:
                lines.append("# `rocketpy tune --apply` writes the value computed for its host:")
                lines.append(f"# {setting.name} = <computed>")
            else:
                lines.append(f"# computed for a host with MemTotal = {mem_total_kb} kB")
                lines.append(f"{setting.name} = {value}")
            continue
        value = setting.recommended if values is None else values.get(setting.name)
        if value is None:
            value = setting.recommended
        assert value is not None, setting.name
        if value != setting.recommended:
            lines.append(f"# RocketMQ recommends {setting.relation.value} {setting.recommended}; "
                         "this host's value already satisfies it and is kept")
        lines.append(f"{setting.name} = {value}")
    return "\n".join(lines) + "\n"


def _comment(text: str, width: int = 88) -> list[str]:
    words, lines, line = text.split(), [], "#"
    for word in words:
        if len(line) + 1 + len(word) > width and line != "#":
            lines.append(line)
            line = "#"
        line += " " + word
    lines.append(line)
    return lines


def render_limits_conf() -> str:
    nofile, nproc, user = settings.NOFILE_RECOMMENDED, settings.NPROC_RECOMMENDED, settings.LIMITS_USER
    return f"""\
# /etc/security/limits.d/60-rocketpy.conf: process limits for rocketpy.
# Installed by `rocketpy tune --apply`. Generated from rocketpy/tune/install.py.
# pam_limits applies this file to login sessions (ssh, su, sudo -i). Services
# started by systemd never read it: the rocketpy units set LimitNOFILE and
# LimitNPROC themselves. {nofile} stays below fs.nr_open (1048576 by default);
# the kernel refuses a larger nofile.
#
# The broker's user: store files plus one socket per client connection, and
# the supervisor's children and threads.
{user:<8} soft nofile {nofile}
{user:<8} hard nofile {nofile}
{user:<8} soft nproc  {nproc}
{user:<8} hard nproc  {nproc}
# Every user, so a broker started from an operator's shell can open its store
# (RocketMQ's own advice sets it for '*'). '*' never matches root (pam_limits):
# add root lines if you run rocketpy as root. nproc is not raised for '*':
# it is every other user's guard against a runaway fork.
{"*":<8} soft nofile {nofile}
{"*":<8} hard nofile {nofile}
"""


# --- the plan -------------------------------------------------------------------------

class FileAction(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"


class SysctlAction(enum.Enum):
    SET = "set"
    UNCHANGED = "unchanged"
    UNKNOWN = "unknown"      # current value unreadable or target not computable


@dataclasses.dataclass(frozen=True, slots=True)
class FileChange:
    path: Path               # absolute: root / relative path
    content: str
    action: FileAction

    def to_json(self, with_content: bool = True) -> dict[str, object]:
        out: dict[str, object] = {"path": str(self.path), "action": self.action.value}
        if with_content:
            out["content"] = self.content
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class SysctlChange:
    name: str
    current: int | None
    target: int | None
    action: SysctlAction
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "current": self.current, "target": self.target,
                "action": self.action.value, "detail": self.detail}


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    root: Path
    files: tuple[FileChange, ...]
    sysctls: tuple[SysctlChange, ...]
    live: bool               # apply would write the running kernel's values
    notes: tuple[str, ...]

    @property
    def changes_anything(self) -> bool:
        return (any(f.action is not FileAction.UNCHANGED for f in self.files)
                or (self.live and any(s.action is SysctlAction.SET for s in self.sysctls)))

    def to_json(self, with_content: bool = True) -> dict[str, object]:
        return {"root": str(self.root), "live": self.live,
                "changes": self.changes_anything,
                "files": [f.to_json(with_content) for f in self.files],
                "sysctl": [s.to_json() for s in self.sysctls], "notes": list(self.notes)}


def is_live_root(root: str | os.PathLike[str]) -> bool:
    return Path(root).resolve() == Path("/")


def desired_files(host: Host, exec_path: str = units.EXEC_PATH_DEFAULT) -> dict[Path, str]:
    """Relative path -> content of every file apply installs."""
    values = recommended_sysctl_values(host)
    for setting in settings.SYSCTL_SETTINGS:
        value = values[setting.name]
        if value is not None:
            values[setting.name] = setting.relation.target(
                host.read_sysctl(setting.name).as_int(), value)
    files = {
        SYSCTL_FILE: render_sysctl_conf(values, host.mem_total_kb()),
        LIMITS_FILE: render_limits_conf(),
        SYSUSERS_FILE: units.SYSUSERS_TEXT,
    }
    for unit in units.units(exec_path):
        files[UNIT_DIR / unit.name] = unit.text
    return files


def plan(root: str | os.PathLike[str], host: Host,
         exec_path: str = units.EXEC_PATH_DEFAULT) -> Plan:
    root = Path(root)
    files = []
    for rel, content in desired_files(host, exec_path).items():
        files.append(FileChange(root / rel, content, _file_action(root / rel, content)))
    sysctls = tuple(_sysctl_changes(host))
    live = is_live_root(root)
    return Plan(root, tuple(files), sysctls, live, tuple(_plan_notes(root, live, host)))


def _file_action(path: Path, content: str) -> FileAction:
    try:
        existing = path.read_text()
    except FileNotFoundError:
        return FileAction.CREATE
    except (OSError, UnicodeDecodeError):
        return FileAction.UPDATE
    if existing != content:
        return FileAction.UPDATE
    if path.stat().st_mode & 0o777 != FILE_MODE:
        return FileAction.UPDATE
    return FileAction.UNCHANGED


def _sysctl_changes(host: Host) -> Iterable[SysctlChange]:
    values = recommended_sysctl_values(host)
    for setting in settings.SYSCTL_SETTINGS:
        if not setting.persisted:
            continue
        reading = host.read_sysctl(setting.name)
        current = reading.as_int()
        recommended = values[setting.name]
        if recommended is None:
            yield SysctlChange(setting.name, current, None, SysctlAction.UNKNOWN,
                               "cannot compute the value: /proc/meminfo has no MemTotal")
            continue
        target = setting.relation.target(current, recommended)
        if current is None:
            yield SysctlChange(setting.name, None, target, SysctlAction.UNKNOWN,
                               reading.error or "unreadable")
        elif current == target:
            yield SysctlChange(setting.name, current, target, SysctlAction.UNCHANGED)
        else:
            yield SysctlChange(setting.name, current, target, SysctlAction.SET)


def _plan_notes(root: Path, live: bool, host: Host) -> list[str]:
    found = [settings.DROP_CACHES_NOTE]
    if not live:
        found.append(
            f"--root {root} is not /: files only, the running kernel is not changed. Values "
            f"were computed from this host (MemTotal {host.mem_total_kb()} kB, its current "
            "vm.* values); for an image meant for other hosts, run `rocketpy tune --apply` "
            "on each host so vm.min_free_kbytes fits its memory")
    return found


# --- apply ------------------------------------------------------------------------------

class LiveStatus(enum.Enum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, slots=True)
class LiveResult:
    name: str
    status: LiveStatus
    message: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "message": self.message}


@dataclasses.dataclass(frozen=True, slots=True)
class FileResult:
    path: Path
    action: FileAction
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "action": self.action.value, "error": self.error}


@dataclasses.dataclass(frozen=True, slots=True)
class ApplyReport:
    files: tuple[FileResult, ...]
    live: tuple[LiveResult, ...]
    notes: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return (any(f.action is not FileAction.UNCHANGED and f.error is None for f in self.files)
                or any(r.status is LiveStatus.APPLIED for r in self.live))

    @property
    def failed(self) -> bool:
        return (any(f.error is not None for f in self.files)
                or any(r.status is LiveStatus.FAILED for r in self.live))

    def to_json(self) -> dict[str, object]:
        return {"changed": self.changed, "failed": self.failed,
                "files": [f.to_json() for f in self.files],
                "sysctl": [r.to_json() for r in self.live], "notes": list(self.notes)}


ProcWriter = Callable[[Path, str], None]


def apply(root: str | os.PathLike[str], host: Host, exec_path: str = units.EXEC_PATH_DEFAULT,
          proc_writer: ProcWriter | None = None) -> ApplyReport:
    """Install the files under `root`; when `root` is "/", also set the live values."""
    the_plan = plan(root, host, exec_path)
    file_results = tuple(_install(change) for change in the_plan.files)
    if the_plan.live:
        live = tuple(apply_live(the_plan.sysctls, host, proc_writer or write_proc))
    else:
        live = ()   # a note in the plan says the running kernel is left alone
    notes = list(the_plan.notes)
    if the_plan.live and any(f.action is not FileAction.UNCHANGED for f in file_results):
        notes.extend(systemd_steps(systemd_booted(), run_command))
    return ApplyReport(file_results, live, tuple(notes))


SYSTEMD_STEPS = (("systemd-sysusers",), ("systemctl", "daemon-reload"))
Runner = Callable[[Sequence[str]], tuple[int, str]]


def systemd_booted() -> bool:
    """sd_booted(3): systemd is PID 1 when /run/systemd/system exists."""
    return os.path.isdir("/run/systemd/system")


def run_command(argv: Sequence[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return proc.returncode, (proc.stderr or proc.stdout).strip()


def systemd_steps(booted: bool, run: Runner) -> list[str]:
    """After new units: create the rocketpy user and make systemd read the units (when systemd runs
    here); the notes say what happened and what is left to do."""
    enable = "`systemctl enable --now rocketpy-namesrv rocketpy-broker`"
    if not booted:
        return ["systemd is not running here: on the target run `systemd-sysusers`, `systemctl daemon-reload`, "
                f"then {enable}"]
    notes = []
    for argv in SYSTEMD_STEPS:
        code, out = run(argv)
        cmd = " ".join(argv)
        if code != 0:
            notes.append(f"`{cmd}` failed ({code}: {out[:200]}); run it by hand, then {enable}")
            return notes
        notes.append(f"ran `{cmd}`")
    notes.append(f"next: {enable}")
    return notes


def _install(change: FileChange) -> FileResult:
    if change.action is FileAction.UNCHANGED:
        return FileResult(change.path, change.action)
    try:
        write_file_atomically(change.path, change.content, FILE_MODE)
    except OSError as exc:
        return FileResult(change.path, change.action,
                          f"cannot write {change.path}: {exc.strerror or exc}"
                          + ("; run as root or pass --root DIR" if exc.errno in
                             (errno.EACCES, errno.EPERM, errno.EROFS) else ""))
    return FileResult(change.path, change.action)


def write_file_atomically(path: Path, content: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.rocketpy-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)   # the umask may have narrowed the mode given to open
        os.write(fd, content.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_proc(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def apply_live(changes: Iterable[SysctlChange], host: Host,
               writer: ProcWriter = write_proc) -> list[LiveResult]:
    """Write each changed value to /proc/sys and read it back."""
    results = []
    for change in changes:
        if change.action is SysctlAction.UNCHANGED:
            results.append(LiveResult(change.name, LiveStatus.UNCHANGED))
            continue
        if change.target is None:
            results.append(LiveResult(change.name, LiveStatus.FAILED, change.detail))
            continue
        path = host.sysctl_path(change.name)
        try:
            writer(path, f"{change.target}\n")
        except OSError as exc:
            results.append(LiveResult(change.name, LiveStatus.FAILED, _explain(exc, change)))
            continue
        now = host.read_sysctl(change.name).as_int()
        if now != change.target:
            results.append(LiveResult(change.name, LiveStatus.FAILED,
                                      f"the kernel kept {now} after writing {change.target}"))
        else:
            results.append(LiveResult(change.name, LiveStatus.APPLIED,
                                      f"{change.current} -> {change.target}"))
    return results


_LATER = "the installed file takes effect at the next boot or `sysctl --system` on the host"


def _explain(exc: OSError, change: SysctlChange) -> str:
    if exc.errno == errno.EROFS:
        return f"/proc/sys is read-only here (a container?): not applied live; {_LATER}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ("permission denied: run as root (a container may not be allowed to change "
                f"vm.* at all); {_LATER}")
    if exc.errno == errno.ENOENT:
        return "this kernel has no such setting"
    if exc.errno == errno.EINVAL:
        return f"the kernel rejected {change.target} as invalid"
    return f"cannot write: {exc.strerror or exc}"


# --- the repository's reference copies -----------------------------------------------------

def reference_files() -> dict[Path, str]:
    """Repository path -> content of the copies kept under sysctl/ and systemd/ for
    operators who install by hand. vm.min_free_kbytes stays commented out there,
    since only `tune --apply` can compute it for a host."""
    files = {
        Path("sysctl/60-rocketpy.conf"): render_sysctl_conf(None),
        Path("sysctl/limits.d/60-rocketpy.conf"): render_limits_conf(),
        Path("systemd/sysusers.d") / units.SYSUSERS_NAME: units.SYSUSERS_TEXT,
    }
    for unit in units.units():
        files[Path("systemd") / unit.name] = unit.text
    return files


def write_reference_files(repo_root: str | os.PathLike[str]) -> None:
    """Regenerate the reference copies after editing the texts:
    python -c "from rocketpy.tune.install import write_reference_files as w; w('.')"
    """
    for rel, content in reference_files().items():
        write_file_atomically(Path(repo_root) / rel, content, FILE_MODE)

