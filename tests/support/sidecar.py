"""A client that talks to a real `portd serve` over its pipes, as an app would.

The command is `python -m portd` from this checkout, or the frozen binary when
PORTD_SIDECAR names it, so that one suite proves both.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 15.0


def sidecar_command() -> list[str]:
    frozen = os.environ.get("PORTD_SIDECAR")
    return [frozen] if frozen else [sys.executable, "-m", "portd"]


def wait_until(
    condition: Callable[[], Any],
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")


class Sidecar:
    def __init__(
        self,
        registry: Path | str,
        *,
        parent_pid: int | None = None,
        framing: str = "ndjson",
        app_id: str | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        stderr_path: Path | None = None,
        command: list[str] | None = None,
        send_first: bytes | None = None,
        **popen: Any,
    ) -> None:
        args = [*(command or sidecar_command()), "serve", "--registry", str(registry)]
        if framing != "ndjson":
            args += ["--framing", framing]
        if parent_pid is not None:
            args += ["--parent-pid", str(parent_pid)]
        if app_id is not None:
            args += ["--app-id", app_id]
        args += extra_args or []
        self.framing = "lsp" if framing == "lsp" else "ndjson"
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, "PORTD_LOG": "info", **(env or {})},
            **popen,
        )
        self.pid = self.proc.pid
        self.raw = bytearray()  # every byte of stdout, to prove it carries frames only
        self.messages: queue.Queue[dict[str, Any] | list[Any] | None] = queue.Queue()
        self.notifications: list[dict[str, Any]] = []
        self._responses: dict[Any, Any] = {}
        self._lock = threading.Condition()
        self._next_id = 0
        if send_first is not None:
            self.write_raw(send_first)
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.wait_notification("ready")

    # --- reading -----------------------------------------------------------------------

    def _read(self) -> None:
        assert self.proc.stdout is not None
        stream = self.proc.stdout
        while True:
            if self.framing == "lsp":
                header = b""
                while not header.endswith(b"\r\n\r\n"):
                    byte = stream.read(1)
                    if not byte:
                        return self._closed()
                    header += byte
                    self.raw += byte
                length = int(re.search(rb"Content-Length: (\d+)", header).group(1))  # type: ignore[union-attr]
                body = stream.read(length)
                self.raw += body
            else:
                body = stream.readline()
                if not body:
                    return self._closed()
                self.raw += body
            message = json.loads(body)
            with self._lock:
                if isinstance(message, dict) and "method" in message:
                    self.notifications.append(message)
                elif isinstance(message, dict):
                    self._responses[message.get("id")] = message
                self._lock.notify_all()
            self.messages.put(message)

    def _closed(self) -> None:
        with self._lock:
            self._lock.notify_all()
        self.messages.put(None)

    def next_message(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        return self.messages.get(timeout=timeout)

    def wait_notification(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda p: True,
        timeout: float = DEFAULT_TIMEOUT,
        start: int = 0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for note in self.notifications[start:]:
                    if note["method"] == method and predicate(note.get("params") or {}):
                        return note.get("params") or {}
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._lock.wait(0.05)):
                    raise AssertionError(
                        f"no {method} notification within {timeout:g} s; got {self.notifications!r}"
                    )
                self._lock.wait(min(left, 0.2))

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                n["params"]
                for n in self.notifications
                if n["method"] == "port_event" and (kind is None or n["params"]["type"] == kind)
            ]

    def wait_event(
        self,
        kind: str,
        timeout: float = DEFAULT_TIMEOUT,
        predicate: Callable[[dict[str, Any]], bool] = lambda p: True,
    ) -> dict[str, Any]:
        return self.wait_notification(
            "port_event", lambda p: p["type"] == kind and predicate(p), timeout
        )

    def wait_response(self, request_id: Any, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while request_id not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no response to id {request_id!r} within {timeout:g} s")
                self._lock.wait(min(left, 0.2))
            return self._responses.pop(request_id)  # type: ignore[no-any-return]

    # --- writing -----------------------------------------------------------------------

    def frame(self, body: bytes) -> bytes:
        if self.framing == "lsp":
            return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        return body + b"\n"

    def write_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: Any) -> None:
        self.write_raw(self.frame(json.dumps(message).encode()))

    def request(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.wait_response(request_id, timeout)

    def call(self, method: str, timeout: float = DEFAULT_TIMEOUT, **params: Any) -> Any:
        response = self.request(method, params, timeout)
        if "error" in response:
            raise RpcError(response["error"])
        return response["result"]

    # --- ending ------------------------------------------------------------------------

    def close_stdin(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def wait_exit(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path else ""

    def stop(self) -> None:
        """End the process by its pid, however it is doing."""
        self.close_stdin()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._stderr is not subprocess.DEVNULL:
            self._stderr.close()  # type: ignore[union-attr]
