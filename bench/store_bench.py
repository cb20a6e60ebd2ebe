"""Store append and read benchmark: FileStore next to raw os.pwrite of the same bytes.

Never a test. Bounded in count (--messages) and time (--seconds per measurement).

For every message size (128 B, 1 KiB), batch size (1, 32, 256) and flush mode
(SYNC: one fdatasync per batch; ASYNC: none per batch, one at the end), it
measures, interleaved A B A B over --runs runs:

  A  store  FileStore.append(batch) [+ flush()]: validation, offset patching,
            join, pwrite into a zero-filled CommitLog file
  B  raw    os.pwrite(pre-joined batch bytes) [+ os.fdatasync] into a zero-filled
            file of the same size on the same disk

and prints messages/s, MB/s and the ratio store/raw (the figure that matters;
target: ASYNC batch appends of 1 KiB at >= 50 % of raw). Then it dispatches a
backlog and reads it back with get_message (ConsumeQueue + CommitLog scans).

    python bench/store_bench.py                 # full run, a few minutes
    python bench/store_bench.py --quick         # ~30 s smoke run
    python bench/store_bench.py --json out.json --profile async-1024-256
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rocketpy.config import StoreConfig  # noqa: E402
from rocketpy.protocol import message as m  # noqa: E402
from rocketpy.store.api import PutRequest  # noqa: E402
from rocketpy.store.file_store import FileStore  # noqa: E402

MIB = 1 << 20
SIZES = (128, 1024)
BATCHES = (1, 32, 256)
MODES = ("SYNC", "ASYNC")
QUEUES = 4
TOPIC = "BenchTopic"
ZERO_CHUNK = bytes(4 * MIB)
INDEX_SLOTS = 1_000_000
INDEX_ENTRIES = 4_000_000


# --- machine --------------------------------------------------------------------------------


def machine_info(bench_dir: Path) -> dict[str, str]:
    info = {
        "nproc": str(os.cpu_count()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu": _cpu_model(),
    }
    dev, mnt, fstype = _mount_of(bench_dir)
    info["disk"] = f"{dev} on {mnt} ({fstype})"
    info["disk_rotational"] = _rotational(dev)
    info["bench_dir"] = str(bench_dir)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mount_of(path: Path) -> tuple[str, str, str]:
    best = ("?", "/", "?")
    try:
        real = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fstype = line.split()[:3]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[1]):
                best = (dev, mnt, fstype)
    except OSError:
        pass
    return best


def _rotational(dev: str) -> str:
    name = os.path.basename(dev)
    for cand in (name, name.rstrip("0123456789")):
        p = Path(f"/sys/block/{cand}/queue/rotational")
        if p.exists():
            flag = p.read_text().strip()
            return f"rotational={flag}" + (" (virtio disks often report 1)" if flag == "1" and
                                           name.startswith("vd") else "")
    return "?"


# --- workloads -------------------------------------------------------------------------------


def make_record(size: int, n: int) -> bytearray:
    """An encoded record of exactly `size` bytes (body padded to fit)."""
    props = m.format_properties({m.PROPERTY_TAGS: "TagA", m.PROPERTY_UNIQ_KEY: f"{n:032X}"})
    fixed = m.record_size(0, len(TOPIC), len(props.encode()))
    body = (b"x" * max(0, size - fixed))
    rec = m.MessageRecord(topic=TOPIC, body=body, queue_id=n % QUEUES, born_timestamp=1,
                          store_host="10.0.0.1", store_port=10911, properties=props)
    data = m.encode_record(rec)
    assert len(data) == max(size, fixed)
    return data


def make_batch(size: int, batch: int) -> list[PutRequest]:
    return [PutRequest(TOPIC, i % QUEUES, 0, make_record(size, i)) for i in range(batch)]


@dataclasses.dataclass
class Sample:
    messages: int
    seconds: float

    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


class StoreTarget:
    """A FileStore with realistic file sizes, kept across runs of one case family."""

    def __init__(self, root: Path, file_size: int) -> None:
        # index sized for the backlog (84 MiB) rather than RocketMQ's 420 MB default
        self.config = StoreConfig(store_path_root_dir=str(root), mapped_file_size_commitlog=file_size,
                                  max_hash_slot_num=INDEX_SLOTS, max_index_num=INDEX_ENTRIES)
        self.store = FileStore(self.config)

    def prepare(self) -> None:
        """Zero-fill the next file, as the writer does off the hot path (never timed)."""
        self.store.prepare_next_file()

    def run(self, batch: list[PutRequest], batches: int, sync: bool, deadline_s: float) -> Sample:
        store = self.store
        append, flush = store.append, store.flush
        n = 0
        t0 = time.perf_counter()
        stop = t0 + deadline_s
        for _ in range(batches):
            append(batch)
            if sync:
                flush()
            n += 1
            if time.perf_counter() > stop:
                break
        if not sync:
            flush()
        return Sample(n * len(batch), time.perf_counter() - t0)

    def close(self) -> None:
        self.store.close()


class RawTarget:
    """One zero-filled file of the CommitLog file size; pwrite wraps around inside it."""

    def __init__(self, path: Path, file_size: int) -> None:
        self.file_size = file_size
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        pos = 0
        while pos < file_size:
            pos += os.pwrite(self.fd, ZERO_CHUNK[:min(len(ZERO_CHUNK), file_size - pos)], pos)
        os.fdatasync(self.fd)
        self.pos = 0

    def run(self, payload: bytes, batch_len: int, batches: int, sync: bool, deadline_s: float
            ) -> Sample:
        fd, size, pwrite, fdatasync = self.fd, len(payload), os.pwrite, os.fdatasync
        pos = self.pos
        n = 0
        t0 = time.perf_counter()
        stop = t0 + deadline_s
        for _ in range(batches):
            if pos + size > self.file_size:
                pos = 0
            pwrite(fd, payload, pos)
            pos += size
            if sync:
                fdatasync(fd)
            n += 1
            if time.perf_counter() > stop:
                break
        if not sync:
            fdatasync(fd)
        self.pos = pos
        return Sample(n * batch_len, time.perf_counter() - t0)

    def close(self) -> None:
        os.close(self.fd)


# --- the append matrix -------------------------------------------------------------------------


@dataclasses.dataclass
class CaseResult:
    name: str
    mode: str
    size: int
    batch: int
    store: list[Sample]
    raw: list[Sample]

    def ratios(self) -> list[float]:
        return [s.rate() / r.rate() for s, r in zip(self.store, self.raw, strict=True) if r.rate()]

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "mode": self.mode, "size": self.size, "batch": self.batch,
                "store": [dataclasses.asdict(s) for s in self.store],
                "raw": [dataclasses.asdict(s) for s in self.raw],
                "store_msgs_per_s": [s.rate() for s in self.store],
                "raw_msgs_per_s": [r.rate() for r in self.raw],
                "ratio": self.ratios()}


def run_appends(args: argparse.Namespace, work: Path, out: Callable[[str], None]
                ) -> list[CaseResult]:
    results: list[CaseResult] = []
    for size in SIZES:
        store = StoreTarget(work / f"store-{size}", args.file_size)
        raw = RawTarget(work / f"raw-{size}", args.file_size)
        try:
            for mode in MODES:
                sync = mode == "SYNC"
                for batch in BATCHES:
                    reqs = make_batch(size, batch)
                    payload = b"".join(bytes(r.data) for r in reqs)
                    messages = args.messages if not sync else max(batch, args.messages // 4)
                    batches = max(1, messages // batch)
                    name = f"{mode.lower()}-{size}-{batch}"
                    case = CaseResult(name, mode, size, batch, [], [])
                    # warm-up (page faults, first-file creation) outside the measurement
                    store.prepare()
                    store.run(reqs, min(batches, 8), sync, args.seconds)
                    raw.run(payload, batch, min(batches, 8), sync, args.seconds)
                    for _ in range(args.runs):        # interleaved A B A B
                        store.prepare()
                        case.store.append(store.run(reqs, batches, sync, args.seconds))
                        case.raw.append(raw.run(payload, batch, batches, sync, args.seconds))
                    results.append(case)
                    out(format_case(case))
        finally:
            store.close()
            raw.close()
            shutil.rmtree(work / f"store-{size}", ignore_errors=True)
            (work / f"raw-{size}").unlink(missing_ok=True)
    return results


def _mmm(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


HEADER = (f"{'case':<18}{'store msg/s':>13}{'store MB/s':>11}{'raw msg/s':>13}{'raw MB/s':>10}"
          f"{'ratio med':>10}{'  [min..max]':<16}{'n/run':>8}")


def format_case(c: CaseResult) -> str:
    s_med = _mmm([s.rate() for s in c.store])[0]
    r_med = _mmm([r.rate() for r in c.raw])[0]
    ratio_med, ratio_min, ratio_max = _mmm(c.ratios()) if c.ratios() else (0.0, 0.0, 0.0)
    return (f"{c.name:<18}{s_med:>13,.0f}{s_med * c.size / 1e6:>11.1f}{r_med:>13,.0f}"
            f"{r_med * c.size / 1e6:>10.1f}{ratio_med:>10.2f}  [{ratio_min:.2f}..{ratio_max:.2f}]"
            f"{' ':<2}{statistics.median(s.messages for s in c.store):>8,.0f}")


def format_rates(c: CaseResult) -> str:
    s = _mmm([x.rate() for x in c.store])
    r = _mmm([x.rate() for x in c.raw])
    return (f"{c.name:<18} store msg/s med {s[0]:,.0f} min {s[1]:,.0f} max {s[2]:,.0f} | "
            f"raw med {r[0]:,.0f} min {r[1]:,.0f} max {r[2]:,.0f}")


# --- the append hot loop alone ------------------------------------------------------------------


def run_hot_loop(args: argparse.Namespace, work: Path, out: Callable[[str], None]
                 ) -> list[dict[str, object]]:
    """append() vs pwrite() alone, best of 5 (no fdatasync): the CPU cost per message, steadier
    than the end-to-end rates on a busy machine."""
    rows: list[dict[str, object]] = []
    target = StoreTarget(work / "store-hot", args.file_size)
    raw = RawTarget(work / "raw-hot", args.file_size)
    try:
        for size in SIZES:
            for batch in BATCHES:
                reqs = make_batch(size, batch)
                payload = b"".join(bytes(r.data) for r in reqs)
                reps = max(1, min(args.messages // batch, 400))
                store_us: list[float] = []
                raw_us: list[float] = []
                for _ in range(5):
                    target.prepare()
                    if target.store.committed_offset + reps * len(payload) + 8 > \
                            (target.store.committed_offset // args.file_size + 2) * args.file_size:
                        reps = max(1, reps // 2)
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        target.store.append(reqs)
                    store_us.append((time.perf_counter() - t0) / (reps * batch) * 1e6)
                    t0 = time.perf_counter()
                    pos = raw.pos
                    for _ in range(reps):
                        if pos + len(payload) > raw.file_size:
                            pos = 0
                        os.pwrite(raw.fd, payload, pos)
                        pos += len(payload)
                    raw.pos = pos
                    raw_us.append((time.perf_counter() - t0) / (reps * batch) * 1e6)
                target.store.flush()
                s_best, r_best = min(store_us), min(raw_us)
                rows.append({"size": size, "batch": batch, "store_us_per_msg": s_best,
                             "raw_us_per_msg": r_best, "ratio": r_best / s_best})
                out(f"hot loop {size:>5} B x {batch:<4} append {s_best:6.3f} us/msg   pwrite "
                    f"{r_best:6.3f} us/msg   ratio {r_best / s_best:.2f}")
    finally:
        target.close()
        raw.close()
    return rows


# --- reads --------------------------------------------------------------------------------------


def run_reads(args: argparse.Namespace, work: Path, out: Callable[[str], None]) -> dict[str, object]:
    root = work / "store-read"
    target = StoreTarget(root, args.file_size)
    store = target.store
    size, batch = 1024, 32
    reqs = make_batch(size, batch)
    total = max(batch, args.read_messages)
    store.append(reqs)                   # warm-up: the first dispatch creates the index file
    store.flush()
    store.dispatch()
    for _ in range(total // batch):
        store.append(reqs)
    store.flush()
    t0 = time.perf_counter()
    store.dispatch()
    dispatch_s = time.perf_counter() - t0
    appended = total // batch * batch
    read_samples: list[Sample] = []
    bytes_read = 0
    for _ in range(args.runs):
        n = 0
        bytes_read = 0
        t0 = time.perf_counter()
        for qid in range(QUEUES):
            offset = 0
            while True:
                res = store.get_message(TOPIC, qid, offset, 32)
                if not res.records:
                    break
                n += len(res.records)
                bytes_read += sum(len(r) for r in res.records)
                offset = res.next_begin_offset
        read_samples.append(Sample(n, time.perf_counter() - t0))
    target.close()
    shutil.rmtree(root, ignore_errors=True)
    rates = [s.rate() for s in read_samples]
    med, lo, hi = _mmm(rates)
    mb = med * size / 1e6
    out(f"dispatch   {appended:,} records of {size} B (ConsumeQueue + index of UNIQ_KEY): "
        f"{appended / dispatch_s:,.0f} records/s ({dispatch_s:.2f} s)")
    out(f"get_message x32 over the backlog: median {med:,.0f} msg/s ({mb:.1f} MB/s) "
        f"[min {lo:,.0f} .. max {hi:,.0f}], {read_samples[0].messages:,} messages per run")
    return {"dispatch_records": appended, "dispatch_seconds": dispatch_s,
            "read_msgs_per_s": rates, "read_messages_per_run": read_samples[0].messages}


# --- profile --------------------------------------------------------------------------------------


def run_profile(args: argparse.Namespace, work: Path, out: Callable[[str], None]) -> str:
    mode, size_s, batch_s = args.profile.split("-")
    sync, size, batch = mode.upper() == "SYNC", int(size_s), int(batch_s)
    target = StoreTarget(work / "store-profile", args.file_size)
    reqs = make_batch(size, batch)
    batches = max(1, args.messages // batch)
    target.prepare()
    target.run(reqs, 8, sync, args.seconds)
    target.prepare()
    prof = cProfile.Profile()
    prof.enable()
    sample = target.run(reqs, batches, sync, args.seconds)
    prof.disable()
    target.close()
    shutil.rmtree(work / "store-profile", ignore_errors=True)
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(18)
    text = buf.getvalue()
    out(f"profile {args.profile}: {sample.rate():,.0f} msg/s under cProfile (overhead inflates "
        "Python-heavy frames)")
    out(text)
    return text


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts and 1 s per measurement")
    p.add_argument("--messages", type=int, default=None,
                   help="messages per measurement (ASYNC; SYNC runs a quarter); default 50000")
    p.add_argument("--seconds", type=float, default=None,
                   help="time cap per measurement in seconds; default 3 (quick: 1)")
    p.add_argument("--runs", type=int, default=3, help="interleaved runs per case (default 3)")
    p.add_argument("--file-size", type=int, default=256 * MIB,
                   help="CommitLog file size in bytes (default 256 MiB)")
    p.add_argument("--read-messages", type=int, default=None,
                   help="backlog size for the read bench (default 100000, quick 20000)")
    p.add_argument("--dir", type=Path, default=None,
                   help="where to put the files (default: a temp dir next to the repo, same disk)")
    p.add_argument("--json", dest="json_out", type=Path, default=None, help="write results here")
    p.add_argument("--profile", default=None, metavar="MODE-SIZE-BATCH",
                   help="also cProfile one store case, e.g. async-1024-256")
    p.add_argument("--skip-appends", action="store_true", help="only the read bench / profile")
    args = p.parse_args(argv)
    if args.messages is None:
        args.messages = 10_000 if args.quick else 50_000
    if args.seconds is None:
        args.seconds = 1.0 if args.quick else 3.0
    if args.read_messages is None:
        args.read_messages = 20_000 if args.quick else 100_000
    if args.quick:
        args.file_size = min(args.file_size, 64 * MIB)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = args.dir if args.dir is not None else REPO.parent
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rocketpy-store-bench-", dir=base))
    lines: list[str] = []

    def out(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    info = machine_info(work)
    out("# rocketpy store bench")
    for k, v in info.items():
        out(f"#   {k}: {v}")
    if "tmpfs" in info["disk"]:
        out("#   WARNING: the bench dir is on tmpfs; fdatasync figures mean nothing there")
    out(f"#   messages/measurement {args.messages} (SYNC: a quarter), cap {args.seconds} s, "
        f"runs {args.runs} interleaved store/raw, CommitLog file {args.file_size // MIB} MiB, "
        f"{QUEUES} queues")
    report: dict[str, object] = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}}
    try:
        if not args.skip_appends:
            out("")
            out(HEADER)
            cases = run_appends(args, work, out)
            out("")
            for c in cases:
                out(format_rates(c))
            report["appends"] = [c.to_json() for c in cases]
            target = [c for c in cases if c.mode == "ASYNC" and c.size == 1024 and c.batch > 1]
            if target:
                worst = min(statistics.median(c.ratios()) for c in target)
                verdict = "MET" if worst >= 0.5 else "MISSED"
                out(f"\ntarget ASYNC 1 KiB batch appends >= 50% of raw pwrite: {verdict} "
                    f"(worst median ratio {worst:.2f})")
            out("")
            report["hot_loop"] = run_hot_loop(args, work, out)
        out("")
        report["reads"] = run_reads(args, work, out)
        if args.profile:
            out("")
            report["profile"] = run_profile(args, work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json_out:
        report["output"] = lines
        args.json_out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
