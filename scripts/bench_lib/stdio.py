"""Timing a child over its pipes: spawn to first line, and request round trips."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ECHO = "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line)\n    sys.stdout.flush()\n"
BLOCK = 50  # round trips a turn, sidecar and echo alternating
HELLO = 'import sys, json\nsys.stdin.readline()\nprint(json.dumps({"hello": 1}), flush=True)\n'


class Child:
    """A process spoken to line by line, synchronously: nothing between us and the pipe."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        self.next_id = 0

    def line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = self.proc.stdout.readline()
        if not raw:
            raise RuntimeError(f"{self.proc.args!r} closed its stdout")
        return json.loads(raw)  # type: ignore[no-any-return]

    def write(self, message: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def call(self, method: str, **params: Any) -> Any:
        self.next_id += 1
        self.write({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            message = self.line()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(message["error"])
                return message.get("result")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()


def sidecar_args(registry: Path, command: list[str] | None = None) -> list[str]:
    return [*(command or [sys.executable, "-m", "portd"]), "serve", "--registry", str(registry)]


def spawn_to_ready(registry: Path, command: list[str] | None, runs: int) -> dict[str, float]:
    """Median ms from spawn to `ready`, and to the first `allocate_port` answer."""
    ready, first = [], []
    for n in range(runs):
        child = Child(sidecar_args(registry, command), {"PORTD_LOG": "warning"})
        child.write(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "allocate_port",
                "params": {"service_name": f"s{n}"},
            }
        )
        child.line()
        ready.append(time.perf_counter() - child.started)
        child.line()
        first.append(time.perf_counter() - child.started)
        child.close()
    return {"ready_ms": _ms(ready), "first_answer_ms": _ms(first)}


def hello_world(args: list[str], runs: int) -> float:
    """Median ms from spawn to the answer of a program that reads a line and prints one."""
    times = []
    for _ in range(runs):
        child = Child(args)
        child.write({"hi": 1})
        child.line()
        times.append(time.perf_counter() - child.started)
        child.close()
    return _ms(times)


@contextmanager
def one_cpu() -> Iterator[None]:
    """Run this process, and the children it spawns meanwhile, on one CPU.

    Left to the scheduler, a ping-pong pair sometimes shares a core (a bare echo answers in
    about 9 us) and sometimes not (about 45 us, waking the other core each time), and it
    can switch mid-run: the echo and the sidecar would be timed under different regimes.
    One CPU for both keeps their ratio about the programs, not about the scheduler."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


ROUNDS = 5  # fresh sidecar and echo processes a round trip figure is the median of


def round_trips(registry: Path, command: list[str] | None, pairs: int) -> dict[str, float]:
    """The median of ROUNDS rounds, each with a fresh sidecar and a fresh echo: how fast a
    process runs depends on where its memory landed (the same code, spawned again, runs up
    to a fifth faster or slower, for its whole life), so one pair of processes is one draw,
    and a figure from a single draw swings from run to run whatever the code does."""
    with one_cpu():
        rounds = [
            _round_trips(registry.with_suffix(f".{n}.sqlite3"), command, pairs // ROUNDS)
            for n in range(ROUNDS)
        ]
    pair = statistics.median(r[0] for r in rounds)
    floor = statistics.median(r[1] for r in rounds)
    ratios = sorted(p / f for p, f in rounds)
    return {
        "roundtrip_pair_us": round(pair * 1e6, 1),
        "echo_roundtrip_us": round(floor * 1e6, 1),
        "roundtrips_per_s": round(1 / pair, 1),
        "roundtrip_ratio": round(statistics.median(ratios), 2),
        "roundtrip_ratio_lowest": round(ratios[0], 2),
        "roundtrip_ratio_highest": round(ratios[-1], 2),
    }


def _round_trips(registry: Path, command: list[str] | None, pairs: int) -> tuple[float, float]:
    """Median seconds of an `allocate_port` + `release_port` pair, and of an echo round
    trip. The sidecar and the echo take turns, a block each: this VM's speed drifts by a
    third within seconds, and timing one after the other would compare two different
    machines."""
    sidecar = Child(sidecar_args(registry, command), {"PORTD_LOG": "warning"})
    sidecar.line()
    echo = Child([sys.executable, "-c", ECHO])
    times: list[float] = []
    echo_times: list[float] = []
    for block in range(max(pairs // BLOCK, 1)):
        for _ in range(BLOCK):
            t0 = time.perf_counter()
            sidecar.call("allocate_port", service_name="bench")
            sidecar.call("release_port", service_name="bench")
            times.append(time.perf_counter() - t0)
        for n in range(BLOCK):
            t0 = time.perf_counter()
            echo.write({"n": block * BLOCK + n})
            echo.line()
            echo_times.append(time.perf_counter() - t0)
    sidecar.close()
    echo.close()
    return statistics.median(times), statistics.median(echo_times)


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)
