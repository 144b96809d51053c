"""Soak test of MemoryHub: ``python -m tests.soak`` (``make soak``; 10 minutes; not part of ``make test``).

The load of ``tests.load`` (50 legacy REQ clients on MemoryOrchestratorService and CacheManager, 10 native
DEALER clients pipelining MemoryClient kv_set/kv_get, every reply checked) for 10 minutes, printed as a table
per minute: throughput, p50/p99 latency, errors, the hub's RSS, its Redis's RSS and its thread count, so a
leak or a latency drift shows as a trend. Exit 1 on any error, or when the hub's RSS grew more than
``--rss-growth-mb`` between the end of the warm-up and the end.

    python -m tests.soak --seconds 600 --interval 60
"""
from __future__ import annotations

import multiprocessing
import sys

from tests.load import parse_args, run


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv, seconds=600.0, interval=60.0), "soak")


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    sys.exit(main())
