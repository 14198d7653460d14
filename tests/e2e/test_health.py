"""Health checks over real stdio: every component reports; the frontend check follows a real
listener as it goes and comes back; a hanging check is cut off and holds nothing up; a
broken registry file is named while ports keep coming from memory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.monitoring import SilentServer, configure, events_settled
from tests.support.processes import FakeApp, Listener
from tests.support.sidecar import RpcError, Sidecar, wait_until

Spawn = Callable[..., Sidecar]
DEADLINE = 15.0
COMPONENTS = {"port_manager", "registry", "frontend_server", "app", "system_resources", "network"}


def component(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in report["components"] if c["component"] == name]
    return found


def frontend_events(sidecar: Sidecar, kind: str) -> list[dict[str, Any]]:
    return [e for e in sidecar.events(kind) if e.get("service") == "frontend_server"]


# --- every component ---------------------------------------------------------------------


def test_perform_health_check_reports_all_six_components_with_status_message_time_latency(
    spawn_sidecar: Spawn,
) -> None:
    sidecar = spawn_sidecar()

    report = sidecar.call("perform_health_check")

    assert {c["component"] for c in report["components"]} == COMPONENTS
    assert len(report["components"]) == len(COMPONENTS)
    for c in report["components"]:
        assert c["status"] in ("healthy", "unhealthy", "unknown"), c
        assert isinstance(c["message"], str) and c["message"], c
        assert isinstance(c["timestamp"], int) and c["timestamp"] > 1_600_000_000_000, c
        assert isinstance(c["latency"], int | float) and c["latency"] >= 0, c
    assert report["status"] in ("healthy", "unhealthy")
    assert component(report, "registry")["status"] == "healthy"
    assert component(report, "app")["status"] == "healthy"
    assert component(report, "app")["details"]["pid"] == os.getpid()
    assert component(report, "network")["status"] == "healthy"
    assert component(report, "frontend_server")["status"] == "unknown"  # none configured
    assert sidecar.call("get_stats")["health_checks"] >= 1


def test_system_resources_turn_unhealthy_above_the_configured_thresholds(
    spawn_sidecar: Spawn,
) -> None:
    sidecar = spawn_sidecar()
    sidecar.call("init_port_manager", config={"thresholds": {"memory_percent": 0.001}})

    resources = component(sidecar.call("perform_health_check"), "system_resources")

    assert resources["status"] == "unhealthy"
    assert "memory_percent" in resources["message"]
    assert resources["details"]["thresholds"]["memory_percent"] == 0.001


# --- the frontend server -----------------------------------------------------------------


def test_frontend_server_fails_when_its_listener_stops_and_recovers_with_one_event_each_way(
    spawn_sidecar: Spawn, start_listener: Callable[..., Listener]
) -> None:
    server = start_listener(0)
    sidecar = spawn_sidecar()
    configure(sidecar, health_check_interval=0.3, frontend={"port": server.port})
    assert component(sidecar.call("perform_health_check"), "frontend_server")["status"] == (
        "healthy"
    )

    server.stop()
    failed = sidecar.wait_event(
        "HealthCheckFailed", DEADLINE, lambda e: e.get("service") == "frontend_server"
    )
    assert failed["port"] == server.port
    assert str(server.port) in failed["error"]

    start_listener(server.port)  # the dev server comes back on its port
    sidecar.wait_event(
        "HealthCheckSuccess", DEADLINE, lambda e: e.get("service") == "frontend_server"
    )

    for _ in range(2):  # more checks, periodic and asked for, after the recovery
        report = sidecar.call("perform_health_check")
        assert component(report, "frontend_server")["status"] == "healthy"
    wait_until(lambda: sidecar.call("get_stats")["health_checks"] >= 6, DEADLINE)
    events_settled(sidecar)
    assert len(frontend_events(sidecar, "HealthCheckFailed")) == 1
    assert len(frontend_events(sidecar, "HealthCheckSuccess")) == 1


def test_frontend_server_over_http_is_healthy_when_the_path_answers(
    spawn_sidecar: Spawn, start_listener: Callable[..., Listener]
) -> None:
    server = start_listener(0, http=True)
    sidecar = spawn_sidecar()
    sidecar.call("init_port_manager", config={"frontend": {"port": server.port, "path": "/"}})

    frontend = component(sidecar.call("perform_health_check"), "frontend_server")

    assert frontend["status"] == "healthy", frontend
    assert frontend["details"]["http_status"] == 200


def test_frontend_server_over_http_is_unhealthy_when_the_server_does_not_speak_http(
    spawn_sidecar: Spawn, start_listener: Callable[..., Listener]
) -> None:
    server = start_listener(0)  # accepts, then closes without a word
    sidecar = spawn_sidecar()
    sidecar.call("init_port_manager", config={"frontend": {"port": server.port, "path": "/"}})

    frontend = component(sidecar.call("perform_health_check"), "frontend_server")

    assert frontend["status"] == "unhealthy", frontend
    assert "GET /" in frontend["message"]


def test_frontend_server_named_by_service_follows_that_services_port(
    spawn_sidecar: Spawn, start_app: Callable[[], FakeApp]
) -> None:
    app = start_app()
    sidecar = spawn_sidecar(parent_pid=app.pid)
    configure(sidecar, frontend={"service": "web"})
    port = sidecar.call("allocate_port", service_name="web")
    app.start_server(port)

    frontend = component(sidecar.call("perform_health_check"), "frontend_server")

    assert frontend["status"] == "healthy", frontend
    assert frontend["details"]["port"] == port


# --- a check that hangs ------------------------------------------------------------------


def test_a_hanging_frontend_check_is_cut_off_by_the_health_check_timeout(
    spawn_sidecar: Spawn,
) -> None:
    silent = SilentServer()
    try:
        sidecar = spawn_sidecar()
        sidecar.call(
            "init_port_manager",
            config={"health_check_timeout": 0.5, "frontend": {"port": silent.port, "path": "/"}},
        )

        report = sidecar.call("perform_health_check")

        frontend = component(report, "frontend_server")
        assert frontend["status"] == "unhealthy"
        assert "no answer within 0.5 s" in frontend["message"]
        assert report["status"] == "unhealthy"
        assert {c["component"] for c in report["components"]} == COMPONENTS
    finally:
        silent.close()


def test_allocate_port_is_answered_while_a_health_check_hangs(spawn_sidecar: Spawn) -> None:
    silent = SilentServer()
    try:
        sidecar = spawn_sidecar()
        configure(sidecar, health_check_timeout=2.0, frontend={"port": silent.port, "path": "/"})
        while not sidecar.messages.empty():  # drop what came before (ready, answers)
            sidecar.next_message()

        sidecar.send({"jsonrpc": "2.0", "id": "health", "method": "perform_health_check"})
        sidecar.send(
            {
                "jsonrpc": "2.0",
                "id": "alloc",
                "method": "allocate_port",
                "params": {"service_name": "web"},
            }
        )
        order: list[Any] = []
        while not {"health", "alloc"} <= set(order):
            message = sidecar.next_message(DEADLINE)
            assert message is not None, "the sidecar exited"
            if isinstance(message, dict) and "id" in message:
                order.append(message["id"])

        assert order.index("alloc") < order.index("health")
        assert isinstance(sidecar.wait_response("alloc")["result"], int)
        health = sidecar.wait_response("health")["result"]
        assert component(health, "frontend_server")["status"] == "unhealthy"
    finally:
        silent.close()


# --- a broken registry -------------------------------------------------------------------


def assert_runs_from_memory(sidecar: Sidecar) -> None:
    port = sidecar.call("allocate_port", service_name="web")
    assert isinstance(port, int)
    assert sidecar.call("allocate_port", service_name="web") == port
    registry = component(sidecar.call("perform_health_check"), "registry")
    assert registry["status"] == "unhealthy", registry
    assert "in-memory" in registry["message"]
    assert registry["details"]["fallback"] == "memory"
    assert "falling back" in sidecar.stderr_text()


def test_a_registry_file_full_of_garbage_is_named_unhealthy_and_ports_come_from_memory(
    spawn_sidecar: Spawn, registry_path: Path
) -> None:
    garbage = os.urandom(8192)
    registry_path.write_bytes(garbage)

    sidecar = spawn_sidecar()

    assert_runs_from_memory(sidecar)
    assert registry_path.read_bytes() == garbage, "someone's file must be left as it was"


def test_an_unwritable_registry_path_is_named_unhealthy_and_ports_come_from_memory(
    spawn_sidecar: Spawn, tmp_path: Path
) -> None:
    # The tests run as root, and root writes through any mode bits, so chmod cannot make
    # the registry unwritable. A parent "directory" that is a regular file stops everyone:
    # neither mkdir nor open can create anything beneath it (EEXIST / ENOTDIR).
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")

    sidecar = spawn_sidecar(registry=blocker / "registry.sqlite3")

    assert_runs_from_memory(sidecar)
    assert blocker.read_text() == "not a directory"


# --- port_health_check -------------------------------------------------------------------


@pytest.fixture
def app_sidecar(spawn_sidecar: Spawn, start_app: Callable[[], FakeApp]) -> tuple[Sidecar, FakeApp]:
    app = start_app()
    sidecar = spawn_sidecar(parent_pid=app.pid)
    configure(sidecar, auto_resolve=False)
    return sidecar, app


def test_port_health_check_is_true_when_the_apps_own_server_listens(
    app_sidecar: tuple[Sidecar, FakeApp],
) -> None:
    sidecar, app = app_sidecar
    port = sidecar.call("allocate_port", service_name="web")
    app.start_server(port)

    assert sidecar.call("port_health_check", service_name="web") is True


def test_port_health_check_is_false_when_nothing_listens(
    app_sidecar: tuple[Sidecar, FakeApp],
) -> None:
    sidecar, _ = app_sidecar
    sidecar.call("allocate_port", service_name="web")

    assert sidecar.call("port_health_check", service_name="web") is False


def test_port_health_check_is_false_when_a_squatter_holds_the_port(
    app_sidecar: tuple[Sidecar, FakeApp], start_listener: Callable[..., Listener]
) -> None:
    sidecar, _ = app_sidecar
    port = sidecar.call("allocate_port", service_name="web")
    start_listener(port)

    assert sidecar.call("port_health_check", service_name="web") is False


def test_port_health_check_of_an_unknown_service_is_unknown_service(
    spawn_sidecar: Spawn,
) -> None:
    with pytest.raises(RpcError) as caught:
        spawn_sidecar().call("port_health_check", service_name="nobody")
    assert caught.value.code == -32002
