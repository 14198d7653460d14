"""Service discovery over real stdio: one app's sidecar finds another app's service by name
(`resolve_service`), is told when it moves, goes or comes (`watch_service`), and people ask
the same with `portd resolve APP/SERVICE`.

Each app is a FakeApp owning its own sidecar's leases (`--parent-pid`), all on the test's
private registry, so killing an app is an app that crashed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.monitoring import about, configure
from tests.support.processes import FakeApp
from tests.support.sidecar import RpcError, Sidecar

Spawn = Callable[..., Sidecar]
DEADLINE = 15.0  # generous: the watcher's pass comes every 0.2 s
HOST = socket.gethostname()


def app_sidecar(spawn: Spawn, start_app: Callable[[], FakeApp], app_id: str) -> Sidecar:
    """A new app and its sidecar, scanning (and so looking at what it watches) often."""
    app = start_app()
    sidecar = spawn(parent_pid=app.pid, app_id=app_id)
    configure(sidecar)
    return sidecar


@pytest.fixture
def chat(spawn_sidecar: Spawn, start_app: Callable[[], FakeApp]) -> Sidecar:
    return app_sidecar(spawn_sidecar, start_app, "chat")


@pytest.fixture
def mail(spawn_sidecar: Spawn, start_app: Callable[[], FakeApp]) -> Sidecar:
    return app_sidecar(spawn_sidecar, start_app, "mail")


def service_events(sidecar: Sidecar, service: str) -> list[dict[str, Any]]:
    return [e for e in sidecar.events() if e["type"].startswith("Service") and about(service)(e)]


# --- resolving --------------------------------------------------------------------------------


def test_an_app_finds_another_apps_service_by_name_without_knowing_its_port(
    chat: Sidecar, mail: Sidecar
) -> None:
    port = chat.call("allocate_port", service_name="api")

    found = mail.call("resolve_service", app_id="chat", service_name="api")

    assert found == [
        {
            "app_id": "chat",
            "service": "api",
            "port": port,
            "host": HOST,
            "address": "127.0.0.1",
            "local": True,
            "state": "live",
            "pid": chat.ready["owner_pid"],
            "holder_pids": [],
            "allocated_at": found[0]["allocated_at"],
        }
    ]
    # As Tauri's invoke sends params: camelCase.
    assert mail.call("resolve_service", appId="chat", serviceName="api") == found


def test_resolving_a_service_no_app_holds_is_unknown_service_naming_what_there_is(
    chat: Sidecar, mail: Sidecar
) -> None:
    chat.call("allocate_port", service_name="web")

    with pytest.raises(RpcError) as caught:
        mail.call("resolve_service", app_id="chat", service_name="api")

    assert caught.value.code == -32002
    assert caught.value.message == "no lease for 'chat/api'; app 'chat' has 'web'"
    with pytest.raises(RpcError) as missing:
        mail.call("resolve_service", app_id="chat")
    assert missing.value.code == -32602


def test_two_copies_of_an_app_are_answered_newest_first_and_a_watch_follows_the_survivor(
    spawn_sidecar: Spawn, start_app: Callable[[], FakeApp], mail: Sidecar
) -> None:
    apps = [start_app(), start_app()]
    copies = [spawn_sidecar(parent_pid=app.pid, app_id="chat") for app in apps]
    for copy in copies:
        configure(copy)
    older = copies[0].call("allocate_port", service_name="api")
    newer = copies[1].call("allocate_port", service_name="api")

    found = mail.call("resolve_service", app_id="chat", service_name="api")
    assert [(w["port"], w["pid"]) for w in found] == [(newer, apps[1].pid), (older, apps[0].pid)]
    assert mail.call("watch_service", app_id="chat", service_name="api") == found

    apps[1].kill()  # the newer copy crashes: the older one answers now
    moved = mail.wait_event("ServiceMoved", DEADLINE, about("api"))
    assert (moved["old_port"], moved["new_port"], moved["port"]) == (newer, older, older)
    assert (moved["app_id"], moved["host"], moved["address"]) == ("chat", HOST, "127.0.0.1")

    apps[0].kill()
    down = mail.wait_event("ServiceDown", DEADLINE, about("api"))
    assert down["port"] == older
    with pytest.raises(RpcError) as caught:
        mail.call("resolve_service", app_id="chat", service_name="api")
    assert caught.value.code == -32002
    assert [e["type"] for e in service_events(mail, "api")] == ["ServiceMoved", "ServiceDown"]


# --- watching ---------------------------------------------------------------------------------


def test_a_watcher_is_told_when_the_service_moves_goes_down_and_comes_back(
    chat: Sidecar, mail: Sidecar
) -> None:
    port = chat.call("allocate_port", service_name="api")
    [now] = mail.call("watch_service", app_id="chat", service_name="api")
    assert now["port"] == port

    moved_to = chat.call("handle_port_conflict", service_name="api")
    moved = mail.wait_event("ServiceMoved", DEADLINE, about("api"))
    assert (moved["old_port"], moved["new_port"]) == (port, moved_to)

    chat.call("release_port", service_name="api")
    down = mail.wait_event("ServiceDown", DEADLINE, about("api"))
    assert (down["app_id"], down["port"]) == ("chat", moved_to)

    back = chat.call("allocate_port", service_name="api")
    up = mail.wait_event("ServiceUp", DEADLINE, about("api"))
    assert (up["port"], up["address"], up["host"]) == (back, "127.0.0.1", HOST)
    assert [e["type"] for e in service_events(mail, "api")] == [
        "ServiceMoved",
        "ServiceDown",
        "ServiceUp",
    ]
    assert service_events(chat, "api") == [], "only the watcher is told"


def test_watching_a_service_before_it_is_up_answers_nothing_and_tells_when_it_comes(
    chat: Sidecar, mail: Sidecar
) -> None:
    assert mail.call("watch_service", app_id="chat", service_name="api") == []

    port = chat.call("allocate_port", service_name="api")

    up = mail.wait_event("ServiceUp", DEADLINE, about("api"))
    assert (up["app_id"], up["port"]) == ("chat", port)


def test_after_unwatch_service_nothing_more_is_told_of_that_service(
    chat: Sidecar, mail: Sidecar
) -> None:
    chat.call("allocate_port", service_name="api")
    mail.call("watch_service", app_id="chat", service_name="api")
    mail.call("watch_service", app_id="chat", service_name="sentinel")

    assert mail.call("unwatch_service", app_id="chat", service_name="api") is None
    assert mail.call("unwatch_service", app_id="chat", service_name="api") is None
    chat.call("release_port", service_name="api")
    chat.call("allocate_port", service_name="sentinel")

    # The pass that told of the sentinel read the registry after api's release; api, had it
    # still been watched, would have been told in that pass or before it, and first.
    mail.wait_event("ServiceUp", DEADLINE, about("sentinel"))
    assert service_events(mail, "api") == []


# --- portd resolve ----------------------------------------------------------------------------


def portd(*args: object, registry: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PORTD_REGISTRY", "PORTD_LOG")}
    argv = [sys.executable, "-m", "portd", *map(str, args), "--registry", str(registry)]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=environ
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_portd_resolve_prints_a_table_json_for_scripts_and_one_line_when_unknown(
    chat: Sidecar, registry_path: Path
) -> None:
    port = chat.call("allocate_port", service_name="api")
    owner = chat.ready["owner_pid"]

    table = portd("resolve", "chat/api", registry=registry_path)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["PORT", "ADDRESS", "HOST", "STATE", "OWNER", "SINCE"]
    assert row.split()[:5] == [str(port), "127.0.0.1", HOST, "live", str(owner)]

    scripted = portd("resolve", "chat/api", "--json", registry=registry_path)
    assert scripted.returncode == 0, scripted.stderr
    [where] = json.loads(scripted.stdout)
    assert (where["port"], where["address"], where["pid"]) == (port, "127.0.0.1", owner)

    for target in ("chat/nope", "nobody/api"):
        unknown = portd("resolve", target, "--json", registry=registry_path)
        assert (unknown.returncode, unknown.stdout) == (1, "")
        assert unknown.stderr.startswith(f"portd resolve: no lease for '{target}'")
        assert unknown.stderr.count("\n") == 1

    bad = portd("resolve", "chat", registry=registry_path)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "is not APP/SERVICE" in bad.stderr
