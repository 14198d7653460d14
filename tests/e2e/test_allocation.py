"""Allocation as an app sees it over stdio: leases keyed by (owner, app id, service), ports
that nobody else listens on, the queries about ports and leases, and the sticky last port."""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.monitoring import binds
from tests.support.processes import FakeApp, Listener
from tests.support.regfile import leases, query
from tests.support.sidecar import RpcError, Sidecar

SPARE_RANGE = [30000, 30999]  # away from the default range, where other suites allocate


# --- leases ----------------------------------------------------------------------------


def test_one_sidecar_asking_twice_gets_the_same_port(
    spawn_sidecar: Callable[..., Sidecar], registry_path: Path
) -> None:
    sidecar = spawn_sidecar()
    port = sidecar.call("allocate_port", service_name="web")
    assert sidecar.call("allocate_port", service_name="web") == port
    other = sidecar.call("allocate_port", service_name="api")
    assert other != port
    assert leases(registry_path) == sorted([(port, "web"), (other, "api")])


def test_allocate_port_reuses_the_live_lease_even_when_another_port_is_preferred(
    spawn_sidecar: Callable[..., Sidecar],
) -> None:
    sidecar = spawn_sidecar()
    port = sidecar.call("allocate_port", service_name="web")
    spare = sidecar.call("find_available_port", range=SPARE_RANGE)
    assert sidecar.call("allocate_port", service_name="web", preferred_port=spare) == port


def test_two_copies_of_one_app_get_different_ports_for_one_service(
    spawn_sidecar: Callable[..., Sidecar], start_app: Callable[[], FakeApp], registry_path: Path
) -> None:
    first, second = start_app(), start_app()
    one = spawn_sidecar(parent_pid=first.pid, app_id="anychat")
    two = spawn_sidecar(parent_pid=second.pid, app_id="anychat")
    port_one = one.call("allocate_port", service_name="frontend")
    port_two = two.call("allocate_port", service_name="frontend")
    assert port_one != port_two
    assert one.call("allocate_port", service_name="frontend") == port_one
    assert two.call("allocate_port", service_name="frontend") == port_two
    owners = query(registry_path, "SELECT port, owner_pid, app_id, service FROM leases")
    assert sorted(owners) == sorted(
        [
            (port_one, first.pid, "anychat", "frontend"),
            (port_two, second.pid, "anychat", "frontend"),
        ]
    )


def test_two_apps_with_different_app_ids_get_different_ports(
    spawn_sidecar: Callable[..., Sidecar],
) -> None:
    chat = spawn_sidecar(app_id="chat")
    mail = spawn_sidecar(app_id="mail")
    assert chat.call("allocate_port", service_name="web") != mail.call(
        "allocate_port", service_name="web"
    )


@pytest.mark.parametrize("family", ["4", "6"])
def test_a_port_someone_listens_on_is_never_allocated(
    spawn_sidecar: Callable[..., Sidecar], start_listener: Callable[..., Listener], family: str
) -> None:
    squatter = start_listener(0, family=family)
    sidecar = spawn_sidecar()
    sidecar.call("init_port_manager", config={"preferred_port": squatter.port})
    port = sidecar.call("allocate_port", service_name="web", preferred_port=squatter.port)
    assert port != squatter.port
    assert sidecar.call("allocate_port", service_name="api") != squatter.port
    assert binds(port)  # leased, but nobody listens on it yet


def test_a_free_preferred_port_is_granted_exactly(spawn_sidecar: Callable[..., Sidecar]) -> None:
    sidecar = spawn_sidecar()
    spare = sidecar.call("find_available_port", range=SPARE_RANGE)
    assert sidecar.call("allocate_port", service_name="web", preferred_port=spare) == spare


def test_release_port_twice_is_not_an_error(
    spawn_sidecar: Callable[..., Sidecar], registry_path: Path
) -> None:
    sidecar = spawn_sidecar()
    sidecar.call("allocate_port", service_name="web")
    assert sidecar.call("release_port", service_name="web") is None
    assert leases(registry_path) == []
    assert sidecar.call("release_port", service_name="web") is None
    assert sidecar.call("release_port", service_name="never-allocated") is None
    with pytest.raises(RpcError) as caught:
        sidecar.call("get_port_info", service_name="web")
    assert caught.value.code == -32002


def test_find_available_port_leases_nothing(
    spawn_sidecar: Callable[..., Sidecar], registry_path: Path
) -> None:
    sidecar = spawn_sidecar()
    port = sidecar.call("find_available_port", range=SPARE_RANGE)
    assert SPARE_RANGE[0] <= port <= SPARE_RANGE[1]
    assert leases(registry_path) == []
    assert sidecar.call("is_port_available", port=port) is True


# --- queries ---------------------------------------------------------------------------


def test_is_port_available_is_false_for_a_leased_or_listening_port_and_true_for_a_free_one(
    spawn_sidecar: Callable[..., Sidecar], start_listener: Callable[..., Listener]
) -> None:
    sidecar = spawn_sidecar()
    leased = sidecar.call("allocate_port", service_name="web")
    assert binds(leased)  # nobody listens: only the lease makes it unavailable
    assert sidecar.call("is_port_available", port=leased) is False
    v4, v6 = start_listener(0, family="4"), start_listener(0, family="6")
    assert sidecar.call("is_port_available", port=v4.port) is False
    assert sidecar.call("is_port_available", port=v6.port) is False
    free = sidecar.call("find_available_port", range=SPARE_RANGE)
    assert sidecar.call("is_port_available", port=free) is True
    sidecar.call("release_port", service_name="web")
    assert sidecar.call("is_port_available", port=leased) is True


def test_a_lease_is_unavailable_to_other_sidecars_too(
    spawn_sidecar: Callable[..., Sidecar],
) -> None:
    leased = spawn_sidecar(app_id="chat").call("allocate_port", service_name="web")
    assert spawn_sidecar(app_id="mail").call("is_port_available", port=leased) is False


def test_get_port_info_and_stats_describe_this_apps_leases(
    spawn_sidecar: Callable[..., Sidecar], start_app: Callable[[], FakeApp]
) -> None:
    app = start_app()
    sidecar = spawn_sidecar(parent_pid=app.pid, app_id="anychat")
    before = int(time.time() * 1000)
    web = sidecar.call("allocate_port", service_name="web")
    api = sidecar.call("allocate_port", service_name="api")
    after = int(time.time() * 1000)
    info = sidecar.call("get_port_info", service_name="web")
    allocated_at = info.pop("allocated_at")
    assert before - 1000 <= allocated_at <= after + 1000  # Unix milliseconds
    assert info == {
        "service": "web",
        "port": web,
        "app_id": "anychat",
        "owner_pid": app.pid,
        "holder_pids": [],
        "state": "leased",
    }
    stats = sidecar.call("get_port_stats")
    assert set(stats) == {"web", "api"}
    assert stats["api"]["port"] == api and stats["api"]["service"] == "api"
    assert stats["web"] == {**info, "allocated_at": allocated_at}
    other_app = spawn_sidecar(app_id="other")
    other_app.call("allocate_port", service_name="db")
    assert set(sidecar.call("get_port_stats")) == {"web", "api"}  # only this app's leases
    assert other_app.call("get_port_stats").keys() == {"db"}


def test_get_port_info_of_an_unknown_service_is_minus_32002(
    spawn_sidecar: Callable[..., Sidecar],
) -> None:
    sidecar = spawn_sidecar()
    with pytest.raises(RpcError) as caught:
        sidecar.call("get_port_info", service_name="nobody")
    assert caught.value.code == -32002
    assert sidecar.call("get_port_stats") == {}


def test_get_port_owner_names_the_listening_process(
    spawn_sidecar: Callable[..., Sidecar], start_listener: Callable[..., Listener]
) -> None:
    squatter = start_listener(0)
    sidecar = spawn_sidecar()
    owner = sidecar.call("get_port_owner", port=squatter.port)
    assert owner["port"] == squatter.port
    assert owner["pid"] == squatter.pid
    assert owner["name"].startswith("python")
    assert owner["user"]
    assert "-c" in owner["cmdline"]
    assert owner.get("lease") is None
    assert owner["orphan"] is False


def test_get_port_owner_of_a_free_port_is_null(spawn_sidecar: Callable[..., Sidecar]) -> None:
    sidecar = spawn_sidecar()
    free = sidecar.call("find_available_port", range=SPARE_RANGE)
    assert sidecar.call("get_port_owner", port=free) is None


def test_get_port_owner_of_a_leased_port_names_the_lease_and_its_server(
    spawn_sidecar: Callable[..., Sidecar], start_app: Callable[[], FakeApp]
) -> None:
    app = start_app()
    sidecar = spawn_sidecar(parent_pid=app.pid, app_id="anychat")
    port = sidecar.call("allocate_port", service_name="web")
    idle = sidecar.call("get_port_owner", port=port)
    assert idle.get("pid") is None
    assert (idle["lease"]["service"], idle["lease"]["state"]) == ("web", "leased")
    server = app.start_server(port)
    owner = sidecar.call("get_port_owner", port=port)
    assert owner["pid"] == server
    assert owner["lease"]["service"] == "web"
    assert owner["lease"]["owner_pid"] == app.pid
    assert owner["lease"]["state"] == "listening"  # the app's own child: its rightful holder


# --- configuration ---------------------------------------------------------------------


def test_init_port_manager_merges_the_fields_given_and_keeps_the_leases(
    spawn_sidecar: Callable[..., Sidecar],
) -> None:
    sidecar = spawn_sidecar(app_id="anychat")
    defaults = sidecar.call("init_port_manager")
    assert defaults["preferred_port"] == 1421
    assert defaults["port_range"] == [1421, 1500]
    assert defaults["max_retries"] == 10
    assert defaults["health_check_interval"] == 30.0
    assert defaults["conflict_scan_interval"] == 2.0
    assert defaults["auto_resolve"] is True
    assert defaults["app_id"] == "anychat"
    web = sidecar.call("allocate_port", service_name="web")
    ranged = sidecar.call("init_port_manager", config={"port_range": SPARE_RANGE})
    assert ranged == {**defaults, "port_range": SPARE_RANGE}
    again = sidecar.call("init_port_manager", config={"max_retries": 3})
    assert again == {**defaults, "port_range": SPARE_RANGE, "max_retries": 3}
    assert sidecar.call("init_port_manager", config={}) == again
    assert sidecar.call("allocate_port", service_name="web") == web  # the lease stayed
    assert sidecar.call("get_port_info", service_name="web")["port"] == web
    api = sidecar.call("allocate_port", service_name="api")
    assert SPARE_RANGE[0] <= api <= SPARE_RANGE[1] or api == defaults["preferred_port"]


def test_sticky_a_service_gets_its_last_port_back_from_a_new_sidecar_of_the_same_app(
    spawn_sidecar: Callable[..., Sidecar], start_app: Callable[[], FakeApp]
) -> None:
    first = spawn_sidecar(parent_pid=start_app().pid, app_id="anychat")
    spare = first.call("find_available_port", range=SPARE_RANGE)
    assert first.call("allocate_port", service_name="web", preferred_port=spare) == spare
    first.call("release_port", service_name="web")
    first.call("shutdown")
    assert first.wait_exit() == 0
    # Another run of the app, another sidecar: no preferred port given, the last one wins.
    second = spawn_sidecar(parent_pid=start_app().pid, app_id="anychat")
    assert second.call("allocate_port", service_name="web") == spare
    # Stickiness is per app id: another app asking for "web" starts from the defaults.
    assert spawn_sidecar(app_id="mail").call("allocate_port", service_name="web") != spare


def test_the_registry_file_is_private_to_the_user(
    spawn_sidecar: Callable[..., Sidecar], registry_path: Path
) -> None:
    sidecar = spawn_sidecar()
    sidecar.call("allocate_port", service_name="web")
    assert stat.S_IMODE(os.stat(registry_path).st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        side = registry_path.with_name(registry_path.name + suffix)
        if side.exists():
            assert stat.S_IMODE(os.stat(side).st_mode) == 0o600, suffix


def test_a_range_full_of_dead_apps_leases_is_reclaimed_before_the_os_is_asked(
    spawn_sidecar: Callable[..., Sidecar], start_app: Callable[[], FakeApp]
) -> None:
    low, high = 31000, 31007
    dead = start_app()
    sidecar = spawn_sidecar(parent_pid=dead.pid, app_id="chat")
    sidecar.call("init_port_manager", config={"preferred_port": low, "port_range": [low, high]})
    old = [sidecar.call("allocate_port", service_name=f"old-{i}") for i in range(high - low + 1)]
    assert all(low <= port <= high for port in old if binds(port)), old
    sidecar.signal(signal.SIGKILL)
    assert sidecar.wait_exit() == -signal.SIGKILL
    dead.kill()  # every lease of the range is a dead app's now

    fresh = spawn_sidecar(parent_pid=start_app().pid, app_id="mail")
    fresh.call("init_port_manager", config={"preferred_port": low, "port_range": [low, high]})
    got = [fresh.call("allocate_port", service_name=f"new-{i}") for i in range(3)]
    reclaimable = [port for port in old if low <= port <= high and binds(port)]
    assert len(reclaimable) >= 3, f"the machine listens on most of {low}-{high}: {old}"
    assert all(low <= port <= high for port in got), f"{got}: the OS was asked first"
