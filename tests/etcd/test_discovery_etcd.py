"""Service discovery across hosts, on a real etcd: the EtcdRegistry of one host id finds, and
watches, a service leased from another (portd.discovery over the etcd back end).

Owners on this host are this test process (alive); owners on the other host are made-up
identities, as only their own host could tell whether they live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.etcd.conftest import EtcdServer, OpenRegistry, skip_reason
from tests.support.monitoring import about, configure
from tests.support.processes import FakeApp
from tests.support.sidecar import Sidecar, wait_until

if (reason := skip_reason()) is not None:
    pytest.skip(reason, allow_module_level=True)

from portd.discovery import LOOPBACK, ServiceWatch, locate, resolve
from portd.process import ProcessIdentity, identify
from portd.protocol.errors import UnknownService
from portd.protocol.models import PortEvent
from portd.registry import LeaseKey

pytestmark = pytest.mark.timeout(60)

ME = identify(os.getpid())
assert ME is not None
SOMEONE_ELSEWHERE = ProcessIdentity(4242, 1_733_500_000.5)  # a pid of beta's, not ours


def test_a_service_of_another_host_resolves_to_that_host_which_alone_checks_its_owner(
    open_registry: OpenRegistry,
) -> None:
    alpha, beta = open_registry("alpha"), open_registry("beta")
    assert beta.claim(LeaseKey(SOMEONE_ELSEWHERE, "chat", "api"), 38400) is not None

    [far] = resolve(alpha, "chat", "api")

    assert (far.host, far.address, far.state, far.pid) == ("beta", "beta", "remote", 4242)
    assert not far.local
    # On beta itself the owner's pid can be looked at: a made-up one is gone.
    with pytest.raises(UnknownService, match="of pid 4242, which is gone"):
        resolve(beta, "chat", "api")


def test_a_local_live_lease_comes_before_another_hosts_however_new(
    open_registry: OpenRegistry,
) -> None:
    alpha, beta = open_registry("alpha"), open_registry("beta")
    assert alpha.claim(LeaseKey(ME, "chat", "api"), 38410) is not None
    assert beta.claim(LeaseKey(SOMEONE_ELSEWHERE, "chat", "api"), 38411) is not None

    found = locate(alpha, "chat", "api")

    assert [(w.port, w.host, w.address, w.state) for w in found] == [
        (38410, "alpha", LOOPBACK, "live"),
        (38411, "beta", "beta", "remote"),
    ]
    with pytest.raises(UnknownService, match="app 'chat' has 'api'"):
        resolve(alpha, "chat", "web")


def test_a_watcher_on_one_host_is_told_as_a_service_of_another_comes_moves_and_goes(
    open_registry: OpenRegistry,
) -> None:
    alpha, beta = open_registry("alpha"), open_registry("beta", ttl=2)
    events: list[PortEvent] = []
    watch = ServiceWatch(alpha, events.append)
    key = LeaseKey(SOMEONE_ELSEWHERE, "chat", "api")
    assert watch.watch("chat", "api") == []

    assert beta.claim(key, 38420) is not None
    watch.poll()
    assert beta.release(key) and beta.claim(key, 38421) is not None
    watch.poll()
    beta.close()  # beta's last sidecar is gone: its host lease, and its leases, expire
    wait_until(lambda: watch.poll() or len(events) == 3, 15, 0.1, "beta's lease to expire")

    assert [(e.type, e.host, e.address, e.port) for e in events] == [
        ("ServiceUp", "beta", "beta", 38420),
        ("ServiceMoved", "beta", "beta", 38421),
        ("ServiceDown", "beta", "beta", 38421),
    ]
    assert (events[1].old_port, events[1].new_port) == (38420, 38421)


# --- real sidecars, `serve --registry etcd://...`, one host id each ----------------------------


def test_sidecars_on_two_hosts_find_and_watch_each_others_services_and_so_does_the_cli(
    etcd: EtcdServer,
    prefix: str,
    spawn_sidecar: Callable[..., Sidecar],
    start_app: Callable[[], FakeApp],
) -> None:
    url = f"etcd://127.0.0.1:{etcd.client_port}{prefix}"
    chat_app = start_app()
    chat = spawn_sidecar(
        registry=url, parent_pid=chat_app.pid, app_id="chat", extra_args=["--host-id", "alpha"]
    )
    mail = spawn_sidecar(registry=url, app_id="mail", extra_args=["--host-id", "beta"])
    configure(chat)
    configure(mail)
    port = chat.call("allocate_port", service_name="api")

    [far] = mail.call("watch_service", app_id="chat", service_name="api")
    assert (far["port"], far["host"], far["address"], far["state"]) == (
        port, "alpha", "alpha", "remote"
    )  # fmt: skip
    [near] = chat.call("resolve_service", app_id="chat", service_name="api")
    assert (near["address"], near["state"], near["pid"]) == ("127.0.0.1", "live", chat_app.pid)

    environ = {k: v for k, v in os.environ.items() if k not in ("PORTD_REGISTRY", "PORTD_LOG")}
    argv = ["resolve", "chat/api", "--json", "--registry", url, "--host-id", "beta"]
    cli = subprocess.run(
        [sys.executable, "-m", "portd", *argv],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=environ,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert [(w["host"], w["port"]) for w in json.loads(cli.stdout)] == [("alpha", port)]

    moved_to = chat.call("handle_port_conflict", service_name="api")
    moved = mail.wait_event("ServiceMoved", 15, about("api"))
    assert (moved["old_port"], moved["new_port"], moved["host"]) == (port, moved_to, "alpha")
    chat_app.kill()  # the app crashes: its sidecar lets go of the lease
    down = mail.wait_event("ServiceDown", 15, about("api"))
    assert (down["port"], down["host"]) == (moved_to, "alpha")
