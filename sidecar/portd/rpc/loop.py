"""The event loop around a session: slow calls in tasks, the monitor and the app watchdog
running, and the exit (drain, release, close) when it is time."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from ..health import HealthChecker
from ..monitor import Monitor
from ..process import is_alive
from .plans import PlanMethods
from .session import Session

WATCH_INTERVAL = 0.2  # seconds between looks at the app: well inside the 1 s exit promise
DRAIN_TIMEOUT = 2.0  # seconds to finish answering requests already read before exiting


def run(session: Session) -> None:
    session.health = HealthChecker(session.manager, session.apps.owner)
    session.monitor = Monitor(session.manager, session.health)
    session.plans = PlanMethods(session.manager)
    # Everything loaded so far (modules, pydantic's schemas) lives as long as we do: keep
    # it out of the garbage collector's passes, which otherwise walk it all again and again
    # (about a sixth of the CPU time under load, most of it for nothing).
    gc.freeze()
    anyio.run(_main, session)


async def _main(session: Session) -> None:
    loop = asyncio.get_running_loop()
    exit_requested = asyncio.Event()
    loop_thread = threading.get_ident()

    def soon(func: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() == loop_thread:
            func(*args)
        else:
            loop.call_soon_threadsafe(func, *args)

    session.on_exit = lambda: soon(exit_requested.set)
    async with anyio.create_task_group() as group:
        # Handed over from the stdin thread in order, ahead of any exit it then asks for.
        session.spawn_with(
            lambda message, after_exit: soon(_spawn, group, session, message, after_exit)
        )
        session.stop.connect(lambda name: soon(session.request_exit, name))
        session.manager.subscribe(lambda event: soon(session.send_event, event))
        group.start_soon(_watch_app, session)
        group.start_soon(session.monitor.run)
        if session.exit_reason is None:
            await exit_requested.wait()
        with anyio.move_on_after(DRAIN_TIMEOUT):
            while session.inflight:
                await anyio.sleep(0.005)
        group.cancel_scope.cancel()
    await anyio.to_thread.run_sync(session.finish)


def _spawn(group: TaskGroup, session: Session, message: Any, after_exit: bool) -> None:
    session.inflight += 1  # on the loop thread only, like the decrement
    group.start_soon(session.answer, message, after_exit)


async def _watch_app(session: Session) -> None:
    owner, bootloader = session.apps.owner, session.apps.bootloader
    while True:
        await anyio.sleep(WATCH_INTERVAL)
        if bootloader is not None and not is_alive(bootloader):
            # The app killed our bootloader: it let go of this sidecar, not of its
            # servers, so the leases stay with the app for the respawned sidecar.
            session.request_exit("bootloader gone", keep_leases=True)
        elif not is_alive(owner):
            session.request_exit(f"app (pid {owner.pid}) gone")
