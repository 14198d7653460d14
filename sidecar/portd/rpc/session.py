"""One sidecar session: the event loop that turns frames into answers until it is told,
or sees, that it should stop."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ..health import HealthChecker
from ..manager import PortManager
from ..monitor import Monitor
from ..process import Lineage, is_alive, lineage
from ..protocol.errors import InvalidRequest, ParseError, ShuttingDown
from ..protocol.models import PortConfig, PortEvent
from ..registry import MEMORY, Registry, RegistryOpenError
from .dispatch import Dispatcher, error_response, to_wire
from .framing import BadHeader, Oversized, decoder_for, detect_framing
from .handlers import build_handlers
from .plans import PlanMethods
from .server import (
    FrameWriter,
    Inbox,
    Launch,
    ServeOptions,
    StopSignal,
    read_stdin_when_ready,
    ready_message,
    start_reader_thread,
)

if TYPE_CHECKING:
    from .framing import Frame

log = logging.getLogger("portd")

WATCH_INTERVAL = 0.2  # seconds between looks at the app: well inside the 1 s exit promise
DRAIN_TIMEOUT = 2.0  # seconds to finish answering requests already read before exiting

# Was the message being answered read after the exit was requested? Those are refused with
# -32006; what was read before (say, the calls written just before stdin closed) is served.
_READ_AFTER_EXIT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "read_after_exit", default=True
)


def open_registry(path: str) -> Registry:
    """The shared file, or, if it is unwritable or corrupt, a private memory registry: the
    app keeps getting ports, and health reports the registry as unhealthy."""
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
        inbox: Inbox,
        stop: StopSignal,
        launch: Launch,
        apps: Lineage,
        manager: PortManager,
    ) -> None:
        self.options = options
        self.writer = writer
        self.inbox = inbox
        self.stop = stop
        self.launch = launch
        self.apps = apps
        self.manager = manager
        self.health = HealthChecker(manager, apps.owner)
        self.monitor = Monitor(manager, self.health)
        self.plans = PlanMethods(manager)
        self.dispatcher = Dispatcher(build_handlers(self), gate=self._gate)
        self.exit_reason: str | None = None
        self.keep_leases = False
        self._shutdown_read = False
        self._inflight = 0

    @classmethod
    def start(
        cls,
        options: ServeOptions,
        writer: FrameWriter,
        inbox: Inbox,
        stop: StopSignal,
        launch: Launch,
    ) -> Session | None:
        try:
            apps = lineage(launch.owner_pid)
        except LookupError as exc:
            log.error("%s; nothing to serve", exc)
            return None
        manager = PortManager(
            open_registry(options.registry), apps.owner, PortConfig(app_id=options.app_id)
        )
        return cls(options, writer, inbox, stop, launch, apps, manager)

    def run(self) -> int:
        anyio.run(self._main)
        log.info("exiting: %s", self.exit_reason)
        return 0

    # --- the loop ----------------------------------------------------------------------

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()
        self._exit = asyncio.Event()

        loop_thread = threading.get_ident()

        def soon(func: Callable[..., None], *args: Any) -> None:
            if threading.get_ident() == loop_thread:
                func(*args)
            else:
                loop.call_soon_threadsafe(func, *args)

        self.inbox.on_arrival(lambda: soon(arrived.set))
        if not self.inbox.threaded:
            try:
                loop.add_reader(sys.stdin.fileno(), read_stdin_when_ready, self.inbox)
            except (OSError, ValueError):  # e.g. /dev/null, which epoll refuses
                start_reader_thread(self.inbox)
        self.stop.connect(lambda name: soon(self.request_exit, name))
        self.manager.subscribe(lambda event: soon(self._send_event, event))
        async with anyio.create_task_group() as group:
            self._group = group
            group.start_soon(self._read, arrived)
            group.start_soon(self._watch_app)
            group.start_soon(self.monitor.run)
            await self._exit.wait()
            with anyio.move_on_after(DRAIN_TIMEOUT):
                while self._inflight:
                    await anyio.sleep(0.005)
            group.cancel_scope.cancel()
        await anyio.to_thread.run_sync(self._finish)

    def request_exit(self, reason: str, keep_leases: bool = False) -> None:
        if self.exit_reason is None:
            self.exit_reason = reason
            self.keep_leases = keep_leases
            self._exit.set()

    def _finish(self) -> None:
        if not self.keep_leases:
            self.manager.release_taken()
        self.manager.registry.close()

    def _gate(self, method: str) -> None:
        if self.exit_reason is not None and _READ_AFTER_EXIT.get():
            raise ShuttingDown(f"the sidecar is shutting down ({self.exit_reason})")

    async def _read(self, arrived: asyncio.Event) -> None:
        decoder = None
        head = b""
        while True:
            await arrived.wait()
            arrived.clear()
            for chunk in self.inbox.take():
                if not chunk:
                    self.request_exit("stdin closed")
                    return
                if decoder is None:
                    head += chunk
                    framing = (
                        detect_framing(head)
                        if self.options.framing == "auto"
                        else self.writer.framing
                    )
                    if framing is None:
                        continue
                    if self.writer.framing is None:
                        self.writer.framing = framing
                        self.writer.send(ready_message(self.options, framing, self.launch))
                    decoder, chunk = decoder_for(framing), head
                for frame in decoder.feed(chunk):
                    await self._take(frame)

    async def _take(self, frame: Frame) -> None:
        """Answer one frame: quick calls inline, in arrival order and without the cost of a
        task; anything that may wait (slow methods, batches) in a task of its own."""
        after_exit = self.exit_reason is not None or self._shutdown_read
        if isinstance(frame, Oversized):
            error = InvalidRequest("Invalid request: message larger than 1 MiB")
            self.writer.send(error_response(error))
            return
        if isinstance(frame, BadHeader):
            self.writer.send(error_response(ParseError("Parse error: no Content-Length")))
            return
        message = self.dispatcher.parse(frame)
        if isinstance(message, bytes):  # not JSON: the error reply is ready
            self.writer.send(message)
            return
        if isinstance(message, dict) and message.get("method") == "shutdown":
            self._shutdown_read = True  # whatever is read after it is refused
        self._inflight += 1
        if self.dispatcher.is_quick(message):
            await self._answer(message, after_exit)
        else:
            self._group.start_soon(self._answer, message, after_exit)

    async def _answer(self, message: Any, read_after_exit: bool) -> None:
        _READ_AFTER_EXIT.set(read_after_exit)  # this call's context, and its children's
        try:
            reply = await self.dispatcher.answer(message)
            if reply is not None:
                self.writer.send(reply)
        finally:
            self._inflight -= 1

    def _send_event(self, event: PortEvent) -> None:
        self.writer.send({"jsonrpc": "2.0", "method": "port_event", "params": to_wire(event)})

    async def _watch_app(self) -> None:
        owner, bootloader = self.apps.owner, self.apps.bootloader
        while True:
            await anyio.sleep(WATCH_INTERVAL)
            if bootloader is not None and not is_alive(bootloader):
                # The app killed our bootloader: it let go of this sidecar, not of its
                # servers, so the leases stay with the app for the respawned sidecar.
                self.request_exit("bootloader gone", keep_leases=True)
            elif not is_alive(owner):
                self.request_exit(f"app (pid {owner.pid}) gone")

    def shutdown(self) -> None:
        asyncio.get_running_loop().call_soon(self.request_exit, "shutdown requested")
