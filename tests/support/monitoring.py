"""Helpers for the monitoring tests (conflicts, orphans, health): a sidecar with short
intervals, a way to prove that earlier scans have spoken, and a few odd listeners."""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import psutil

from tests.support.processes import reap
from tests.support.sidecar import Sidecar

SCAN_INTERVAL = 0.2  # seconds; short, so that tests need not wait long for a pass
_markers = itertools.count()


def private_range(width: int = 40) -> tuple[int, int]:
    """A port range below the OS's ephemeral range (32768+ here, where start_listener(0)
    ports come from), picked at random so that tests of other suites running at the same
    time on their own registries are unlikely to take our leased ports."""
    low = random.randrange(20000, 32000 - width)
    return low, low + width


def configure(sidecar: Sidecar, **config: Any) -> dict[str, Any]:
    """Short scan interval and a private port range, plus whatever the test says."""
    low, high = private_range()
    settings: dict[str, Any] = {
        "conflict_scan_interval": SCAN_INTERVAL,
        "port_range": [low, high],
        "preferred_port": low,
        **config,
    }
    result: dict[str, Any] = sidecar.call("init_port_manager", config=settings)
    return result


def events_settled(sidecar: Sidecar) -> None:
    """Return once every event from scans and checks already answered has arrived.

    Events go out through the sidecar's loop in the order they were emitted. Moving a
    throw-away service emits a PortChanged of its own; once that arrives, anything emitted
    before it has arrived too, so counting events after this proves "exactly one"."""
    marker = f"marker-{os.getpid()}-{next(_markers)}"
    sidecar.call("allocate_port", service_name=marker)
    sidecar.call("handle_port_conflict", service_name=marker)
    sidecar.wait_event("PortChanged", predicate=lambda e: e.get("service") == marker)


def run_scans(sidecar: Sidecar, count: int = 3) -> list[list[str]]:
    """Run `count` full conflict scans (check_port_conflicts is one pass each)."""
    return [sidecar.call("check_port_conflicts") for _ in range(count)]


def binds(port: int) -> bool:
    """Can a server bind this port on all interfaces, IPv4 and IPv6 (without listening)?"""
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


def has_ended(pid: int) -> bool:
    """Gone, or a zombie not yet reaped by its (adoptive) parent: it holds no port."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


_DEFERRED = """
import socket, sys
sys.stdin.readline()
sock = socket.socket(socket.AF_INET)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(('0.0.0.0', int(sys.argv[1])))
sock.listen(16)
print(sock.getsockname()[1], flush=True)
while True:
    sock.accept()[0].close()
"""


class DeferredListener:
    """A process (not any app's descendant) that listens on PORT only when told to, so a
    test can `attach_process` its pid before it takes the port."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DEFERRED, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid

    def listen(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise OSError("deferred listener could not bind its port")
        return int(line)

    def stop(self) -> None:
        reap(self.proc)


class SilentServer:
    """A socket in this test process that listens but never accepts: the kernel completes
    the TCP handshake from the backlog, so a client connects, sends its request, and then
    waits for an answer that never comes."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


def terminate(pid: int) -> None:
    """SIGKILL by pid, tolerating a process that is already gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def about(service: str) -> Callable[[dict[str, Any]], bool]:
    """Matches the events about `service`."""
    return lambda event: event.get("service") == service
