"""N sidecars, one per app, allocating at once on one registry file."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from .stdio import Child, sidecar_args

APP = "import sys; sys.stdin.read()"


def bench_contention(folder: Path, sidecars: int = 8, total: int = 1000) -> dict[str, float]:
    registry = folder / "contention.sqlite3"
    apps = [
        subprocess.Popen([sys.executable, "-c", APP], stdin=subprocess.PIPE)
        for _ in range(sidecars)
    ]
    children = [
        Child([*sidecar_args(registry), "--parent-pid", str(app.pid)], {"PORTD_LOG": "warning"})
        for app in apps
    ]
    try:
        for child in children:
            child.line()  # ready
            child.call(
                "init_port_manager", config={"port_range": [20000, 29999], "preferred_port": 20000}
            )
        each = total // sidecars
        ports: list[list[int]] = [[] for _ in children]
        go = threading.Barrier(sidecars + 1)

        def run(index: int, child: Child) -> None:
            requests = b"".join(
                b'{"jsonrpc":"2.0","id":%d,"method":"allocate_port","params":{"service_name":"s%d"}}\n'
                % (n, n)
                for n in range(each)
            )
            go.wait()
            assert child.proc.stdin is not None
            child.proc.stdin.write(requests)
            child.proc.stdin.flush()
            ports[index] = [child.line()["result"] for _ in range(each)]

        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(children)]
        for thread in threads:
            thread.start()
        go.wait()
        t0 = time.perf_counter()
        for thread in threads:
            thread.join(120)
        elapsed = time.perf_counter() - t0
    finally:
        for child in children:
            child.close()
        for app in apps:
            app.kill()
            app.wait(5)
    claimed = [p for group in ports for p in group]
    return {
        "contention_claims": len(claimed),
        "contention_claims_per_s": round(len(claimed) / elapsed, 1),
        "contention_duplicates": len(claimed) - len(set(claimed)),
    }
