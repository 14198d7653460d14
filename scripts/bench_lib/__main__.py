"""Run the benchmarks and print a table (or one JSON object with --json)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .contention import bench_contention
from .dispatchers import bench_dispatchers, with_jsonrpcserver
from .etcd import bench_etcd
from .frozen import bench_frozen
from .idle import bench_idle
from .scan import bench_scan
from .stdio import HELLO, hello_world, round_trips, spawn_to_ready

# key -> (goal, "max" or "min"): what the issues ask of each ratio.
GOALS = {
    "scan_ratio": (1.0, "max"),
    "contention_claims_per_s": (5000, "min"),
    "contention_duplicates": (0, "max"),
    "idle_cpu_pct": (1.0, "max"),
    "idle_rss_mb": (45, "max"),
    "ready_ratio": (1.5, "max"),
    "first_answer_ratio": (3.5, "max"),
    "roundtrip_ratio": (10, "max"),
}


def dev_startup(folder: Path, runs: int) -> dict[str, float]:
    figures = spawn_to_ready(folder / "startup.sqlite3", None, runs)
    hello = hello_world([sys.executable, "-c", HELLO], runs)
    return {
        "dev_ready_ms": figures["ready_ms"],
        "dev_first_answer_ms": figures["first_answer_ms"],
        "dev_hello_ms": hello,
        "dev_ready_ratio": round(figures["ready_ms"] / hello, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=15, help="spawns per start-up figure")
    parser.add_argument(
        "--only",
        nargs="*",
        help="run only these: startup frozen roundtrip scan contention idle dispatch etcd",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="portd-bench-") as tmp:
        folder = Path(tmp)
        suites: dict[str, Callable[[], dict[str, Any]]] = {
            "startup": lambda: dev_startup(folder, args.runs),
            "frozen": lambda: bench_frozen(folder, args.runs),
            "roundtrip": lambda: round_trips(folder / "rt.sqlite3", None, 2000),
            "scan": lambda: bench_scan(folder),
            "contention": lambda: bench_contention(folder),
            "idle": lambda: bench_idle(folder, args.idle_seconds),
            "dispatch": lambda: bench_dispatchers(args.runs),
            "etcd": lambda: bench_etcd(folder),
        }
        results: dict[str, Any] = {}
        for name, suite in suites.items():
            if args.only and name not in args.only:
                continue
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            results.update(suite())
        if "dispatch_us" in results:
            results.update(with_jsonrpcserver(results))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(table(results))
    return 0


def table(results: dict[str, Any]) -> str:
    rows = [("figure", "value", "goal", "")]
    for key, value in results.items():
        goal = GOALS.get(key)
        verdict = ""
        if goal is not None:
            ok = value <= goal[0] if goal[1] == "max" else value >= goal[0]
            verdict = "ok" if ok else "MISSED"
        rows.append(
            (
                key,
                str(value),
                f"{'<=' if goal and goal[1] == 'max' else '>='} {goal[0]}" if goal else "",
                verdict,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


if __name__ == "__main__":
    sys.exit(main())
