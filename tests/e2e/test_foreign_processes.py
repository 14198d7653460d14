"""Another user's processes on portd's ports, for real: a throwaway account
(tests.support.users, `portd-foreign-*`) runs TCP listeners on ports that portd leased.

These tests run as root, and root may signal anyone; portd must not. Whatever it is asked,
it names such a process (pid, name, user) and never signals it:

- a stranger of another user squatting on a lease is a conflict like any other: the
  sidecar moves its own service (or reports the conflict) and leaves the stranger be;
- `reclaim_orphan` ends only a recorded orphan that runs entirely as this user (real,
  effective and saved uid): another user's, even one the registry records as the lease's
  holder, is refused with -32003;
- `attach_process` refuses another user's pid with -32003: a holder becomes a recorded
  orphan once its app is gone, so adopting a stranger would make it a reclaim target;
- the CLI has no command that signals; where it would act for or on another user's process
  it refuses with exit 3 and one line: `allocate --owner-pid` of such a process, `release`
  of a lease such a process owns or holds. Releasing this user's own lease while a stranger
  squats on its port is allowed (it only drops the lease). `who` and `ls` name the stranger.

The listener writes down every catchable signal it receives and answers connections with
its pid (`assert_untouched`); SIGKILL and SIGSTOP show as a process that is gone or stopped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from portd.process import identify
from portd.registry import Registry
from tests.e2e.test_cli import lease_for, portd
from tests.support import regfile
from tests.support.monitoring import about, has_ended
from tests.support.processes import FakeApp, Listener
from tests.support.sidecar import RpcError, Sidecar, wait_until
from tests.support.users import ForeignUser

# The engine is the same in both builds: the one-dir tier proves it frozen.
pytestmark = pytest.mark.engine

Spawn = Callable[..., Sidecar]
DEADLINE = 15.0
PERMISSION_DENIED = -32003
FAILED = 3  # the CLI's exit code for "portd could not do it"


def refused(call: Callable[[], Any]) -> RpcError:
    with pytest.raises(RpcError) as caught:
        call()
    assert caught.value.code == PERMISSION_DENIED, caught.value
    return caught.value


def record_holder(registry: Path, port: int, pid: int) -> None:
    """Write `pid` (with its start time) into the holders of the lease on `port`, as if the
    lease's app had started it or attached it: the spoof a reclaim must see through."""
    ident = identify(pid)
    assert ident is not None
    opened = Registry.open(registry)
    try:
        with opened.transaction() as tx:
            lease = tx.lease_on(port)
            assert lease is not None, f"no lease on port {port}"
            tx.set_holders(port, (*lease.holders, ident))
    finally:
        opened.close()


@dataclass
class RecordedOrphan:
    """A lease whose app is gone and whose recorded holder still listens on its port."""

    port: int
    pid: int
    listener: Any  # what `start` returned: a Listener, or a ForeignListener


def orphan_of(
    app: FakeApp, registry: Path, start: Callable[[int], Any], service: str = "vite"
) -> RecordedOrphan:
    """Lease `service` to the app (through the CLI), start `start(port)` listening there,
    record it as the lease's holder, and let the app die (SIGKILL)."""
    port = lease_for(app, service, registry)
    listener = start(port)
    record_holder(registry, port, listener.pid)
    app.kill()
    return RecordedOrphan(port, listener.pid, listener)


# --- a stranger of another user squats on a lease -------------------------------------------


def test_a_stranger_of_another_user_on_a_leased_port_is_moved_away_from_and_never_signalled(
    sidecar: Sidecar, foreign_user: ForeignUser
) -> None:
    port = sidecar.call("allocate_port", service_name="web")
    stranger = foreign_user.listen(port)

    changed = sidecar.wait_event("PortChanged", DEADLINE, about("web"))

    assert changed["old_port"] == port
    assert changed["new_port"] != port
    assert sidecar.call("get_port_info", service_name="web")["port"] == changed["new_port"]
    assert sidecar.call("check_port_conflicts") == []
    assert sidecar.call("get_stats")["conflicts"] == 1
    owner = sidecar.call("get_port_owner", port=port)
    assert (owner["pid"], owner["user"]) == (stranger.pid, foreign_user.name)
    assert "lease" not in owner, "the port is no longer leased: the service moved"
    stranger.assert_untouched()


def test_without_auto_resolve_the_conflict_names_the_stranger_and_nothing_signals_it(
    sidecar: Sidecar, foreign_user: ForeignUser
) -> None:
    sidecar.call("init_port_manager", config={"auto_resolve": False})
    port = sidecar.call("allocate_port", service_name="web")
    stranger = foreign_user.listen(port)

    conflict = sidecar.wait_event("PortConflict", DEADLINE, about("web"))

    assert conflict["port"] == port and str(stranger.pid) in conflict["error"]
    assert sidecar.call("check_port_conflicts") == ["web"]
    owner = sidecar.call("get_port_owner", port=port)
    assert (owner["pid"], owner["user"]) == (stranger.pid, foreign_user.name)
    assert (owner["lease"]["state"], owner["orphan"]) == ("conflict", False)
    # The app lives, so nothing here is an orphan to reclaim, the stranger least of all.
    refused(lambda: sidecar.call("reclaim_orphan", port=port))
    new_port = sidecar.call("handle_port_conflict", service_name="web")
    assert new_port != port
    assert sidecar.call("check_port_conflicts") == []
    stranger.assert_untouched()


# --- reclaim_orphan -----------------------------------------------------------------------


def test_reclaim_orphan_ends_a_recorded_orphan_of_this_user(
    app: FakeApp,
    registry_path: Path,
    spawn_sidecar: Spawn,
    start_listener: Callable[..., Listener],
) -> None:
    # The control for the refusals below: the same spoofed record, with a listener of this
    # user, is a rightful reclaim. So only the user makes the difference there.
    orphan = orphan_of(app, registry_path, start_listener)
    other = spawn_sidecar()

    ended = other.call("reclaim_orphan", port=orphan.port)

    assert ended["pid"] == orphan.pid
    wait_until(lambda: has_ended(orphan.pid), DEADLINE, what="the orphan to end")


def test_reclaim_orphan_refuses_another_users_recorded_orphan_and_never_signals_it(
    app: FakeApp, registry_path: Path, spawn_sidecar: Spawn, foreign_user: ForeignUser
) -> None:
    orphan = orphan_of(app, registry_path, foreign_user.listen)
    stranger = orphan.listener
    other = spawn_sidecar()
    owner = other.call("get_port_owner", port=orphan.port)
    assert (owner["orphan"], owner["pid"], owner["user"]) == (True, stranger.pid, foreign_user.name)
    assert owner["lease"]["holder_pids"] == [stranger.pid]

    error = refused(lambda: other.call("reclaim_orphan", port=orphan.port))

    assert foreign_user.name in str(error.message), error.message
    stranger.assert_untouched()
    assert other.call("get_port_owner", port=orphan.port)["orphan"] is True
    assert orphan.port in regfile.leased_ports(registry_path), "the record stays as it was"


def test_reclaim_orphan_refuses_a_recorded_orphan_that_took_another_users_effective_uid(
    app: FakeApp, registry_path: Path, spawn_sidecar: Spawn, foreign_user: ForeignUser
) -> None:
    # Its real and saved uids are root's, as this test's are; its effective uid is the
    # stranger's. The kernel would let root signal it; portd does not call it ours.
    uids = (0, foreign_user.uid, 0)
    orphan = orphan_of(app, registry_path, lambda port: foreign_user.listen(port, uids=uids))
    other = spawn_sidecar()

    error = refused(lambda: other.call("reclaim_orphan", port=orphan.port))

    assert foreign_user.name in str(error.message), error.message
    orphan.listener.assert_untouched()


# --- attach_process -----------------------------------------------------------------------


def test_attach_process_refuses_another_users_pid_and_the_conflict_stays(
    sidecar: Sidecar, foreign_user: ForeignUser
) -> None:
    sidecar.call("init_port_manager", config={"auto_resolve": False})
    port = sidecar.call("allocate_port", service_name="web")
    stranger = foreign_user.listen(port)
    sidecar.wait_event("PortConflict", DEADLINE, about("web"))

    error = refused(lambda: sidecar.call("attach_process", service_name="web", pid=stranger.pid))

    assert foreign_user.name in str(error.message), error.message
    info = sidecar.call("get_port_info", service_name="web")
    assert stranger.pid not in info["holder_pids"]
    assert info["state"] == "conflict"
    assert sidecar.call("check_port_conflicts") == ["web"], "the stranger was not adopted"
    stranger.assert_untouched()


# --- the CLI ------------------------------------------------------------------------------


def test_who_and_ls_name_a_stranger_of_another_user_on_a_leased_port(
    app: FakeApp, registry_path: Path, foreign_user: ForeignUser
) -> None:
    port = lease_for(app, "api", registry_path)
    stranger = foreign_user.listen(port)

    who = portd("who", port, registry=registry_path)

    assert who.code == 0, who.stderr
    assert re.search(rf"^pid\s+{stranger.pid}$", who.stdout, re.M), who.stdout
    assert re.search(rf"^user\s+{re.escape(foreign_user.name)}$", who.stdout, re.M), who.stdout
    assert re.search(rf"^state\s+conflict: pid {stranger.pid} is neither", who.stdout, re.M)
    owner = portd("who", port, "--json", registry=registry_path).json()
    assert (owner["pid"], owner["user"]) == (stranger.pid, foreign_user.name)
    assert owner["lease"]["state"] == "conflict"
    listed = portd("ls", "--json", registry=registry_path)
    assert listed.code == 0, listed.stderr
    (lease,) = [x for x in listed.json()["leases"] if x["port"] == port]
    assert lease["state"] == "conflict"
    assert [x["pid"] for x in lease["listeners"]] == [stranger.pid]
    stranger.assert_untouched()


def test_who_names_another_users_recorded_orphan_and_does_not_offer_to_end_it(
    app: FakeApp, registry_path: Path, foreign_user: ForeignUser
) -> None:
    orphan = orphan_of(app, registry_path, foreign_user.listen)

    who = portd("who", orphan.port, registry=registry_path)

    assert who.code == 0, who.stderr
    assert re.search(rf"^user\s+{re.escape(foreign_user.name)}$", who.stdout, re.M), who.stdout
    assert re.search(
        rf"^state\s+orphan: the lease's owner \(pid {app.pid}\) is gone", who.stdout, re.M
    )
    assert f"it runs as user {foreign_user.name}: portd will not end it" in who.stdout
    assert "`kill" not in who.stdout, "no advice to end another user's process"
    owner = portd("who", orphan.port, "--json", registry=registry_path).json()
    assert (owner["orphan"], owner["pid"], owner["user"]) == (True, orphan.pid, foreign_user.name)
    orphan.listener.assert_untouched()


def test_release_refuses_a_lease_that_another_users_process_holds(
    app: FakeApp, registry_path: Path, foreign_user: ForeignUser
) -> None:
    orphan = orphan_of(app, registry_path, foreign_user.listen)

    result = portd("release", "vite", "--owner-pid", app.pid, registry=registry_path)

    assert result.code == FAILED
    assert result.stdout == ""
    assert result.stderr == (
        f"portd release: vite's lease on port {orphan.port} is held by pid {orphan.pid}, "
        f"which runs as user {foreign_user.name}: portd does not end another user's lease\n"
    )
    assert orphan.port in regfile.leased_ports(registry_path)
    orphan.listener.assert_untouched()


def test_allocate_refuses_another_users_process_as_the_owner(
    registry_path: Path, foreign_user: ForeignUser
) -> None:
    stranger = foreign_user.listen(0)

    result = portd("allocate", "web", "--owner-pid", stranger.pid, registry=registry_path)

    assert result.code == FAILED
    assert result.stdout == ""
    assert result.stderr == (
        f"portd allocate: --owner-pid {stranger.pid} runs as user {foreign_user.name}: "
        "a lease is owned by one of this user's processes\n"
    )
    assert not registry_path.exists() or regfile.leases(registry_path) == []
    stranger.assert_untouched()


def test_the_cli_works_around_a_stranger_on_this_users_lease_and_leaves_it_alone(
    app: FakeApp, registry_path: Path, foreign_user: ForeignUser
) -> None:
    port = lease_for(app, "api", registry_path)
    stranger = foreign_user.listen(port)

    # Another allocation that asks for the stranger's port gets a different one.
    moved = portd(
        "allocate", "web", "--owner-pid", app.pid, "--preferred", port, registry=registry_path
    )
    assert moved.code == 0, moved.stderr
    assert int(moved.stdout) != port
    # Releasing this user's own lease only drops the lease; the stranger keeps its port.
    released = portd("release", "api", "--owner-pid", app.pid, registry=registry_path)
    assert (released.code, released.stdout) == (0, f"released api: port {port}\n")
    who = portd("who", port, "--json", registry=registry_path).json()
    assert (who["pid"], who["user"], who["lease"]) == (stranger.pid, foreign_user.name, None)
    assert port not in regfile.leased_ports(registry_path)
    assert portd("free", "--range", f"{port}-{port}", registry=registry_path).code == 1
    stranger.assert_untouched()


def test_a_sidecar_refuses_another_users_process_as_its_app_and_exits_2(
    spawn_sidecar: Callable[..., Sidecar], registry_path: Path, foreign_user: ForeignUser
) -> None:
    stranger = foreign_user.listen(0)

    sidecar = spawn_sidecar(parent_pid=stranger.pid)

    assert sidecar.wait_exit() == 2
    log = sidecar.stderr_text()
    assert f"the app (pid {stranger.pid}) runs as user {foreign_user.name}" in log, log
    assert "Traceback" not in log
    assert not registry_path.exists() or regfile.leases(registry_path) == []
    stranger.assert_untouched()
