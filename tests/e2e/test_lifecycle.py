"""When the sidecar ends and what becomes of its leases: a clean exit (code 0, within 1 s)
releases what it took; a SIGKILL leaves the leases to the app, so a respawned sidecar gets
the same ports; and several sidecars opening a new registry at once all share the file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from tests.support.processes import FakeApp, kill, reap
from tests.support.regfile import leased_ports, leases, query
from tests.support.sidecar import Sidecar, sidecar_command, wait_until

EXIT_WITHIN = 1.0  # seconds, from the trigger to the process being gone (the promise)


def exits_cleanly_within(sidecar: Sidecar, trigger_time: float) -> float:
    code = sidecar.wait_exit(timeout=15)
    took = time.monotonic() - trigger_time
    assert code == 0, sidecar.stderr_text()[-2000:]
    return took


def take_ports(sidecar: Sidecar, *services: str) -> dict[str, int]:
    return {s: sidecar.call("allocate_port", service_name=s) for s in services}


TRIGGERS: dict[str, Callable[[Sidecar, FakeApp], None]] = {
    "stdin EOF": lambda sidecar, app: sidecar.close_stdin(),
    "SIGTERM": lambda sidecar, app: sidecar.signal(signal.SIGTERM),
    "SIGINT": lambda sidecar, app: sidecar.signal(signal.SIGINT),
    "the app is SIGKILLed": lambda sidecar, app: app.kill(),
}


@pytest.mark.parametrize("trigger", list(TRIGGERS))
def test_the_sidecar_exits_0_within_1_s_and_releases_its_leases(
    spawn_sidecar: Callable[..., Sidecar],
    start_app: Callable[[], FakeApp],
    registry_path: Path,
    trigger: str,
) -> None:
    app, bystander_app = start_app(), start_app()
    bystander = spawn_sidecar(parent_pid=bystander_app.pid, app_id="anychat")
    kept = bystander.call("allocate_port", service_name="web")
    sidecar = spawn_sidecar(parent_pid=app.pid, app_id="anychat")
    taken = take_ports(sidecar, "web", "api", "db")
    assert leased_ports(registry_path) == {kept, *taken.values()}
    started = time.monotonic()
    TRIGGERS[trigger](sidecar, app)
    took = exits_cleanly_within(sidecar, started)
    assert took < EXIT_WITHIN, f"exit took {took:.3f} s after {trigger}"
    assert leases(registry_path) == [(kept, "web")]  # its own leases, and only those, are gone
    assert b"Traceback" not in sidecar.raw
    assert "Traceback" not in sidecar.stderr_text()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_that_comes_while_the_engine_still_loads_ends_the_sidecar_too(
    spawn_sidecar: Callable[..., Sidecar], sig: signal.Signals
) -> None:
    sidecar = spawn_sidecar()  # `ready` comes before the engine is imported
    started = time.monotonic()
    sidecar.signal(sig)
    took = exits_cleanly_within(sidecar, started)
    assert took < EXIT_WITHIN, f"exit took {took:.3f} s after an early {sig.name}"


def test_shutdown_answers_null_first_then_exits_0_within_1_s_releasing_its_leases(
    spawn_sidecar: Callable[..., Sidecar], start_app: Callable[[], FakeApp], registry_path: Path
) -> None:
    sidecar = spawn_sidecar(parent_pid=start_app().pid)
    take_ports(sidecar, "web", "api")
    started = time.monotonic()
    answer = sidecar.request("shutdown")
    assert answer == {"jsonrpc": "2.0", "result": None, "id": answer["id"]}
    took = exits_cleanly_within(sidecar, started)
    assert took < EXIT_WITHIN, f"exit took {took:.3f} s after shutdown"
    assert leases(registry_path) == []
    # The answer was the last thing on stdout: the reader saw it, then the end of the stream.
    messages = []
    while (message := sidecar.next_message()) is not None:
        messages.append(message)
    assert messages[-1] == answer


def test_a_call_sent_after_the_shutdown_answer_is_refused_or_unanswered_never_served(
    spawn_sidecar: Callable[..., Sidecar], registry_path: Path
) -> None:
    sidecar = spawn_sidecar()
    sidecar.call("allocate_port", service_name="web")
    assert sidecar.call("shutdown") is None
    try:
        sidecar.send(
            {
                "jsonrpc": "2.0",
                "id": "late",
                "method": "allocate_port",
                "params": {"service_name": "late"},
            }
        )
    except BrokenPipeError:
        pass  # already gone: unanswered is fine
    assert sidecar.wait_exit() == 0
    messages = []
    while (message := sidecar.next_message()) is not None:  # to the end of stdout
        messages.append(message)
    late = [m for m in messages if isinstance(m, dict) and m.get("id") == "late"]
    assert len(late) <= 1
    assert all("result" not in m and m["error"]["code"] == -32006 for m in late), late
    assert leases(registry_path) == []


def test_the_sidecar_exits_when_the_process_that_spawned_it_dies(
    tmp_path: Path, registry_path: Path
) -> None:
    """Without --parent-pid the app is the spawner. The launcher hands the sidecar our pipes,
    so its death closes nothing: only the watch on the spawner can end the sidecar."""
    launcher_code = "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(600)"
    command = [*sidecar_command(), "serve", "--registry", str(registry_path)]
    with open(tmp_path / "stderr.log", "wb") as stderr:
        launcher = subprocess.Popen(
            [sys.executable, "-c", launcher_code, *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    assert launcher.stdin is not None and launcher.stdout is not None
    sidecar_pid = None
    try:
        ready = json.loads(launcher.stdout.readline())["params"]
        sidecar_pid = ready["pid"]
        assert ready["owner_pid"] == launcher.pid
        launcher.stdin.write(
            b'{"jsonrpc":"2.0","id":1,"method":"allocate_port","params":{"service_name":"web"}}\n'
        )
        launcher.stdin.flush()
        port = json.loads(launcher.stdout.readline())["result"]
        assert leased_ports(registry_path) == {port}
        started = time.monotonic()
        kill(launcher.pid)
        launcher.wait(5)
        assert launcher.stdout.read() == b""  # the end of the stream: the sidecar is gone
        took = time.monotonic() - started
        assert took < EXIT_WITHIN, f"exit took {took:.3f} s after its spawner died"
        wait_until(
            lambda: (
                not psutil.pid_exists(sidecar_pid)
                or psutil.Process(sidecar_pid).status() == psutil.STATUS_ZOMBIE
            ),
            what="the sidecar process to end",
        )
        assert leases(registry_path) == []
    finally:
        if sidecar_pid is not None:
            kill(sidecar_pid)
        reap(launcher)


def test_an_app_that_dies_while_its_server_listens_leaves_that_lease_as_an_orphan(
    spawn_sidecar: Callable[..., Sidecar], start_app: Callable[[], FakeApp], registry_path: Path
) -> None:
    app = start_app()
    sidecar = spawn_sidecar(parent_pid=app.pid, app_id="anychat")
    taken = take_ports(sidecar, "web", "api")
    server = app.start_server(taken["web"])
    assert sidecar.call("check_port_conflicts") == []  # the app's child is rightful
    wait_until(
        lambda: server in sidecar.call("get_port_info", service_name="web")["holder_pids"],
        what="the server recorded as the lease's holder",
    )
    started = time.monotonic()
    app.kill()
    took = exits_cleanly_within(sidecar, started)
    assert took < EXIT_WITHIN, f"exit took {took:.3f} s after the app died"
    assert leases(registry_path) == [(taken["web"], "web")]  # the orphan stays on record
    owner = spawn_sidecar(app_id="other").call("get_port_owner", port=taken["web"])
    assert (owner["pid"], owner["orphan"], owner["lease"]["state"]) == (server, True, "orphan")


# --- SIGKILL ---------------------------------------------------------------------------


def test_a_respawned_sidecar_gets_the_ports_of_one_killed_with_sigkill(
    spawn_sidecar: Callable[..., Sidecar], start_app: Callable[[], FakeApp], registry_path: Path
) -> None:
    app = start_app()
    first = spawn_sidecar(parent_pid=app.pid, app_id="anychat")
    ports = take_ports(first, "web", "api", "db")
    first.signal(signal.SIGKILL)
    assert first.wait_exit() == -signal.SIGKILL
    assert leased_ports(registry_path) == set(ports.values())  # the leases stay with the app

    respawned = spawn_sidecar(parent_pid=app.pid, app_id="anychat")
    assert take_ports(respawned, *ports) == ports
    assert take_ports(respawned, "web", "api") == {"web": ports["web"], "api": ports["api"]}

    # While the app lives its ports are its own: another copy of it cannot take them.
    rival = spawn_sidecar(parent_pid=start_app().pid, app_id="anychat")
    for service, port in ports.items():
        assert (
            rival.call("allocate_port", service_name=f"rival-{service}", preferred_port=port)
            != port
        )

    respawned.signal(signal.SIGKILL)
    assert respawned.wait_exit() == -signal.SIGKILL
    app.kill()  # the app itself is gone now: its leases are anybody's to reclaim
    for service, port in ports.items():
        assert (
            rival.call("allocate_port", service_name=f"new-{service}", preferred_port=port) == port
        )
    owners = {owner for (owner,) in query(registry_path, "SELECT owner_pid FROM leases")}
    assert app.pid not in owners


# --- many sidecars at once -------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(3))
def test_sidecars_opening_a_new_registry_at_the_same_instant_all_share_the_file(
    spawn_sidecar: Callable[..., Sidecar], tmp_path: Path, attempt: int
) -> None:
    count = 6
    path = tmp_path / f"fresh-{attempt}" / "registry.sqlite3"
    start_line = threading.Barrier(count)

    def start(index: int) -> Sidecar:
        start_line.wait()
        return spawn_sidecar(
            registry=path, app_id=f"app-{index}", stderr_path=tmp_path / f"sidecar-{index}.log"
        )

    with ThreadPoolExecutor(count) as pool:
        sidecars = list(pool.map(start, range(count)))
        assert all(s.ready["registry"] == str(path) for s in sidecars)
        ports = list(pool.map(lambda s: s.call("allocate_port", service_name="web"), sidecars))
        checks = list(pool.map(lambda s: s.call("perform_health_check"), sidecars))
    assert len(set(ports)) == count
    assert leased_ports(path) == set(ports)  # every sidecar wrote to the file, none to memory
    for sidecar, check in zip(sidecars, checks, strict=True):
        registry = next(c for c in check["components"] if c["component"] == "registry")
        assert registry["status"] == "healthy", registry
        assert registry["details"]["path"] == str(path)
        assert "falling back" not in sidecar.stderr_text()
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_requests_written_before_stdin_closes_are_served_before_the_exit(
    spawn_sidecar: Callable[..., Sidecar], registry_path: Path
) -> None:
    """An app (or a script piping into the sidecar) may write its last calls and close
    stdin at once: what was read before the end of input is answered, not refused."""
    sidecar = spawn_sidecar()
    sidecar.write_raw(
        b"".join(
            sidecar.frame(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": service,
                        "method": "allocate_port",
                        "params": {"service_name": service},
                    }
                ).encode()
            )
            for service in ("web", "api")
        )
    )
    sidecar.close_stdin()
    answers = [sidecar.wait_response(service) for service in ("web", "api")]
    assert all(isinstance(a.get("result"), int) for a in answers), answers
    assert sidecar.wait_exit() == 0
    assert leases(registry_path) == []  # served, then released on the way out
