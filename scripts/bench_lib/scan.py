"""One conflict scan with N leases and N listening sockets, against `ss -ltnH`."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from portd.health import HealthChecker
from portd.manager import PortManager
from portd.monitor import Monitor
from portd.process import identify
from portd.protocol.models import PortConfig
from portd.registry import LeaseKey, Registry

LISTENERS = """
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks), flush=True)
sys.stdin.read()
"""


def bench_scan(folder: Path, count: int = 1000, runs: int = 30) -> dict[str, float]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 256)), hard))
    child = subprocess.Popen(
        [sys.executable, "-c", LISTENERS, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ports = [int(p) for p in child.stdout.readline().split()]
        owner = identify(os.getpid())
        assert owner is not None
        registry = Registry.open(folder / "scan.sqlite3")
        with registry.transaction() as tx:
            for port in ports:
                tx.insert(port, LeaseKey(owner, "bench", f"svc{port}"))
        manager = PortManager(registry, owner, PortConfig(app_id="bench"))
        monitor = Monitor(manager, HealthChecker(manager, owner))
        t0 = time.perf_counter()
        conflicts = monitor.scan()  # the first pass maps every socket to its pid
        cold = time.perf_counter() - t0
        assert conflicts == [], conflicts
        scans, ss = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            monitor.scan()
            scans.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run(["ss", "-ltnH"], capture_output=True, check=True)
            ss.append(time.perf_counter() - t0)
        registry.close()
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(10)
        if child.stdout:
            child.stdout.close()
    scan, ss_median = statistics.median(scans), statistics.median(ss)
    return {
        "scan_ms": round(scan * 1000, 3),
        "scan_cold_ms": round(cold * 1000, 3),
        "ss_ms": round(ss_median * 1000, 3),
        "scan_ratio": round(scan / ss_median, 3),
    }
