"""Metrics: Prometheus text endpoints of the broker and the NameServer.

| module | what |
|---|---|
| prom | the text exposition format (write and read) and fixed-bucket histograms |
| stats | per-process counters on the hot path (plain ints), shipped once a second |
| http | a minimal asyncio HTTP server for GET /metrics |
| broker | control's aggregate of every child's counters, and the broker's gauges |
| pagecache | page-cache residency of CommitLog files (mincore) |
"""
