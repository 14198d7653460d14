"""Real sidecars on a real etcd (`serve --registry etcd://...`): what an app sees when its
registry is shared by several hosts, simulated here by distinct `--host-id`s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.etcd.conftest import EtcdServer, OpenRegistry, skip_reason
from tests.support.processes import FakeApp
from tests.support.sidecar import RpcError, Sidecar, sidecar_command, wait_until

if (reason := skip_reason()) is not None:
    pytest.skip(reason, allow_module_level=True)

from portd.process import ProcessIdentity
from portd.registry import LeaseKey

pytestmark = [pytest.mark.timeout(180), pytest.mark.sidecar]

SIDECARS = 8  # on two hosts
SERVICES = [f"svc-{i:02d}" for i in range(25)]
REGISTRY_UNAVAILABLE = -32004


def etcd_url(server: EtcdServer, prefix: str) -> str:
    return f"etcd://127.0.0.1:{server.client_port}{prefix}"


def on_host(spawn_sidecar: Callable[..., Sidecar], url: str, host: str, **kwargs: Any) -> Sidecar:
    return spawn_sidecar(registry=url, extra_args=["--host-id", host], **kwargs)


def burst(sidecar: Sidecar, services: list[str]) -> dict[str, int]:
    """One allocate_port per service, all written at once, then every answer."""
    ids = {s: f"{sidecar.pid}:{s}" for s in services}
    sidecar.write_raw(
        b"".join(
            sidecar.frame(
                json.dumps(
                    {"jsonrpc": "2.0", "id": ids[s], "method": "allocate_port",
                     "params": {"service_name": s}}
                ).encode()
            )
            for s in services
        )
    )  # fmt: skip
    answers = {s: sidecar.wait_response(ids[s], timeout=90) for s in services}
    failed = {s: a["error"] for s, a in answers.items() if "error" in a}
    assert not failed, failed
    return {s: int(a["result"]) for s, a in answers.items()}


def test_a_sidecar_on_etcd_leases_and_releases_a_port_every_host_can_see(
    etcd: EtcdServer,
    prefix: str,
    open_registry: OpenRegistry,
    spawn_sidecar: Callable[..., Sidecar],
) -> None:
    sidecar = on_host(spawn_sidecar, etcd_url(etcd, prefix), "alpha", app_id="chat")

    port = sidecar.call("allocate_port", service_name="api")

    seen_from_beta = open_registry("beta").lease_on(port)
    assert seen_from_beta is not None
    assert (seen_from_beta.service, seen_from_beta.key.app_id) == ("api", "chat")
    assert getattr(seen_from_beta, "host", None) == "alpha"
    assert sidecar.call("allocate_port", service_name="api") == port  # renewed, not re-leased
    sidecar.call("release_port", service_name="api")
    assert open_registry("beta").lease_on(port) is None


def test_another_hosts_lease_is_alive_here_whatever_its_pid(
    etcd: EtcdServer,
    prefix: str,
    open_registry: OpenRegistry,
    spawn_sidecar: Callable[..., Sidecar],
) -> None:
    # Owned on host beta by a pid that runs nothing here: on SQLite it would be reclaimed.
    beta = open_registry("beta")
    nobody_here = ProcessIdentity(2**22 + 17, 1.0)
    taken = beta.claim(LeaseKey(nobody_here, "other-app", "db"), 39401)
    assert taken is not None
    sidecar = on_host(spawn_sidecar, etcd_url(etcd, prefix), "alpha")

    port = sidecar.call("allocate_port", service_name="db", preferred_port=39401)

    assert port != 39401
    assert sidecar.call("is_port_available", port=39401) is False
    assert beta.lease_on(39401) == taken  # untouched


def test_eight_sidecars_on_two_hosts_never_share_a_port(
    etcd: EtcdServer,
    prefix: str,
    open_registry: OpenRegistry,
    spawn_sidecar: Callable[..., Sidecar],
    start_app: Callable[[], FakeApp],
    tmp_path: Path,
) -> None:
    url = etcd_url(etcd, prefix)
    apps = [start_app() for _ in range(SIDECARS)]

    def start(index: int) -> Sidecar:
        return on_host(
            spawn_sidecar,
            url,
            "alpha" if index % 2 else "beta",
            parent_pid=apps[index].pid,
            app_id="contention",
            stderr_path=tmp_path / f"sidecar-{index}.log",
        )

    with ThreadPoolExecutor(SIDECARS) as pool:
        sidecars = list(pool.map(start, range(SIDECARS)))
        start_line = threading.Barrier(SIDECARS)

        def run(sidecar: Sidecar) -> dict[str, int]:
            start_line.wait()
            return burst(sidecar, SERVICES)

        results = list(pool.map(run, sidecars))

    answered = [port for ports in results for port in ports.values()]
    assert len(answered) == SIDECARS * len(SERVICES)
    assert [p for p, n in Counter(answered).items() if n > 1] == []
    registry = open_registry("gamma")
    on_record = {lease.port: lease for lease in registry.leases()}
    assert set(answered) == set(on_record)
    hosts = Counter(getattr(lease, "host", None) for lease in on_record.values())
    assert hosts == {"alpha": 100, "beta": 100}
    assert registry.integrity_check() == "ok"


def test_etcd_killed_mid_claim_gives_32004_never_a_port_twice_and_recovers(
    private_etcd: EtcdServer,
    prefix: str,
    open_registry: OpenRegistry,
    spawn_sidecar: Callable[..., Sidecar],
) -> None:
    sidecar = on_host(spawn_sidecar, etcd_url(private_etcd, prefix), "alpha")
    answered: dict[str, int] = {}
    errors: list[RpcError] = []
    stop = threading.Event()

    def allocate_until_stopped() -> None:
        n = 0
        while not stop.is_set():
            service = f"s{n}"
            try:
                answered[service] = sidecar.call("allocate_port", service_name=service, timeout=15)
            except RpcError as exc:
                errors.append(exc)
            n += 1

    worker = threading.Thread(target=allocate_until_stopped)
    worker.start()
    try:
        wait_until(lambda: len(answered) >= 20, 30, 0.01, "allocations before the kill")
        private_etcd.kill()
        wait_until(lambda: len(errors) >= 3, 20, 0.01, "allocations to fail")
        down = sidecar.call("perform_health_check", timeout=15)
        private_etcd.start()  # the same data, on the same ports
        before = len(answered)
        wait_until(lambda: len(answered) >= before + 20, 30, 0.05, "allocations to work again")
    finally:
        stop.set()
        worker.join(30)

    assert {e.code for e in errors} == {REGISTRY_UNAVAILABLE}, errors[:3]
    assert private_etcd.endpoint in str(errors[0].message)
    assert down["status"] == "unhealthy"
    assert sidecar.proc.poll() is None  # served throughout
    assert [p for p, n in Counter(answered.values()).items() if n > 1] == []
    leases = {
        lease.service: lease.port
        for lease in open_registry("beta", endpoint=private_etcd.endpoint).leases()
    }
    for service, port in answered.items():
        assert leases.get(service) == port, f"{service} was answered {port} but is not on record"
    assert sidecar.call("allocate_port", service_name="after") not in answered.values()


def test_a_malformed_etcd_address_is_refused_at_start_saying_why(tmp_path: Path) -> None:
    done = subprocess.run(
        [*sidecar_command(), "serve", "--registry", "etcd://no-port-here"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "etcd://HOST:PORT" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.skipif(bool(os.environ.get("PORTD_SIDECAR")), reason="shadows a Python package")
def test_a_sidecar_without_an_etcd_client_refuses_etcd_at_start_saying_how_to_get_one(
    etcd: EtcdServer, prefix: str, tmp_path: Path
) -> None:
    shadow = tmp_path / "etcd3gw"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('etcd3gw is not installed')\n")
    done = subprocess.run(
        [*sidecar_command(), "serve", "--registry", etcd_url(etcd, prefix)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert "no etcd client" in done.stderr and "portd[etcd]" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_cli_lists_the_leases_of_every_host(
    etcd: EtcdServer, prefix: str, open_registry: OpenRegistry
) -> None:
    beta = open_registry("beta")
    beta.claim(LeaseKey(ProcessIdentity(2**22 + 5, 1.0), "team", "api"), 39501)
    url = etcd_url(etcd, prefix)

    done = subprocess.run(
        [sys.executable, "-m", "portd", "ls", "--registry", url, "--host-id", "alpha", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert "39501" in json.dumps(listed)
