"""Claims per second on the etcd registry: one client, then 8 threads at once (each its own
registry, as 8 sidecars, on two hosts), each claiming as a sidecar does (the first unleased
port from where its last claim ended, wrapping around). Duplicates must be 0.

    python -m scripts.bench_lib.etcd [--endpoint http://127.0.0.1:2379] [--seconds 3]

Without --endpoint, starts a private etcd on loopback (the `etcd` binary; scripts/lib/etcd.sh
installs it) with its data in a temporary folder, and ends it by its pid afterwards."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from portd._etcd_client import delete, prefix_end
from portd.process import ProcessIdentity
from portd.registry import LeaseKey, Registry
from portd.registry_etcd import EtcdRegistry

LOW, HIGH = 20000, 59999
THREADS = 8


def bench_claims(endpoint: str, seconds: float = 3.0) -> dict[str, float]:
    prefix = f"/portd-bench-{uuid.uuid4().hex[:8]}"
    results: dict[str, float] = {}
    for label, threads in (("single", 1), ("threads", THREADS)):
        registries = [
            EtcdRegistry.open(endpoint, prefix=f"{prefix}-{label}", host_id=f"host-{n % 2}")
            for n in range(threads)
        ]
        try:
            ports = _run(registries, seconds)
            claimed = [port for group in ports for port in group]
            results[f"etcd_{label}_claims_per_s"] = round(len(claimed) / seconds, 1)
            if threads > 1:
                results["etcd_threads_duplicates"] = len(claimed) - len(set(claimed))
        finally:
            keys = registries[0].keys
            registries[0].client.txn([], [delete(keys.prefix + "/", prefix_end(keys.prefix + "/"))])
            for registry in registries:
                registry.close()
    return results


def bench_etcd(folder: Path, seconds: float = 3.0) -> dict[str, float]:
    """`bench_claims` on a private etcd, beside the same single-client loop on a SQLite file
    in the same run; nothing (and a note) where there is no etcd binary."""
    if shutil.which("etcd") is None:
        print(
            "bench: etcd skipped: no etcd on PATH (scripts/lib/etcd.sh installs it)",
            file=sys.stderr,
        )
        return {}
    (folder / "etcd").mkdir(exist_ok=True)
    with private_etcd(folder / "etcd") as endpoint:
        results = bench_claims(endpoint, seconds)
    registry = Registry.open(folder / "claims.sqlite3")
    try:
        claimed = sum(map(len, _run([registry], seconds)))  # type: ignore[list-item]
    finally:
        registry.close()
    results["sqlite_single_claims_per_s"] = round(claimed / seconds, 1)
    ratio = results["etcd_single_claims_per_s"] / results["sqlite_single_claims_per_s"]
    results["etcd_vs_sqlite_single"] = round(ratio, 3)
    return results


def _run(registries: list[EtcdRegistry], seconds: float) -> list[list[int]]:
    ports: list[list[int]] = [[] for _ in registries]
    go = threading.Barrier(len(registries) + 1)
    deadline = [0.0]

    def claim(n: int, registry: EtcdRegistry) -> None:
        owner, resume = ProcessIdentity(10_000 + n, 1_733_500_000.5 + n), LOW
        go.wait()
        while time.monotonic() < deadline[0]:
            key = LeaseKey(owner, "bench", f"s{len(ports[n])}")
            lease = registry.claim_first_unleased(key, resume, HIGH, [])
            lease = lease or registry.claim_first_unleased(key, LOW, resume - 1, [])
            if lease is None:
                return  # the range is full
            ports[n].append(lease.port)
            resume = lease.port + 1

    workers = [threading.Thread(target=claim, args=(n, r)) for n, r in enumerate(registries)]
    for worker in workers:
        worker.start()
    deadline[0] = time.monotonic() + seconds
    go.wait()
    for worker in workers:
        worker.join(seconds + 30)
    return ports


@contextlib.contextmanager
def private_etcd(folder: Path) -> Iterator[str]:
    """A one-member etcd on loopback with free ports, data in `folder`: its endpoint."""
    client, peer = _free_port(), _free_port()
    endpoint, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    with open(folder / "etcd.log", "wb") as log:
        proc = subprocess.Popen(
            [
                "etcd", "--name=default", f"--data-dir={folder / 'data'}",
                f"--listen-client-urls={endpoint}", f"--advertise-client-urls={endpoint}",
                f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}", "--logger=zap", "--log-level=warn",
            ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not _healthy(endpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not start: see {folder / 'etcd.log'}")
            time.sleep(0.05)
        yield endpoint
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/health", timeout=1) as answer:
            return bool(json.loads(answer.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_lib.etcd", description=__doc__)
    parser.add_argument("--endpoint", help="an etcd to use (default: start a private one)")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.endpoint:
        print(json.dumps(bench_claims(args.endpoint, args.seconds), indent=2))
        return
    with (
        tempfile.TemporaryDirectory(prefix="portd-bench-etcd-") as tmp,
        private_etcd(Path(tmp)) as endpoint,
    ):
        print(json.dumps(bench_claims(endpoint, args.seconds), indent=2))


if __name__ == "__main__":
    main()
