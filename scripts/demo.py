"""The portd tour: what an app sees when it runs the sidecar.

Spawns `portd serve` exactly as a Tauri or Electron app would (pipes, NDJSON), on a private
registry in a temporary folder, and narrates each exchange.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BOLD, DIM, GREEN, YELLOW, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[33m", "\033[0m"
if not sys.stdout.isatty():
    BOLD = DIM = GREEN = YELLOW = RESET = ""


def step(text: str) -> None:
    print(f"\n{BOLD}{text}{RESET}")


def show(direction: str, message: Any) -> None:
    colour = GREEN if direction == "<-" else DIM
    print(f"  {colour}{direction} {json.dumps(message)[:150]}{RESET}")


class Sidecar:
    def __init__(self, registry: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "portd", "serve", "--registry", str(registry)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.next_id = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if message.get("method") == "port_event":
                self.events.put(message)
            else:
                self.inbox.put(message)

    def receive(self) -> dict[str, Any]:
        message = self.inbox.get(timeout=10)
        show("<-", message)
        return message

    def call(self, method: str, **params: Any) -> Any:
        self.next_id += 1
        request = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        show("->", request)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        response = self.receive()
        if "error" in response:
            raise RuntimeError(response["error"]["message"])
        return response["result"]


SQUATTER = """
import os, socket, sys, time
read_end, write_end = os.pipe()
if os.fork():
    os.close(write_end)
    print(os.read(read_end, 32).decode(), flush=True)
    sys.exit(0)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("0.0.0.0", int(sys.argv[1])))
sock.listen()
os.write(write_end, str(os.getpid()).encode())
os.close(write_end)
time.sleep(120)
"""


def squat(port: int) -> int:
    """Another program grabs the port. It double-forks so that it is nobody's child: a
    server started by the app itself would be the app's rightful holder, not a squatter."""
    out = subprocess.run(
        [sys.executable, "-c", SQUATTER, str(port)],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return int(out.stdout)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="portd-demo-") as folder:
        registry = Path(folder) / "registry.sqlite3"
        step(f"1. The app spawns the sidecar (private registry {registry})")
        t0 = time.perf_counter()
        sidecar = Sidecar(registry)
        sidecar.receive()
        print(f"  ready after {(time.perf_counter() - t0) * 1000:.0f} ms")

        step("2. It configures the manager: conflicts are scanned every 0.5 s here (default 2 s)")
        sidecar.call("init_port_manager", config={"conflict_scan_interval": 0.5})

        step("3. Ports for a few services: the Vite dev server, an API, a database")
        ports = {
            name: sidecar.call("allocate_port", service_name=name) for name in ("vite", "api", "db")
        }
        print(f"  {ports}")
        again = sidecar.call("allocate_port", serviceName="vite")
        print(f"  asking again (camelCase, as Tauri's invoke sends it) gives {again}: same lease")

        step(f"4. A squatter process takes the API's port {ports['api']}")
        squatter = squat(ports["api"])
        print(f"  squatter pid {squatter} listens on {ports['api']}")
        try:
            event = sidecar.events.get(timeout=15)
            show("<-", event)
            params = event["params"]
            print(
                f"  {YELLOW}conflict resolved: {params['service']} moved "
                f"{params['old_port']} -> {params['new_port']}{RESET}"
            )

            step(f"5. Who holds port {ports['api']} now?")
            owner = sidecar.call("get_port_owner", port=ports["api"])
            print(f"  pid {owner['pid']} ({owner['name']}), user {owner['user']}")
        finally:
            os.kill(squatter, signal.SIGKILL)

        step("6. A health check of every component")
        health = sidecar.call("perform_health_check")
        for component in health["components"]:
            print(f"  {component['component']:<17} {component['status']:<9} {component['message']}")

        step("7. The leases as the app sees them, and the counters")
        for service, info in sidecar.call("get_port_stats").items():
            print(f"  {service:<6} port {info['port']:<6} {info['state']}")
        print(f"  {sidecar.call('get_stats')}")

        step("8. The app quits: shutdown releases this sidecar's leases and exits 0")
        sidecar.call("shutdown")
        code = sidecar.proc.wait(5)
        print(f"  exit code {code}")
        held = [p for p in ports.values() if _bound_by_anyone(p)]
        print(f"  ports still listened on: {held or 'none'}")
        return code


def _bound_by_anyone(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    os.environ.setdefault("PORTD_LOG", "warning")
    sys.exit(main())
