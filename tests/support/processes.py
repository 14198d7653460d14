"""Real helper processes for the tests: an app that owns leases and spawns servers, and a
squatter that takes a port. Every one is ended by its pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

APP_SCRIPT = Path(__file__).with_name("fake_app.py")

LISTENER = """
import socket, sys
port = int(sys.argv[1])
sock = socket.socket(socket.AF_INET6 if sys.argv[2] == '6' else socket.AF_INET)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(('::' if sys.argv[2] == '6' else '0.0.0.0', port))
sock.listen(16)
print(sock.getsockname()[1], flush=True)
try:
    while True:
        conn, _ = sock.accept()
        if len(sys.argv) > 3 and sys.argv[3] == 'http':
            conn.recv(4096)
            conn.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok')
        conn.close()
except KeyboardInterrupt:
    pass
"""


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def reap(proc: subprocess.Popen[Any]) -> None:
    """Kill by pid, wait, and close every pipe we hold to it. A process already reaped is
    not signalled again: its pid may belong to someone else by now."""
    if proc.poll() is None:  # still ours (a zombie keeps its pid until we wait for it)
        kill(proc.pid)
    proc.wait(5)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass


class Listener:
    """A process that listens on a TCP port until it is ended (a squatter, or a server)."""

    def __init__(self, port: int = 0, family: str = "4", http: bool = False) -> None:
        args = [sys.executable, "-c", LISTENER, str(port), family] + (["http"] if http else [])
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(5)
            raise OSError(f"listener could not bind port {port}")
        self.port = int(line)
        self.pid = self.proc.pid

    def stop(self) -> None:
        reap(self.proc)


class FakeApp:
    """Stands in for a Tauri/Electron app: a live process whose pid owns leases, and that
    can start servers of its own (descendants) on request."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(APP_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid
        self.children: list[int] = []
        assert self._ask("ping") == "pong"

    def _ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def start_server(self, port: int, http: bool = False) -> int:
        """Start a listener as this app's child; returns its pid."""
        pid = int(self._ask(f"listen {port} {'http' if http else 'tcp'}"))
        self.children.append(pid)
        return pid

    def kill(self) -> None:
        """SIGKILL the app alone: the servers it started live on, as after a crash."""
        reap(self.proc)

    def cleanup(self) -> None:
        self.kill()
        for pid in self.children:
            kill(pid)
