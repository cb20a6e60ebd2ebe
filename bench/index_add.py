"""IndexService.add + flush_batch cost per record (a UNIQ_KEY and one KEYS word), CPU and wall.

    python bench/index_add.py [--records N] [--batch B] [--slots S] [--entries E] [--module PATH]

--module loads another indexfile.py (e.g. `git show HEAD~1:rocketpy/store/indexfile.py > /tmp/old.py`)
to compare; a module without flush_batch writes on every put. Files go to a temp dir on /tmp.
Never a test: run by hand.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rocketpy.clock import FakeClock  # noqa: E402

T0 = 1_700_000_000_000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=256, help="records per flush_batch (a dispatch turn)")
    ap.add_argument("--slots", type=int, default=500_000)
    ap.add_argument("--entries", type=int, default=2_000_000)
    ap.add_argument("--module", help="path of another indexfile.py to measure")
    args = ap.parse_args()
    if args.module:
        spec = importlib.util.spec_from_file_location("indexfile_under_test", args.module)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    else:
        mod = importlib.import_module("rocketpy.store.indexfile")
    n = args.records
    d = tempfile.mkdtemp(prefix="index-bench-")
    try:
        svc = mod.IndexService(os.path.join(d, "index"), slot_count=args.slots, entry_count=args.entries,
                               clock=FakeClock(T0))
        svc.load()
        uniqs = [f"7F0000010F2A18B4AAC2{i * 7919:012X}" for i in range(n)]
        keys = [[f"order-{i}"] for i in range(n)]
        flush = getattr(svc, "flush_batch", None)
        svc.add("BenchTopic", ["warm-up"], None, 0, T0)        # the file exists before the clock starts
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(n):
            svc.add("BenchTopic", keys[i], uniqs[i], 100 + i * 200, T0 + i // 10)
            if flush is not None and i % args.batch == args.batch - 1:
                flush()
        if flush is not None:
            flush()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        assert svc.query("BenchTopic", "order-77", 64, 0, 1 << 62) == [100 + 77 * 200]
        assert svc.query("BenchTopic", uniqs[-1], 64, 0, 1 << 62) == [100 + (n - 1) * 200]
        svc.close()
        print(f"{args.module or 'rocketpy.store.indexfile'}: {cpu / n * 1e6:.2f} us/record CPU, "
              f"{wall / n * 1e6:.2f} us/record wall ({n} records, UNIQ_KEY + 1 KEYS word, "
              f"batch {args.batch}, {args.slots} slots; load average {os.getloadavg()[0]:.1f})")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
