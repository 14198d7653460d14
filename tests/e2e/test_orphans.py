"""Orphans over real stdio: an app that crashed (SIGKILL) while a server it started keeps
its port, as yesterday's Vite would. Another sidecar names the orphan and can end exactly
that process, and never anything that merely uses the same port afterwards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psutil
import pytest

from tests.support.monitoring import configure, has_ended, terminate
from tests.support.processes import FakeApp, Listener
from tests.support.sidecar import RpcError, Sidecar, wait_until

Spawn = Callable[..., Sidecar]
DEADLINE = 15.0


@dataclass
class Orphan:
    port: int
    pid: int
    app_pid: int


def serving_app(
    spawn_sidecar: Spawn, start_app: Callable[[], FakeApp], service: str
) -> tuple[FakeApp, Sidecar, int, int]:
    """An app whose sidecar leased `service` a port, and whose own server listens there and
    has been recorded as the lease's holder: (app, sidecar, port, server pid)."""
    app = start_app()
    sidecar = spawn_sidecar(parent_pid=app.pid)
    configure(sidecar)
    port = sidecar.call("allocate_port", service_name=service)
    server = app.start_server(port)
    # The monitor records the rightful listeners it sees; let a pass see this one.
    wait_until(
        lambda: server in sidecar.call("get_port_info", service_name=service)["holder_pids"],
        DEADLINE,
        what="the server to be recorded as the lease's holder",
    )
    return app, sidecar, port, server


@pytest.fixture
def orphan(spawn_sidecar: Spawn, start_app: Callable[[], FakeApp]) -> Orphan:
    """A dev server whose app was SIGKILLed, recorded in the registry as the lease's holder."""
    app, first, port, server = serving_app(spawn_sidecar, start_app, "vite")
    app.kill()
    assert first.wait_exit() == 0, "the sidecar leaves with its app"
    assert not has_ended(server), "the app's server outlives the app"
    return Orphan(port, server, app.pid)


def test_another_sidecar_names_the_dead_apps_server_as_an_orphan(
    orphan: Orphan, spawn_sidecar: Spawn
) -> None:
    other = spawn_sidecar()

    owner = other.call("get_port_owner", port=orphan.port)

    assert owner["orphan"] is True
    assert owner["pid"] == orphan.pid
    assert owner["lease"]["service"] == "vite"
    assert owner["lease"]["owner_pid"] == orphan.app_pid
    assert owner["lease"]["state"] == "orphan"
    assert orphan.pid in owner["lease"]["holder_pids"]


def test_the_orphans_port_is_not_handed_out_while_it_lives(
    orphan: Orphan, spawn_sidecar: Spawn
) -> None:
    other = spawn_sidecar()
    configure(other)
    assert other.call("is_port_available", port=orphan.port) is False
    assert other.call("allocate_port", service_name="x", preferred_port=orphan.port) != orphan.port


def test_reclaim_orphan_ends_the_recorded_process_and_frees_the_port(
    orphan: Orphan, spawn_sidecar: Spawn
) -> None:
    other = spawn_sidecar()

    ended = other.call("reclaim_orphan", port=orphan.port)

    assert ended["pid"] == orphan.pid
    assert ended["port"] == orphan.port
    wait_until(lambda: has_ended(orphan.pid), DEADLINE, what="the orphan to end")
    wait_until(
        lambda: other.call("is_port_available", port=orphan.port),
        DEADLINE,
        what="the orphan's port to be free and unleased",
    )
    assert other.call("get_port_owner", port=orphan.port) is None


def test_a_process_that_takes_the_port_after_the_reclaim_is_refused_and_left_alone(
    orphan: Orphan, spawn_sidecar: Spawn, start_listener: Callable[..., Listener]
) -> None:
    other = spawn_sidecar()
    other.call("reclaim_orphan", port=orphan.port)
    wait_until(lambda: has_ended(orphan.pid), DEADLINE, what="the orphan to end")
    newcomer = start_listener(orphan.port)

    with pytest.raises(RpcError) as caught:
        other.call("reclaim_orphan", port=orphan.port)

    assert caught.value.code == -32003
    assert newcomer.proc.poll() is None, "the newcomer must not be signalled"
    assert psutil.Process(newcomer.pid).status() != psutil.STATUS_ZOMBIE


def test_a_process_reusing_the_port_of_a_recorded_orphan_that_died_is_left_alone(
    orphan: Orphan, spawn_sidecar: Spawn, start_listener: Callable[..., Listener]
) -> None:
    # The orphan's lease is still on record, but the recorded process is gone and some
    # other process now listens on the port: it is not the recorded one, so it stays.
    terminate(orphan.pid)
    wait_until(lambda: has_ended(orphan.pid), DEADLINE, what="the orphan to end")
    newcomer = start_listener(orphan.port)
    other = spawn_sidecar()

    with pytest.raises(RpcError) as caught:
        other.call("reclaim_orphan", port=orphan.port)

    assert caught.value.code == -32003
    assert newcomer.proc.poll() is None
    assert other.call("get_port_owner", port=orphan.port)["orphan"] is False


def test_reclaim_orphan_on_a_port_with_no_orphan_record_is_refused(
    spawn_sidecar: Spawn, start_listener: Callable[..., Listener]
) -> None:
    squatter = start_listener(0)
    sidecar = spawn_sidecar()

    with pytest.raises(RpcError) as caught:
        sidecar.call("reclaim_orphan", port=squatter.port)

    assert caught.value.code == -32003
    assert squatter.proc.poll() is None


def test_reclaim_orphan_refuses_a_live_apps_server(
    spawn_sidecar: Spawn, start_app: Callable[[], FakeApp]
) -> None:
    _, _, port, server = serving_app(spawn_sidecar, start_app, "web")
    other = spawn_sidecar()

    with pytest.raises(RpcError) as caught:
        other.call("reclaim_orphan", port=port)

    assert caught.value.code == -32003
    assert not has_ended(server)
