"""Conflict watch over real stdio: a real sidecar, a real app process that owns the leases,
and real listening processes on its ports.

The sidecar's owner is a FakeApp (`--parent-pid`), so a `start_listener` squatter (a child
of the test, not of the app) is a stranger, while `app.start_server` is the app's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.monitoring import (
    DeferredListener,
    about,
    binds,
    events_settled,
    run_scans,
)
from tests.support.processes import FakeApp, Listener
from tests.support.sidecar import RpcError, Sidecar, wait_until

Spawn = Callable[..., Sidecar]
DEADLINE = 15.0  # generous: the scan interval is 0.2 s, so two intervals is 0.4 s


def events_for(sidecar: Sidecar, kind: str, service: str) -> list[dict[str, Any]]:
    return [e for e in sidecar.events(kind) if e.get("service") == service]


# --- a stranger on a leased port -------------------------------------------------------------


@pytest.mark.parametrize("family", ["4", "6"])
def test_a_squatter_on_a_leased_port_is_moved_away_from_with_exactly_one_port_changed(
    sidecar: Sidecar, start_listener: Callable[..., Listener], family: str
) -> None:
    port = sidecar.call("allocate_port", service_name="web")
    squatter = start_listener(port, family=family)

    changed = sidecar.wait_event("PortChanged", DEADLINE, about("web"))

    assert changed["old_port"] == port
    assert changed["new_port"] != port
    assert binds(changed["new_port"]), "the new port must be one the app can bind"
    assert sidecar.call("get_port_info", service_name="web")["port"] == changed["new_port"]
    assert run_scans(sidecar) == [[], [], []]
    events_settled(sidecar)
    assert len(events_for(sidecar, "PortChanged", "web")) == 1
    assert events_for(sidecar, "PortConflict", "web") == []
    stats = sidecar.call("get_stats")
    assert stats["conflicts"] == 1
    assert squatter.proc.poll() is None, "portd must never touch the squatter"


def test_without_auto_resolve_one_port_conflict_is_sent_and_the_service_stays_put(
    sidecar: Sidecar, start_listener: Callable[..., Listener]
) -> None:
    sidecar.call("init_port_manager", config={"auto_resolve": False})
    port = sidecar.call("allocate_port", service_name="web")
    start_listener(port)

    conflict = sidecar.wait_event("PortConflict", DEADLINE, about("web"))

    assert conflict["port"] == port
    assert run_scans(sidecar) == [["web"], ["web"], ["web"]]
    info = sidecar.call("get_port_info", service_name="web")
    assert (info["port"], info["state"]) == (port, "conflict")
    events_settled(sidecar)
    assert len(events_for(sidecar, "PortConflict", "web")) == 1
    assert events_for(sidecar, "PortChanged", "web") == []


def test_handle_port_conflict_gives_a_port_that_binds_and_sends_port_changed(
    sidecar: Sidecar, start_listener: Callable[..., Listener]
) -> None:
    sidecar.call("init_port_manager", config={"auto_resolve": False})
    port = sidecar.call("allocate_port", service_name="web")
    start_listener(port)
    sidecar.wait_event("PortConflict", DEADLINE, about("web"))

    new_port = sidecar.call("handle_port_conflict", service_name="web")

    assert new_port != port
    assert binds(new_port)
    changed = sidecar.wait_event("PortChanged", DEADLINE, about("web"))
    assert (changed["old_port"], changed["new_port"]) == (port, new_port)
    assert sidecar.call("check_port_conflicts") == []
    events_settled(sidecar)
    assert len(events_for(sidecar, "PortConflict", "web")) == 1
    assert len(events_for(sidecar, "PortChanged", "web")) == 1


def test_handle_port_conflict_for_an_unknown_service_is_unknown_service(
    sidecar: Sidecar,
) -> None:
    with pytest.raises(RpcError) as caught:
        sidecar.call("handle_port_conflict", service_name="nobody")
    assert caught.value.code == -32002


# --- rightful listeners ------------------------------------------------------------------


def test_a_server_the_app_started_on_its_port_is_never_a_conflict(
    sidecar: Sidecar, app: FakeApp
) -> None:
    port = sidecar.call("allocate_port", service_name="web")
    server = app.start_server(port)

    wait_until(
        lambda: sidecar.call("get_port_info", service_name="web")["holder_pids"] == [server],
        DEADLINE,
        what="the monitor to record the app's server as the holder",
    )

    assert run_scans(sidecar) == [[], [], []]
    info = sidecar.call("get_port_info", service_name="web")
    assert (info["port"], info["state"]) == (port, "listening")
    events_settled(sidecar)
    assert events_for(sidecar, "PortConflict", "web") == []
    assert events_for(sidecar, "PortChanged", "web") == []


def test_an_attached_process_listening_on_the_port_is_never_a_conflict(
    sidecar: Sidecar,
) -> None:
    port = sidecar.call("allocate_port", service_name="api")
    stranger = DeferredListener(port)  # not the app's descendant
    try:
        assert sidecar.call("attach_process", service_name="api", pid=stranger.pid) is None
        assert stranger.listen() == port

        wait_until(
            lambda: sidecar.call("get_port_info", service_name="api")["state"] == "listening",
            DEADLINE,
            what="the attached listener to count as the service's own",
        )
        assert run_scans(sidecar) == [[], [], []]
        events_settled(sidecar)
        assert events_for(sidecar, "PortConflict", "api") == []
        assert events_for(sidecar, "PortChanged", "api") == []
        info = sidecar.call("get_port_info", service_name="api")
        assert info["port"] == port
        assert stranger.pid in info["holder_pids"]
    finally:
        stranger.stop()


def test_attaching_the_listener_of_a_reported_conflict_ends_the_conflict(
    sidecar: Sidecar, start_listener: Callable[..., Listener]
) -> None:
    sidecar.call("init_port_manager", config={"auto_resolve": False})
    port = sidecar.call("allocate_port", service_name="web")
    server = start_listener(port)
    sidecar.wait_event("PortConflict", DEADLINE, about("web"))

    sidecar.call("attach_process", service_name="web", pid=server.pid)

    assert run_scans(sidecar) == [[], [], []]
    assert sidecar.call("get_port_info", service_name="web")["state"] == "listening"


def test_attach_process_of_a_pid_that_does_not_exist_is_invalid_params(
    sidecar: Sidecar,
) -> None:
    sidecar.call("allocate_port", service_name="web")
    with pytest.raises(RpcError) as caught:
        # pid_max is at most 2**22 on Linux: no process can have this pid.
        sidecar.call("attach_process", service_name="web", pid=2**31 - 1)
    assert caught.value.code == -32602


def test_attach_process_to_an_unknown_service_is_unknown_service(
    sidecar: Sidecar, app: FakeApp
) -> None:
    with pytest.raises(RpcError) as caught:
        sidecar.call("attach_process", service_name="nobody", pid=app.pid)
    assert caught.value.code == -32002


# --- ports that free up ------------------------------------------------------------------


def test_port_available_is_sent_once_when_the_squatter_leaves_the_old_port(
    sidecar: Sidecar, start_listener: Callable[..., Listener]
) -> None:
    port = sidecar.call("allocate_port", service_name="web")
    squatter = start_listener(port)
    sidecar.wait_event("PortChanged", DEADLINE, about("web"))
    assert run_scans(sidecar) == [[], [], []]
    assert [e for e in sidecar.events("PortAvailable") if e["port"] == port] == []

    squatter.stop()

    sidecar.wait_event("PortAvailable", DEADLINE, lambda e: e["port"] == port)
    run_scans(sidecar)
    events_settled(sidecar)
    assert len([e for e in sidecar.events("PortAvailable") if e["port"] == port]) == 1


def test_port_available_is_sent_when_a_taken_preferred_port_frees(
    sidecar: Sidecar, start_listener: Callable[..., Listener]
) -> None:
    squatter = start_listener(0)
    port = sidecar.call("allocate_port", service_name="web", preferred_port=squatter.port)
    assert port != squatter.port
    run_scans(sidecar)

    squatter.stop()

    sidecar.wait_event("PortAvailable", DEADLINE, lambda e: e["port"] == squatter.port)


def test_port_available_names_the_service_when_its_conflict_ends_on_its_own(
    sidecar: Sidecar, start_listener: Callable[..., Listener]
) -> None:
    sidecar.call("init_port_manager", config={"auto_resolve": False})
    port = sidecar.call("allocate_port", service_name="web")
    squatter = start_listener(port)
    sidecar.wait_event("PortConflict", DEADLINE, about("web"))

    squatter.stop()

    freed = sidecar.wait_event("PortAvailable", DEADLINE, about("web"))
    assert freed["port"] == port
    assert sidecar.call("check_port_conflicts") == []
    events_settled(sidecar)
    assert len(events_for(sidecar, "PortAvailable", "web")) == 1
    assert sidecar.call("get_port_info", service_name="web")["port"] == port
