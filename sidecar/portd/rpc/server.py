"""The sidecar on stdio: the only writer of stdout, and the owner of the process lifecycle.

Start-up order matters to the app waiting on us: claim stdout, send `ready`, and only then
import the engine (pydantic and psutil cost most of the start-up) while the app's first
request is on its way. Requests that arrive meanwhile wait in the stdin reader, never lost;
quick ones are answered before the event loop and the monitor are even imported.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from .. import PROTOCOL_VERSION
from .framing import encode, encode_json

# typing, logging and dataclasses cost start-up time before `ready`: not imported here.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .framing import Framing

_EOF = b""


class ServeOptions:
    __slots__ = ("app_id", "framing", "host_id", "parent_pid", "registry", "version")

    def __init__(
        self,
        registry: str,
        parent_pid: int | None,
        framing: str,
        app_id: str,
        version: str,
        host_id: str | None = None,
    ) -> None:
        self.registry = registry
        self.host_id = host_id  # for etcd: this host's name in the shared registry
        self.parent_pid = parent_pid
        self.framing = framing  # "auto", "ndjson" or "lsp"
        self.app_id = app_id
        self.version = version


class FrameWriter:
    """Writes whole frames to the saved stdout fd, one per message, unbuffered. The stdin
    thread (quick answers) and the event loop (slow answers, events) both send: a lock
    keeps each frame whole."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self.framing: Framing | None = None
        self.closed = False

    def send(self, message: Any) -> None:
        body = bytes(message) if isinstance(message, bytes | bytearray) else encode_json(message)
        self.send_frame(encode(body, self.framing or "ndjson"))

    def send_frame(self, frame: bytes) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                written = os.write(self._fd, frame)
                view = memoryview(frame)[written:] if written < len(frame) else None
                while view:  # the pipe was full: the rest, as the app reads it
                    view = view[os.write(self._fd, view) :]
            except OSError as exc:  # EPIPE: the app closed our stdout; keep serving regardless
                self.closed = True
                import logging

                logging.getLogger("portd").warning(
                    "stdout closed (%s); answers are dropped from now on", exc
                )


class StdinReader:
    """Reads stdin on a thread of its own from the first moment, and hands each chunk (b""
    at EOF) to the session on that same thread, in order: a quick call is answered by the
    thread that read it, with no event-loop pass in between, which is most of the round
    trip a bare echo child does not pay. Until the session exists, chunks wait here; the
    pipe never fills while the engine loads. A thread, not the event loop, also reads
    Windows pipes and regular files alike."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # also keeps one feeder at a time
        self._waiting: list[bytes] = []
        self._consumer: Callable[[bytes], None] | None = None
        threading.Thread(target=self._run, name="stdin", daemon=True).start()

    def _run(self) -> None:
        fd = sys.stdin.fileno()
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = _EOF
            with self._lock:
                if self._consumer is None:
                    self._waiting.append(chunk)
                else:
                    self._feed(chunk)
            if not chunk:
                return

    def _feed(self, chunk: bytes) -> None:
        assert self._consumer is not None
        try:
            self._consumer(chunk)
        except Exception:  # a bug of ours must not stop stdin from being read
            import logging

            logging.getLogger("portd").exception("failed to handle input")

    def attach(self, consumer: Callable[[bytes], None]) -> None:
        """Feed `consumer` what has arrived so far (on the calling thread), then everything
        that follows (on the reader thread)."""
        with self._lock:
            self._consumer = consumer
            for chunk in self._waiting:
                self._feed(chunk)
            self._waiting.clear()


def claim_stdout() -> int:
    """Keep the real stdout for frames and point fd 1 and sys.stdout at stderr, so that
    nothing a library prints, from Python or C, can corrupt the stream."""
    saved = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if sys.platform == "win32":
        import msvcrt

        msvcrt.setmode(saved, os.O_BINARY)
        msvcrt.setmode(sys.stdin.fileno(), os.O_BINARY)
    return saved


class Launch:
    """Who we are to the app, found once and without psutil (not loaded before `ready`): the
    process the app spawned, and the app that owns our leases."""

    __slots__ = ("owner_pid", "pid")

    def __init__(self, parent_pid: int | None) -> None:
        bootloader = _bootloader_pid()
        self.pid = bootloader or os.getpid()
        self.owner_pid = parent_pid or (_parent_of(bootloader) if bootloader else os.getppid())


def _bootloader_pid() -> int | None:
    """A frozen one-file build runs as the child of its own bootloader, which is the process
    the app spawned and will signal."""
    if not (getattr(sys, "frozen", False) and sys.platform.startswith("linux")):
        return None
    spawner = os.getppid()
    try:
        if os.readlink(f"/proc/{spawner}/exe") == os.path.realpath(sys.executable):
            return spawner
    except OSError:
        pass
    return None


def _parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return os.getppid()


def ready_message(options: ServeOptions, framing: Framing, launch: Launch) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "method": "ready",
        "params": {
            "version": options.version,
            "protocol": PROTOCOL_VERSION,
            "pid": launch.pid,
            "framing": framing,
            "registry": options.registry,
            "owner_pid": launch.owner_pid,
            "app_id": options.app_id,
        },
    }


def serve(options: ServeOptions) -> int:
    writer = FrameWriter(claim_stdout())
    stop = StopSignal()
    launch = Launch(options.parent_pid)
    if options.framing in ("ndjson", "lsp"):
        framing: Framing = "lsp" if options.framing == "lsp" else "ndjson"
        writer.framing = framing
        writer.send(ready_message(options, framing, launch))
    reader = StdinReader()  # what the app sends meanwhile waits in the pipe

    # pydantic would otherwise scan every installed package for plugins and run them: a
    # sidecar runs its own code only (and the scan costs start-up time).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from .._logging import configure

    configure("info")
    from .session import Session  # the engine: imported while the first request travels

    session = Session.start(options, writer, stop, launch)
    if session is None:
        return 2
    reader.attach(session.feed)  # the first calls are answered before the event loop loads
    code = session.run()
    if session.keep_leases:
        _remove_own_unpack_folder()
    return code


def _remove_own_unpack_folder() -> None:
    """A one-file build's bootloader deletes the folder it unpacked us into when we exit;
    killed first, it cannot, so the child cleans up after itself."""
    folder = getattr(sys, "_MEIPASS", None)
    if folder and os.path.basename(folder).startswith("_MEI"):
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


class StopSignal:
    """SIGTERM/SIGINT before or during the loop: remembered, then delivered to the loop."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._deliver: Callable[[str], None] | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.received = signal.Signals(signum).name
        if self._deliver is not None:
            self._deliver(self.received)

    def connect(self, deliver: Callable[[str], None]) -> None:
        self._deliver = deliver
        if self.received is not None:
            deliver(self.received)
