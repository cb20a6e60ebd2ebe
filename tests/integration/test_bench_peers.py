"""`rocketpy bench compare --quick` against rocketpy and Redis, with tiny counts, end to end:
real servers on loopback, every output written and parseable, every server stopped by its pid
and its data dir removed. This keeps the harness working; it asserts no figure or timing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.peers import report  # noqa: E402
from bench.peers.servers import find_binary  # noqa: E402

WORKLOADS = ["produce", "one", "batch", "consume", "e2e", "hold"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


APT_INSTALL_TIMEOUT_S = 600


def _apt_install_redis() -> None:
    """As root on Debian, install redis-server the way tests/compat/setup_clients.sh installs what
    the C++ client needs, so the README's test command works on a fresh machine on its own."""
    if os.geteuid() != 0 or find_binary("apt-get") is None:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=APT_INSTALL_TIMEOUT_S,
                   check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], env=env, capture_output=True,
                   timeout=APT_INSTALL_TIMEOUT_S, check=False)


def _need_redis() -> None:
    if find_binary("redis-server") is None:
        _apt_install_redis()
    if find_binary("redis-server") is None:
        if os.geteuid() != 0:
            pytest.skip("redis-server is not installed and we are not root to install it "
                        "(apt-get install -y redis-server)")
        pytest.fail("redis-server is not installed and `apt-get install -y redis-server` did not install it; "
                    "install it by hand (.ci/run does)")
    for mod in ("redis", "matplotlib"):
        try:
            __import__(mod)
        except ImportError:
            pytest.fail(f"the bench extra is not installed ({mod} missing): pip install -e '.[test,bench]'")


def test_quick_compare_rocketpy_and_redis(tmp_path: Path) -> None:
    _need_redis()
    out_dir, work_dir = tmp_path / "results", tmp_path / "work"
    argv = [sys.executable, "-m", "rocketpy.cli.app", "bench", "compare", "--quick",
            "--systems", "rocketpy,redis", "--sizes", "128", "--runs", "1",
            "--produce-seconds", "0.3", "--one-seconds", "0.2", "--warmup-seconds", "0.1",
            "--backlog", "500", "--hold", "1000", "--e2e-rate", "200", "--e2e-seconds", "0.3",
            "--out", str(out_dir), "--work-dir", str(work_dir)]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    # every server it started is gone, and so are their data dirs
    pids = [int(m) for m in re.findall(r"^# (?:rocketpy|redis): .* pid (\d+),", proc.stdout, re.M)]
    assert len(pids) == 2, proc.stdout
    for pid in pids:
        alive = psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        assert not alive, f"server pid {pid} still running after the harness exited"
    assert not list(work_dir.iterdir()), f"left behind: {list(work_dir.iterdir())}"
    # a progress line per cell
    assert len(re.findall(r"^\[\s*[\d.]+s\s+\d+/\d+\] ", proc.stdout, re.M)) == 2 * len(WORKLOADS)

    data = json.loads((out_dir / "compare.json").read_text())
    assert data["systems"] == ["rocketpy", "redis"]
    assert {"command", "machine", "versions", "durability", "elapsed_s"} <= set(data["meta"])
    errors = [c for c in data["cells"] if "error" in c]
    assert not errors, errors
    assert {c["workload"] for c in data["cells"]} == set(WORKLOADS)
    for row in data["rows"]:
        assert set(row["values"]) == {"rocketpy", "redis"}
        if row["metric"] in ("msgs_per_s", "p50_ms"):   # CPU of a tiny run may round to 0 s: no ratio
            assert row["ratio"] is not None and row["ratio"]["n"] == 1, row

    md = (out_dir / "compare.md").read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and " B | " in ln]
    assert len(table) == len(data["rows"])
    assert "| workload | size | unit | rocketpy | redis | rocketpy / best peer |" in md
    for spec in report.ROWS:
        assert f"| {spec.label} |" in md, spec.label
    for wl in WORKLOADS:
        assert (out_dir / f"{wl}.png").read_bytes()[:8] == PNG_MAGIC, wl


def test_results_md_block_is_replaced_not_duplicated(tmp_path: Path) -> None:
    md = tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\nrocketpy-only figures stay.\n")
    pngs = [tmp_path / "results" / "async" / "produce.png"]
    report.update_results_md(md, "first table", pngs, "async")
    report.update_results_md(md, "sync table", pngs, "sync")
    report.update_results_md(md, "second table", [*pngs, tmp_path / "results" / "async" / "one.png"], "async")
    text = md.read_text()
    for flush in ("async", "sync"):
        assert text.count(report.mark_begin(flush)) == 1 and text.count(report.mark_end(flush)) == 1
    assert "rocketpy-only figures stay." in text
    assert "second table" in text and "first table" not in text and "sync table" in text
    assert "[one.png](results/async/one.png)" in text
