"""The conflict scan in-process: a real Monitor on a real registry file, an app process that
owns the leases, and real listeners. Every socket read goes through both ways portd has of
reading the socket table (netlink sock_diag, and psutil, the portable fall-back)."""

from __future__ import annotations

import itertools
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from portd import _netlink
from portd.health import HealthChecker
from portd.manager import PortManager
from portd.monitor import Monitor
from portd.process import identify
from portd.protocol.models import PortConfig, PortConfigUpdate, PortEvent
from portd.registry import Registry
from tests.support.monitoring import private_range
from tests.support.processes import FakeApp, Listener


class Watch:
    def __init__(self, monitor: Monitor, events: list[PortEvent]) -> None:
        self.monitor = monitor
        self.manager = monitor.manager
        self.events = events

    def of(self, kind: str, service: str | None = None) -> list[PortEvent]:
        return [
            e for e in self.events if e.type == kind and (service is None or e.service == service)
        ]


@pytest.fixture(params=["netlink", "psutil"])
def socket_table(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "psutil":
        monkeypatch.setattr(_netlink, "netlink_available", lambda: False)
    elif not _netlink.netlink_available():
        pytest.skip("netlink sock_diag is not available here")
    return str(request.param)


@pytest.fixture
def app(start_app: Callable[[], FakeApp]) -> FakeApp:
    return start_app()


@pytest.fixture
def engine(tmp_path: Path, app: FakeApp) -> Iterator[Watch]:
    """A monitor whose leases belong to the app; events are collected as they are sent."""
    owner = identify(app.pid)
    assert owner is not None
    registry = Registry.open(tmp_path / "registry.sqlite3")
    low, high = private_range()
    manager = PortManager(registry, owner, PortConfig(preferred_port=low, port_range=(low, high)))
    monitor = Monitor(manager, HealthChecker(manager, owner))
    events: list[PortEvent] = []
    manager.subscribe(events.append)
    yield Watch(monitor, events)
    registry.close()


@pytest.fixture
def watch(engine: Watch, socket_table: str) -> Watch:
    """The same monitor, once per way of reading the socket table."""
    return engine


def configure(watch: Watch, **fields: Any) -> None:
    watch.manager.init_port_manager(PortConfigUpdate(**fields))


def test_the_apps_own_server_is_recorded_as_holder_and_never_a_conflict(
    watch: Watch, app: FakeApp
) -> None:
    port = watch.manager.allocate_port("web")
    server = app.start_server(port)

    assert [watch.monitor.scan() for _ in range(3)] == [[], [], []]

    assert [h.pid for h in watch.manager.lease_of("web").holders] == [server]
    assert watch.manager.get_port_info("web").state == "listening"
    assert watch.events == []


def test_a_squatter_is_reported_once_however_many_scans_see_it(
    watch: Watch, start_listener: Callable[..., Listener]
) -> None:
    configure(watch, auto_resolve=False)
    port = watch.manager.allocate_port("web")
    start_listener(port)

    assert [watch.monitor.scan() for _ in range(4)] == [["web"]] * 4

    (conflict,) = watch.of("PortConflict")
    assert (conflict.service, conflict.port) == ("web", port)
    assert watch.manager.counters["conflicts"] == 1
    assert watch.manager.lease_of("web").holders == ()


def test_auto_resolve_moves_the_service_once_and_announces_the_old_port_when_it_frees(
    watch: Watch, start_listener: Callable[..., Listener]
) -> None:
    port = watch.manager.allocate_port("web")
    squatter = start_listener(port)

    assert [watch.monitor.scan() for _ in range(3)] == [[], [], []]
    (changed,) = watch.of("PortChanged", "web")
    assert changed.old_port == port
    assert watch.manager.lease_of("web").port == changed.new_port != port
    assert watch.of("PortAvailable") == []

    squatter.stop()
    for _ in range(3):
        watch.monitor.scan()

    assert [e.port for e in watch.of("PortAvailable")] == [port]


def test_a_conflict_with_nowhere_to_move_is_reported_once_instead(
    watch: Watch, start_listener: Callable[..., Listener]
) -> None:
    port = watch.manager.allocate_port("web")
    # The whole range is this one port, and no OS-assigned port may be tried.
    configure(watch, port_range=(port, port), preferred_port=port, max_retries=0)
    start_listener(port)

    assert [watch.monitor.scan() for _ in range(3)] == [["web"]] * 3

    assert len(watch.of("PortConflict", "web")) == 1
    assert watch.of("PortChanged") == []
    assert watch.manager.lease_of("web").port == port


def test_a_released_lease_leaves_nothing_behind_in_the_scan(
    watch: Watch, app: FakeApp, start_listener: Callable[..., Listener]
) -> None:
    port = watch.manager.allocate_port("web")
    app.start_server(port)
    watch.monitor.scan()
    watch.manager.release_port("web")
    watch.monitor.scan()

    assert port not in watch.monitor.state.views
    assert watch.events == []


def test_a_shorter_interval_applies_without_waiting_out_the_longer_one(engine: Watch) -> None:
    watch = engine
    calls: list[int] = []

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(watch.monitor._every, "health_check_interval", lambda: calls.append(1))
            await anyio.sleep(0.05)  # the loop is now waiting out the default 30 s
            configure(watch, health_check_interval=0.05)
            # The deadline is a bound, not a measurement: far below the 30 s it replaces.
            with anyio.fail_after(10):
                while len(calls) < 3:
                    await anyio.sleep(0.01)
            group.cancel_scope.cancel()

    assert watch.manager.config.health_check_interval == 30.0
    anyio.run(main)
    assert len(calls) >= 3


def test_a_health_check_that_started_earlier_cannot_overturn_a_later_ones_news(
    engine: Watch,
) -> None:
    watch = engine
    health = watch.monitor.health
    configure(watch, health_check_timeout=30.0)
    first_started, release_first = threading.Event(), threading.Event()
    counter = itertools.count()

    def flaky() -> tuple[Any, str, dict[str, Any]]:
        if next(counter) == 0:
            first_started.set()
            release_first.wait(20)
            return "unhealthy", "stale news", {}
        return "healthy", "fine", {}

    health.checks = {"frontend_server": flaky}
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(health.perform_health_check()))
    first.start()
    try:
        assert first_started.wait(20)
        later = health.perform_health_check()
    finally:
        release_first.set()
        first.join(20)

    assert later.components[0].status == "healthy"
    assert results[0].components[0].status == "unhealthy"
    assert watch.of("HealthCheckFailed") == []


def test_checks_that_hang_never_hold_up_the_other_checks(engine: Watch) -> None:
    health = engine.monitor.health
    configure(engine, health_check_timeout=0.5)
    release = threading.Event()

    def hangs() -> tuple[Any, str, dict[str, Any]]:
        release.wait(20)
        return "healthy", "late", {}

    health.checks = {f"hang-{i}": hangs for i in range(10)}
    health.checks["quick"] = lambda: ("healthy", "fine", {})
    try:
        for _ in range(2):  # the second time, the first run's hung checks still hang
            by_name = {c.component: c for c in health.perform_health_check().components}
            assert by_name["quick"].status == "healthy"
            assert by_name["hang-0"].status == "unhealthy"
            assert "no answer within 0.5 s" in by_name["hang-0"].message
    finally:
        release.set()


def test_a_listener_of_ours_whose_process_is_not_found_is_judged_on_the_next_pass(
    engine: Watch,
) -> None:
    if not _netlink.netlink_available():
        pytest.skip("needs netlink sock_diag (it names a socket's uid without its pid)")
    configure(engine, auto_resolve=False)
    port = engine.manager.allocate_port("web")
    # A listening socket in flight over a unix socket (SCM_RIGHTS) is held by no process's
    # fd table: the kernel lists it, /proc maps it to nobody, as for a process exiting.
    carrier, receiver = socket.socketpair(socket.AF_UNIX)
    with socket.socket(socket.AF_INET) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen()
        socket.send_fds(carrier, [b"x"], [listener.fileno()])
    try:
        assert engine.monitor.scan() == [], "one unexplained look is not yet a conflict"
        assert engine.monitor.scan() == ["web"], "a second one is"
        assert engine.monitor.scan() == ["web"]
        (conflict,) = engine.of("PortConflict")
        assert conflict.port == port
    finally:
        _, fds, _, _ = socket.recv_fds(receiver, 1, 1)
        for fd in fds:
            os.close(fd)
        carrier.close()
        receiver.close()
