"""One sidecar session: frames in, answers out.

This is the synchronous core. A quick call is answered the moment its frame is read, on the
thread that read it (see `StdinReader`), without a task or a pass of the event loop: that
is most calls. Calls that may wait (slow methods, batches) are handed to the event loop
(`rpc/loop.py`). Until that loop runs, they wait in a list, while quick calls are already
answered: the app's first `allocate_port` does not wait for asyncio, anyio, the monitor or
the health checks to be imported.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..manager import PortManager
from ..process import Lineage, is_same_user, lineage, user_of
from ..protocol.defaults import AllocationConfig
from ..protocol.errors import InvalidRequest, ParseError, ShuttingDown
from ..registry import MEMORY, Registry, RegistryOpenError
from ..registry_backend import RegistryBackend, is_etcd, open_etcd
from .dispatch import Dispatcher, error_response, to_wire
from .framing import Oversized, decoder_for, detect_framing
from .handlers import build_handlers
from .parse import parse_message
from .server import FrameWriter, Launch, ServeOptions, StopSignal, ready_message

if TYPE_CHECKING:
    from ..health import HealthChecker
    from ..monitor import Monitor
    from ..protocol.models import PortEvent
    from .framing import BadHeader, Frame, LspDecoder, NdjsonDecoder
    from .plans import PlanMethods

log = logging.getLogger("portd")

# Was the message being answered read after the exit was requested? Those are refused with
# -32006; what was read before (say, the calls written just before stdin closed) is served.
_READ_AFTER_EXIT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "read_after_exit", default=True
)

Spawn = Callable[[Any, bool], None]  # runs a waiting call (message, read after exit)


def open_registry(path: str, host_id: str | None = None) -> RegistryBackend:
    """The shared file, or, if it is unwritable or corrupt, a private memory registry: the
    app keeps getting ports, and health reports the registry as unhealthy. etcd has no such
    stand-in (it would hand out other hosts' ports): while it is out of reach, calls answer
    -32004. (`portd serve` has refused an etcd address it cannot use before `ready`.)"""
    if is_etcd(path):
        return open_etcd(path, host_id)
    if path == MEMORY:
        return Registry.in_memory()
    try:
        return Registry.open(Path(path))
    except RegistryOpenError as exc:
        log.error("registry unusable, falling back to a private in-memory one: %s", exc)
        return Registry.in_memory(reason=str(exc))


class Session:
    def __init__(
        self,
        options: ServeOptions,
        writer: FrameWriter,
        stop: StopSignal,
        launch: Launch,
        apps: Lineage,
        manager: PortManager,
    ) -> None:
        self.options = options
        self.writer = writer
        self.stop = stop
        self.launch = launch
        self.apps = apps
        self.manager = manager
        # Built by the event loop, before it runs any slow call (the only ones using them).
        self.health: HealthChecker
        self.monitor: Monitor
        self.plans: PlanMethods
        self.dispatcher = Dispatcher(build_handlers(self), gate=self._gate)
        self.exit_reason: str | None = None
        self.keep_leases = False
        self.inflight = 0  # calls handed to the event loop and not yet answered
        self.on_exit: Callable[[], None] | None = None  # the loop's wake-up
        self._handoff = threading.Lock()
        self._spawn: Spawn | None = None
        self._waiting: list[tuple[Any, bool]] = []
        self._decoder: NdjsonDecoder | LspDecoder | None = None
        self._head = b""
        self._shutdown_read = False

    @classmethod
    def start(
        cls,
        options: ServeOptions,
        writer: FrameWriter,
        stop: StopSignal,
        launch: Launch,
    ) -> Session | None:
        try:
            apps = lineage(launch.owner_pid)
        except LookupError as exc:
            log.error("%s; nothing to serve", exc)
            return None
        if not is_same_user(apps.owner.pid):
            # Its leases would be ours to reclaim and its servers ours to end: refused, as
            # `portd allocate --owner-pid` refuses it.
            who = user_of(apps.owner.pid)
            log.error(
                "the app (pid %d) runs as %s, not as you; nothing to serve", launch.owner_pid, who
            )
            return None
        registry = open_registry(options.registry, options.host_id)
        manager = PortManager(registry, apps.owner, AllocationConfig(app_id=options.app_id))
        return cls(options, writer, stop, launch, apps, manager)

    def run(self) -> int:
        from .loop import run  # asyncio, anyio, the monitor and health: after the first answers

        run(self)
        log.info("exiting: %s", self.exit_reason)
        return 0

    # --- frames to answers -----------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        """Take a chunk of stdin (b"" at EOF) and answer or hand on every frame it ends."""
        if not chunk:
            self.request_exit("stdin closed")
            return
        if self._decoder is None:
            self._head += chunk
            framing = (
                detect_framing(self._head)
                if self.options.framing == "auto"
                else self.writer.framing
            )
            if framing is None:
                return
            if self.writer.framing is None:
                self.writer.framing = framing
                self.writer.send(ready_message(self.options, framing, self.launch))
            self._decoder, chunk, self._head = decoder_for(framing), self._head, b""
        for frame in self._decoder.feed(chunk):
            try:
                self._take(frame)
            except Exception:  # a bug of ours: this frame's answer is lost, not the others'
                log.exception("internal error taking a frame of %d bytes", _size(frame))

    def _take(self, frame: Frame) -> None:
        after_exit = self.exit_reason is not None or self._shutdown_read
        try:
            message = parse_message(frame) if isinstance(frame, bytes) else _refuse(frame)
        except (ParseError, InvalidRequest) as error:
            # Bad input is the client's, not ours: one line, no trace, and serving goes on.
            log.warning("refused a frame: %s", error.message)
            self.writer.send(error_response(error))
            return
        if isinstance(message, dict) and message.get("method") == "shutdown":
            self._shutdown_read = True  # whatever is read after it is refused
        if self.dispatcher.is_quick(message):
            _READ_AFTER_EXIT.set(after_exit)
            reply = self.dispatcher.answer_now(message)
            if reply is not None:
                self.writer.send(reply)
        else:
            with self._handoff:
                spawn = self._spawn
                if spawn is None:
                    self._waiting.append((message, after_exit))
            if spawn is not None:
                spawn(message, after_exit)

    async def answer(self, message: Any, read_after_exit: bool) -> None:
        """A call that may wait, in a task of its own (see `rpc/loop.py`), which counted
        it in `inflight`."""
        _READ_AFTER_EXIT.set(read_after_exit)  # this call's context, and its children's
        try:
            reply = await self.dispatcher.answer(message)
            if reply is not None:
                self.writer.send(reply)
        finally:
            self.inflight -= 1

    def spawn_with(self, spawn: Spawn) -> None:
        """From now on calls that may wait run through `spawn` (which may be called from
        any thread); those waiting go first."""
        with self._handoff:
            self._spawn = spawn
            waiting, self._waiting = self._waiting, []
        for message, after_exit in waiting:
            spawn(message, after_exit)

    def send_event(self, event: PortEvent) -> None:
        self.writer.send({"jsonrpc": "2.0", "method": "port_event", "params": to_wire(event)})

    # --- exit --------------------------------------------------------------------------

    def request_exit(self, reason: str, keep_leases: bool = False) -> None:
        """The first reason wins, whichever thread gives it (stdin, a signal, the watchdog)."""
        with self._handoff:
            if self.exit_reason is not None:
                return
            self.exit_reason = reason
            self.keep_leases = keep_leases
        if self.on_exit is not None:
            self.on_exit()

    def shutdown(self) -> None:
        self.request_exit("shutdown requested")

    def _gate(self, method: str) -> None:
        if self.exit_reason is not None and _READ_AFTER_EXIT.get():
            raise ShuttingDown(f"the sidecar is shutting down ({self.exit_reason})")

    def finish(self) -> None:
        if not self.keep_leases:
            self.manager.release_taken()
        self.manager.registry.close()


def _refuse(frame: Oversized | BadHeader) -> Any:
    if isinstance(frame, Oversized):
        raise InvalidRequest("Invalid request: message larger than 1 MiB")
    raise ParseError("Parse error: a header without a usable Content-Length")


def _size(frame: Frame) -> int:
    return len(frame) if isinstance(frame, bytes) else 0
