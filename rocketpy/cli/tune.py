"""`rocketpy tune`: check, plan and apply the host tuning RocketMQ asks for.

Wiring: `register(app)` adds the `tune` command to the main typer app.

Exit codes: 0 all ok / applied / nothing to do; 1 a setting is off (--check) or
something could not be applied (--apply); 2 usage error.
"""

from __future__ import annotations

import difflib
import json
import shutil
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from rocketpy.tune import checks as check_mod
from rocketpy.tune import install, units
from rocketpy.tune.host import Host

EXIT_OK = 0
EXIT_OFF = 1        # --check: something is off; --apply: something failed
EXIT_USAGE = 2


def make_host(host_root: Path) -> Host:
    """The host to read; tests replace this to fake the process limits too."""
    return Host(host_root)


def tune(
    check: Annotated[bool, typer.Option(
        "--check", help="Print each setting's current and recommended value and why; "
                        "exit 1 when something is off (the default action).")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the exact files and live sysctl changes --apply would make; "
                          "change nothing.")] = False,
    do_apply: Annotated[bool, typer.Option(
        "--apply", help="Install the sysctl, limits.d, sysusers.d and systemd files under "
                        "--root and, when the root is /, set the sysctl values in the running "
                        "kernel. Safe to run again: a second run changes nothing.")] = False,
    root: Annotated[Path, typer.Option(
        "--root", help="Install into this directory instead of / (for images and tests); "
                       "the running kernel is then left alone.")] = Path("/"),
    store_path: Annotated[Path | None, typer.Option(
        "--store-path", help="The broker's store directory, whose disk's I/O scheduler is "
                             "checked (default /var/lib/rocketpy when it exists).")] = None,
    exec_path: Annotated[str, typer.Option(
        "--exec-path", help="Absolute path of the rocketpy executable written into the "
                            "systemd units' ExecStart.")] = units.EXEC_PATH_DEFAULT,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON for scripts instead of tables.")] = False,
    host_root: Annotated[Path, typer.Option(
        "--host-root", hidden=True,
        help="Read /proc and /sys under this directory (tests).")] = Path("/"),
) -> None:
    """Check and apply RocketMQ's host tuning (vm.*, ulimits, I/O scheduler, THP) and
    install the systemd units. Where RocketMQ's advice is unsafe as written
    (vm.drop_caches, vm.min_free_kbytes=5000000), the safe variant is used and the
    output says why."""
    if sum((check, dry_run, do_apply)) > 1:
        raise typer.BadParameter("choose only one of them",
                                 param_hint="'--check' / '--dry-run' / '--apply'")
    if not exec_path.startswith("/") or any(c.isspace() for c in exec_path):
        raise typer.BadParameter(f"{exec_path!r} is not an absolute path without spaces; "
                                 "systemd needs one for ExecStart", param_hint="'--exec-path'")
    host = make_host(host_root)
    if dry_run:
        _dry_run(host, root, exec_path, as_json)
        raise typer.Exit(EXIT_OK)
    if do_apply:
        report = install.apply(root, host, exec_path)
        _print_apply(report, as_json)
        raise typer.Exit(EXIT_OFF if report.failed else EXIT_OK)
    check_report = check_mod.check(host, store_path)
    _print_check(check_report, as_json)
    raise typer.Exit(EXIT_OK if check_report.all_ok else EXIT_OFF)


def register(app: typer.Typer) -> None:
    """Add `tune` to the main app: `register(app)` in rocketpy/cli/app.py."""
    app.command("tune")(tune)


# --- output ------------------------------------------------------------------------------

def _print_check(report: check_mod.CheckReport, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    header = ("setting", "current", "recommended", "status", "reason")
    rows = [(r.name, r.current, r.recommended, r.status.value.upper(), r.reason)
            for r in report.results]
    typer.echo(_table(header, rows))
    for note in report.notes:
        typer.echo("")
        typer.echo(textwrap.fill(note, _width(), initial_indent="note: ",
                                 subsequent_indent="      "))
    typer.echo("")
    off = report.off
    if off:
        typer.echo(f"{len(off)} of {len(report.results)} off. `rocketpy tune --apply` (as root) "
                   "fixes the vm.* and limits ones; the others say how in their reason.")
    else:
        typer.echo(f"all {len(report.results)} ok or unknown.")


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """Columns sized to their content; the last column wraps to the terminal's width."""
    fixed = len(header) - 1
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i])
              for i in range(fixed)]
    indent = sum(widths) + 2 * fixed
    last_width = max(30, _width() - indent)
    lines = []
    for row in [header, *rows]:
        cells = "  ".join(row[i].ljust(widths[i]) for i in range(fixed))
        wrapped = textwrap.wrap(row[fixed], last_width) or [""]
        lines.append(f"{cells}  {wrapped[0]}".rstrip())
        lines.extend(" " * indent + more for more in wrapped[1:])
    return "\n".join(lines)


def _width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


def _dry_run(host: Host, root: Path, exec_path: str, as_json: bool) -> None:
    the_plan = install.plan(root, host, exec_path)
    if as_json:
        typer.echo(json.dumps(the_plan.to_json(), indent=2))
        return
    for change in the_plan.files:
        verb = {"create": "would create", "update": "would update",
                "unchanged": "unchanged   "}[change.action.value]
        typer.echo(f"{verb} {change.path} (mode {install.FILE_MODE:04o})")
        if change.action is install.FileAction.CREATE:
            typer.echo(textwrap.indent(change.content, "    | "), nl=False)
        elif change.action is install.FileAction.UPDATE:
            typer.echo(_diff(change.path, change.content), nl=False)
    typer.echo("")
    if the_plan.live:
        typer.echo("live sysctl changes (the root is /):")
    else:
        typer.echo(f"live sysctl changes: none, --root {root} is not / "
                   "(these would apply with --root /):")
    for sysctl in the_plan.sysctls:
        if sysctl.action is install.SysctlAction.SET:
            typer.echo(f"  {sysctl.name}: {sysctl.current} -> {sysctl.target}")
        elif sysctl.action is install.SysctlAction.UNCHANGED:
            typer.echo(f"  {sysctl.name}: {sysctl.current} (unchanged)")
        else:
            typer.echo(f"  {sysctl.name}: would write {sysctl.target}; current unknown "
                       f"({sysctl.detail})")
    for note in the_plan.notes:
        typer.echo("")
        typer.echo(textwrap.fill(note, _width(), initial_indent="note: ",
                                 subsequent_indent="      "))
    if not the_plan.changes_anything:
        typer.echo("")
        typer.echo("nothing to change: every file and live value already matches.")


def _diff(path: Path, content: str) -> str:
    try:
        old = path.read_text()
    except (OSError, UnicodeDecodeError):
        old = ""
    diff = difflib.unified_diff(old.splitlines(keepends=True), content.splitlines(keepends=True),
                                fromfile=f"{path} (installed)", tofile=f"{path} (new)")
    text = "".join(diff) or "    (content equal; mode differs)\n"
    return textwrap.indent(text, "    ")


def _print_apply(report: install.ApplyReport, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    past = {"create": "created  ", "update": "updated  ", "unchanged": "unchanged"}
    for result in report.files:
        if result.error:
            typer.echo(f"FAILED    {result.path}: {result.error}")
        else:
            typer.echo(f"{past[result.action.value]} {result.path}")
    for live in report.live:
        line = f"sysctl {live.name}: {live.status.value}"
        typer.echo(f"{line}: {live.message}" if live.message else line)
    for note in report.notes:
        typer.echo("")
        typer.echo(textwrap.fill(note, _width(), initial_indent="note: ",
                                 subsequent_indent="      "))
    typer.echo("")
    if report.failed:
        typer.echo("some changes could not be made (FAILED / failed above); fix the cause "
                   "and run `rocketpy tune --apply` again.", err=True)
    elif report.changed:
        typer.echo("applied.")
    else:
        typer.echo("nothing to change: every file and live value already matches.")
