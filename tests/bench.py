"""`make bench`: run every benchmark, print each, and write one report to var/bench-report.md.

Each benchmark module prints its figures next to a baseline measured in the same run (raw pyzmq echo,
redis-py direct, llama-cpp-python direct, exact FAISS) with the ratio. Benchmarks never assert timings.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = (
    ("tests.bench_hotpath", []),
    ("tests.bench_bus", []),
    ("tests.bench_http", []),
    ("tests.bench_kv", []),
    ("tests.bench_memory", []),
    ("tests.bench_search", []),
    ("tests.bench_backends", []),
    ("tests.model_manager_suite.bench_models", []),
    ("tests.bench_models", []),
    ("tests.bench_predictor", []),
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", help="module names to run (e.g. tests.bench_bus)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per benchmark")
    args = parser.parse_args()
    report = [f"# Benchmark report\n\nRun at {time.strftime('%Y-%m-%d %H:%M:%S')} on this host "
              f"(python {sys.version.split()[0]}).\n"]
    failures = 0
    for module, extra in BENCHMARKS:
        if args.only and module not in args.only:
            continue
        if importlib.util.find_spec(module) is None:
            report.append(f"\n## {module}\n\nnot present\n")
            continue
        started = time.monotonic()
        print(f"== {module}", flush=True)
        try:
            result = subprocess.run([sys.executable, "-m", module, *extra], cwd=REPO, capture_output=True,
                                    text=True, timeout=args.timeout)
            output, code = result.stdout, result.returncode
            if code:
                output += "\n" + result.stderr[-3000:]
        except subprocess.TimeoutExpired as exc:
            output, code = (exc.stdout or "") if isinstance(exc.stdout, str) else "", "timeout"
        elapsed = time.monotonic() - started
        print(output, flush=True)
        failures += code != 0
        report.append(f"\n## {module} ({elapsed:.0f} s{'' if code == 0 else f', exit {code}'})\n\n```\n"
                      f"{output.strip()}\n```\n")
    path = REPO / "var" / "bench-report.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(report))
    print(f"report written to {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
