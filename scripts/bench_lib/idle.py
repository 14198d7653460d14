"""An idle sidecar with its monitor running: CPU over a window, and resident memory."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from .stdio import Child, sidecar_args


def bench_idle(folder: Path, seconds: float = 60.0) -> dict[str, float]:
    child = Child(sidecar_args(folder / "idle.sqlite3"), {"PORTD_LOG": "warning"})
    try:
        child.line()
        child.call("allocate_port", service_name="vite")  # something for the monitor to watch
        proc = psutil.Process(child.proc.pid)
        before = proc.cpu_times()
        t0 = time.perf_counter()
        time.sleep(seconds)  # the measurement window itself
        after = proc.cpu_times()
        wall = time.perf_counter() - t0
        rss = proc.memory_info().rss
    finally:
        child.close()
    cpu = (after.user - before.user) + (after.system - before.system)
    return {
        "idle_seconds": round(wall, 1),
        "idle_cpu_pct": round(100 * cpu / wall, 3),
        "idle_rss_mb": round(rss / 2**20, 1),
    }
