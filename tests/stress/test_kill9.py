"""kill -9 at random moments (while opening the registry, mid-burst of allocations and
releases, idle): the file always passes `PRAGMA integrity_check`, and no port is ever handed
out twice, neither in the file nor by the sidecars that come after."""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from tests.support.processes import FakeApp
from tests.support.regfile import assert_registry_sound, query
from tests.support.sidecar import Sidecar

ROUNDS = 20
BURST = 150
SERVICES = [f"svc-{i:02d}" for i in range(30)]
APP_IDS = ["chat", "mail"]

pytestmark = pytest.mark.timeout(240)


def live_leases(path: Path) -> dict[int, tuple[int, str, str]]:
    """port -> (owner pid, app id, service) for the leases whose owner still runs."""
    live = {}
    for port, pid, started, app_id, service in query(
        path, "SELECT port, owner_pid, owner_started, app_id, service FROM leases"
    ):
        try:
            alive = abs(psutil.Process(pid).create_time() - started) < 0.01
        except psutil.NoSuchProcess:
            alive = False
        if alive:
            live[port] = (pid, app_id, service)
    return live


def fire_burst(sidecar: Sidecar, rng: random.Random) -> None:
    frames = []
    for i in range(BURST):
        method = "allocate_port" if rng.random() < 0.7 else "release_port"
        params = {"service_name": rng.choice(SERVICES)}
        frames.append(
            sidecar.frame(
                json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}).encode()
            )
        )
    sidecar.write_raw(b"".join(frames))


def test_kill_9_at_random_moments_leaves_a_sound_registry_that_hands_out_no_port_twice(
    spawn_sidecar: Callable[..., Sidecar],
    start_app: Callable[[], FakeApp],
    registry_path: Path,
    tmp_path: Path,
) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    apps = [start_app() for _ in range(3)]
    answered = []
    for round_ in range(ROUNDS):
        note = f"seed {seed}, round {round_}"
        if round_ and round_ % 6 == 0:
            # An app dies now and then: its leases become reclaimable by the next claims.
            apps.pop(rng.randrange(len(apps))).kill()
            apps.append(start_app())
        sidecar = spawn_sidecar(
            parent_pid=rng.choice(apps).pid,
            app_id=rng.choice(APP_IDS),
            stderr_path=tmp_path / f"round-{round_}.log",
        )
        fire_burst(sidecar, rng)
        if round_ < 3 or rng.random() < 0.3:
            # Early: the registry is opened some 0.2-0.4 s after `ready` (created in round 0).
            time.sleep(rng.uniform(0.0, 0.5))
        else:
            # Mid-burst: right after the answer to a random request, with the rest in flight.
            sidecar.wait_response(rng.randrange(BURST), timeout=30)
        sidecar.signal(signal.SIGKILL)
        assert sidecar.wait_exit() == -signal.SIGKILL, note
        answered.append(
            sum(
                1
                for m in list(sidecar.messages.queue)
                if isinstance(m, dict) and "id" in m and "result" in m
            )
        )
        sidecar.stop()
        assert_registry_sound(registry_path, note)
    assert any(answered), f"no burst was ever served before its kill (seed {seed})"

    # Sidecars that come after never collide with a live lease, nor with each other.
    before = live_leases(registry_path)
    assert before, f"no lease survived the kills (seed {seed}; answered {answered})"
    fresh = [start_app() for _ in range(4)]

    def allocate(app: FakeApp) -> list[int]:
        sidecar = spawn_sidecar(
            parent_pid=app.pid, app_id="chat", stderr_path=tmp_path / f"fresh-{app.pid}.log"
        )
        return [sidecar.call("allocate_port", service_name=s, timeout=60) for s in SERVICES[:20]]

    with ThreadPoolExecutor(len(fresh)) as pool:
        new_ports = [port for ports in pool.map(allocate, fresh) for port in ports]
    assert [p for p, n in Counter(new_ports).items() if n > 1] == [], f"seed {seed}"
    taken = set(new_ports) & set(before)
    assert not taken, {p: before[p] for p in taken}
    assert_registry_sound(registry_path, f"seed {seed}, after the fresh sidecars")
    after = live_leases(registry_path)
    assert {p: before[p] for p in before} == {p: after[p] for p in before}  # untouched
