"""8 sidecars, each for its own app, on one registry file, allocating 25 services each at
once: 200 distinct ports, and (where nobody else on the machine allocates) each one binds."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.monitoring import binds
from tests.support.processes import FakeApp
from tests.support.regfile import query
from tests.support.sidecar import Sidecar

SIDECARS = 8
SERVICES = [f"svc-{i:02d}" for i in range(25)]
WIDE = (20000, 29999)  # below the ephemeral range, away from the default one
DEFAULT = (1421, 1500)

pytestmark = pytest.mark.timeout(180)


def burst(sidecar: Sidecar, method: str, services: list[str]) -> dict[str, Any]:
    """Send one request per service without waiting, then collect the answers."""
    ids = {service: f"{sidecar.pid}:{method}:{service}" for service in services}
    sidecar.write_raw(
        b"".join(
            sidecar.frame(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": ids[s],
                        "method": method,
                        "params": {"service_name": s},
                    }
                ).encode()
            )
            for s in services
        )
    )
    answers = {s: sidecar.wait_response(ids[s], timeout=60) for s in services}
    failed = {s: a["error"] for s, a in answers.items() if "error" in a}
    assert not failed, failed
    return {s: a["result"] for s, a in answers.items()}


def allocate_all_at_once(
    spawn_sidecar: Callable[..., Sidecar],
    start_app: Callable[[], FakeApp],
    tmp_path: Path,
    config: dict[str, Any] | None,
) -> tuple[list[FakeApp], list[Sidecar], dict[int, dict[str, int]]]:
    apps = [start_app() for _ in range(SIDECARS)]

    def start(index: int) -> Sidecar:
        sidecar = spawn_sidecar(
            parent_pid=apps[index].pid,
            app_id="contention",
            stderr_path=tmp_path / f"sidecar-{index}.log",
        )
        if config is not None:
            sidecar.call("init_port_manager", config=config)
        return sidecar

    with ThreadPoolExecutor(SIDECARS) as pool:
        sidecars = list(pool.map(start, range(SIDECARS)))
        start_line = threading.Barrier(SIDECARS)

        def run(sidecar: Sidecar) -> dict[str, int]:
            start_line.wait()
            return burst(sidecar, "allocate_port", SERVICES)

        results = list(pool.map(run, sidecars))
    return apps, sidecars, {app.pid: ports for app, ports in zip(apps, results, strict=True)}


def assert_registry_matches(registry_path: Path, by_app: dict[int, dict[str, int]]) -> None:
    rows = query(registry_path, "SELECT owner_pid, service, port FROM leases")
    assert sorted(rows) == sorted(
        (pid, service, port) for pid, ports in by_app.items() for service, port in ports.items()
    )
    assert Counter(pid for pid, _, _ in rows) == {pid: len(SERVICES) for pid in by_app}


def test_8_sidecars_allocating_25_services_each_at_once_get_200_distinct_ports_that_bind(
    spawn_sidecar: Callable[..., Sidecar],
    start_app: Callable[[], FakeApp],
    registry_path: Path,
    tmp_path: Path,
) -> None:
    config = {"port_range": list(WIDE), "preferred_port": WIDE[0]}
    _, sidecars, by_app = allocate_all_at_once(spawn_sidecar, start_app, tmp_path, config)
    ports = [port for ports in by_app.values() for port in ports.values()]
    assert len(ports) == SIDECARS * len(SERVICES)
    duplicates = [port for port, n in Counter(ports).items() if n > 1]
    assert not duplicates, duplicates
    outside = [p for p in ports if not WIDE[0] <= p <= WIDE[1]]
    assert not outside, outside
    # Leased, not listened on: every one of them is really free for its service to bind.
    assert [p for p in ports if not binds(p)] == []
    assert_registry_matches(registry_path, by_app)
    # Each app asking again gets its own ports back, untouched by the other seven.
    with ThreadPoolExecutor(SIDECARS) as pool:
        again = list(pool.map(lambda s: burst(s, "allocate_port", SERVICES), sidecars))
    assert again == list(by_app.values())


def test_8_sidecars_on_the_default_range_spill_to_os_ports_and_still_never_share_one(
    spawn_sidecar: Callable[..., Sidecar],
    start_app: Callable[[], FakeApp],
    registry_path: Path,
    tmp_path: Path,
) -> None:
    _, sidecars, by_app = allocate_all_at_once(spawn_sidecar, start_app, tmp_path, None)
    ports = [port for ports in by_app.values() for port in ports.values()]
    assert len(set(ports)) == len(ports) == SIDECARS * len(SERVICES)
    in_range = [p for p in ports if DEFAULT[0] <= p <= DEFAULT[1]]
    assert len(in_range) <= DEFAULT[1] - DEFAULT[0] + 1
    assert len(in_range) >= 40, "the range should be used first"  # others may hold a few
    assert_registry_matches(registry_path, by_app)
    # Releasing all at once frees every lease, and nothing else.
    with ThreadPoolExecutor(SIDECARS) as pool:
        released = list(pool.map(lambda s: burst(s, "release_port", SERVICES), sidecars))
    assert all(value is None for answers in released for value in answers.values())
    assert query(registry_path, "SELECT COUNT(*) FROM leases") == [(0,)]
