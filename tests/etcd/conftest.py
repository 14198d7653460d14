"""A real etcd for the etcd registry's tests: one for the session, started on loopback with
free ports and a temporary data folder, and private ones for tests that kill theirs. Each
is ended by its pid. Without an `etcd` binary (scripts/lib/etcd.sh installs one) or the
etcd3gw package (the `etcd` extra), every test here is skipped, saying which is missing."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.error import URLError
from urllib.request import urlopen

import pytest

from portd.process import ProcessIdentity
from portd.registry import LeaseKey
from tests.support.sidecar import wait_until

if TYPE_CHECKING:
    from portd.registry_etcd import EtcdRegistry

START_TIMEOUT = 20.0


def owner(pid: int) -> ProcessIdentity:
    """A made-up owner, with a start time of many digits (registries never look at it)."""
    return ProcessIdentity(pid, 1_733_500_000.123457 + pid)


def key(service: str, pid: int = 4242, app: str = "app") -> LeaseKey:
    return LeaseKey(owner(pid), app, service)


def skip_reason() -> str | None:
    if shutil.which("etcd") is None:
        return "no etcd binary on PATH (scripts/lib/etcd.sh `ensure_etcd` installs it)"
    if importlib.util.find_spec("etcd3gw") is None:
        return "etcd3gw is not installed (pip install portd[etcd])"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EtcdServer:
    """One etcd member on 127.0.0.1; `kill` and `start` again keep its ports and data."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.client_port, self.peer_port = _free_port(), _free_port()
        self.endpoint = f"http://127.0.0.1:{self.client_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            "etcd",
            "--name=default",
            f"--data-dir={self.data}",
            f"--listen-client-urls={self.endpoint}",
            f"--advertise-client-urls={self.endpoint}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--logger=zap",
            "--log-level=warn",
        ]
        with open(self.folder / "etcd.log", "ab") as log:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self._healthy, START_TIMEOUT, 0.05, f"etcd healthy at {self.endpoint}")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.folder / "etcd.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"etcd exited with {self.proc.returncode}:\n{log}")
        try:
            with urlopen(f"{self.endpoint}/health", timeout=1) as answer:
                return bool(json.loads(answer.read()).get("health") == "true")
        except (URLError, OSError, ValueError):
            return False

    def kill(self) -> None:
        """SIGKILL, by pid: no goodbye to its clients."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture(scope="session", autouse=True)
def _needs_etcd() -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """An etcd of the test's own, for a test that kills it."""
    server = EtcdServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    return f"/portd-test-{uuid.uuid4().hex[:12]}"


OpenRegistry = Callable[..., "EtcdRegistry"]


@pytest.fixture
def open_registry(etcd: EtcdServer, prefix: str) -> Iterator[OpenRegistry]:
    """`open_registry(host_id="alpha", ttl=10, endpoint=..., **options)`: an EtcdRegistry on
    the session's etcd under the test's own prefix, as the sidecar of host `host_id` would
    open it; all are closed (keep-alive stopped, nothing revoked) when the test ends."""
    from portd.registry_etcd import EtcdRegistry

    opened: list[EtcdRegistry] = []

    def open_one(host_id: str = "alpha", ttl: int = 10, **options: Any) -> EtcdRegistry:
        options.setdefault("prefix", prefix)
        endpoint = options.pop("endpoint", etcd.endpoint)
        registry = EtcdRegistry.open(endpoint, host_id=host_id, ttl=ttl, **options)
        opened.append(registry)
        return registry

    yield open_one
    for registry in opened:
        with contextlib.suppress(Exception):
            registry.close()
