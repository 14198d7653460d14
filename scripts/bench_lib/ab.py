"""Round trips of this checkout's sidecar against another one's, and the echo floor, taking
turns a block at a time on one CPU, so that all three meet the same machine:

    python -m scripts.bench_lib.ab OTHER/.venv/bin/python [--blocks 40]

OTHER is a clone at the revision to compare with, set up by its own ./scripts/test or demo.
Prints the median `allocate_port` + `release_port` pair of each and their ratio."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .stdio import BLOCK, ECHO, Child, one_cpu, sidecar_args


def _pair(child: Child) -> Callable[[], None]:
    def pair() -> None:
        child.call("allocate_port", service_name="bench")
        child.call("release_port", service_name="bench")

    return pair


def compare(other_python: str, blocks: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="portd-ab-") as tmp, one_cpu():
        folder = Path(tmp)
        quiet = {"PORTD_LOG": "warning"}
        children = {
            "other": Child(
                sidecar_args(folder / "other.sqlite3", [other_python, "-m", "portd"]), quiet
            ),
            "this": Child(sidecar_args(folder / "this.sqlite3"), quiet),
        }
        for child in children.values():
            child.line()  # ready
        echo = Child([sys.executable, "-c", ECHO])

        def echo_once() -> None:
            echo.write({"n": 1})
            echo.line()

        calls = {name: _pair(child) for name, child in children.items()}
        calls["echo"] = echo_once
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(blocks):
            for name, call in calls.items():
                for _ in range(BLOCK):
                    t0 = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - t0)
        for child in [*children.values(), echo]:
            child.close()
    median = {name: statistics.median(samples) * 1e6 for name, samples in times.items()}
    return {
        "other_pair_us": round(median["other"], 1),
        "this_pair_us": round(median["this"], 1),
        "echo_roundtrip_us": round(median["echo"], 1),
        "this_vs_other": round(median["this"] / median["other"], 3),
        "this_roundtrip_ratio": round(median["this"] / median["echo"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_lib.ab", description=__doc__)
    parser.add_argument("other_python", help="the other checkout's interpreter, with portd")
    parser.add_argument("--blocks", type=int, default=40)
    args = parser.parse_args()
    for key, value in compare(args.other_python, args.blocks).items():
        print(f"{key:22s} {value}")


if __name__ == "__main__":
    main()
