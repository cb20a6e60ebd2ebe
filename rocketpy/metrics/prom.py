"""Prometheus text exposition format 0.0.4: write families, read samples back.

Histograms use fixed upper bounds (microseconds, `LATENCY_BUCKETS_US`) so a
process counts an observation with one bisect and one list increment, and
per-process counts add up in control without any merging logic.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Iterator, Mapping

# Upper bounds of the latency histograms, in microseconds (+Inf is implied).
LATENCY_BUCKETS_US: tuple[int, ...] = (50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000,
                                       100_000, 250_000, 500_000, 1_000_000, 5_000_000)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Mapping[str, str]


def bucket_index(value_us: float) -> int:
    """Index of the bucket an observation falls in (len(LATENCY_BUCKETS_US) = +Inf)."""
    return bisect.bisect_left(LATENCY_BUCKETS_US, value_us)


def new_buckets() -> list[int]:
    return [0] * (len(LATENCY_BUCKETS_US) + 1)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels | None) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


class Exposition:
    """Builds one scrape's text, family by family."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[Labels | None, float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_num(value)}")

    def histogram(self, name: str, help_text: str,
                  series: Iterable[tuple[Labels | None, list[int], float]], *, scale: float = 1e-6) -> None:
        """series: (labels, bucket counts as from new_buckets, sum in microseconds); exported in seconds."""
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} histogram")
        for labels, counts, total_us in series:
            base = dict(labels or {})
            running = 0
            for bound, count in zip(LATENCY_BUCKETS_US, counts, strict=False):
                running += count
                self.lines.append(f"{name}_bucket{_labels({**base, 'le': _num(bound * scale)})} {running}")
            running += counts[-1]
            self.lines.append(f"{name}_bucket{_labels({**base, 'le': '+Inf'})} {running}")
            self.lines.append(f"{name}_sum{_labels(base)} {_num(total_us * scale)}")
            self.lines.append(f"{name}_count{_labels(base)} {running}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample line; comments and junk lines are skipped."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                  for k, v in _LABEL.findall(m.group(3) or "")}
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        yield m.group(1), labels, value
