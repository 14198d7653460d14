"""A kill -9 storm: 100 sidecars over one registry file, serving many apps under several app
ids, up to ten alive at once, each SIGKILLed at a random moment (right after `ready`, while
it opens the registry; mid-burst of allocations and releases; idle) and respawned, while apps
die too. Through it all no port is answered to two keys at once and a live app gets its ports
back from every new sidecar; at the end the file passes `PRAGMA integrity_check`, every live
app's leases are there unchanged, and every dead app's lease goes to the claim that asks for
its port.

The plan comes from a seeded `random.Random`: PORTD_STORM_SEED replays it (the moments of the
kills depend on the machine's speed as well). PORTD_STORM_REPORT names a JSON file that gets
the figures, which are also printed (pytest -s).
"""

from __future__ import annotations

import json
import math
import os
import queue
import random
import re
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.monitoring import binds
from tests.support.processes import FakeApp
from tests.support.regfile import assert_registry_sound, query
from tests.support.sidecar import Sidecar

SIDECARS = 100  # at least, over the whole storm
APPS = 5  # alive at any time: a killed one is replaced by a new one
APP_IDS = ["chat", "mail", "docs"]
SERVICES = [f"svc-{i}" for i in range(6)]
WAVE = (8, 10)  # sidecars alive at once, each for its own (app, app id)
BURST = (8, 40)  # requests written at once to each sidecar
APP_DEATH = 0.5  # chance that an app dies during a wave (it always does in every other one)
RANGE = (1421, 1500)  # the default allocation range
ANSWER_TIMEOUT = 60.0  # seconds; a loaded 2-core machine is slow, never this slow

Owner = tuple[int, float]  # an app as the registry knows it: pid, start time
Key = tuple[int, float, str, str]  # a lease's key: owner pid, owner start, app id, service
UNKNOWN = -1  # a key's state when its last requests may or may not have run before the kill
CONFLICT_LOG = re.compile(r"conflict: (\S+)'s port \d+ is held by")

pytestmark = pytest.mark.timeout(240)


# --- one sidecar's life ----------------------------------------------------------------------


@dataclass
class Plan:
    index: int
    app: FakeApp
    owner: Owner
    app_id: str
    ops: list[tuple[str, dict[str, Any]]]  # (method, params); the request id is the index
    # When it dies: SIGKILLed "early" (`delay` after `ready`), "mid" (once it answered
    # request `kill_after`) or "idle" (`delay` after its last answer); or, when its app is
    # to die meanwhile, "outlive": left alone, it must see the app go and leave by itself.
    mode: str
    kill_after: int = 0
    delay: float = 0.0
    note: str = ""


@dataclass
class Run:
    plan: Plan
    spawned_at: float = 0.0
    sent_at: float = 0.0
    answers: dict[int, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    moved: set[str] = field(default_factory=set)  # services its monitor moved (or may have)
    exit_code: int | None = None
    closed: bool = False
    closed_at: float = 0.0
    sent: threading.Event = field(default_factory=threading.Event)  # its burst went out
    heard: threading.Event = field(default_factory=threading.Event)  # it answered, or left
    log: Path | None = None


def storm_plan(rng: random.Random, index: int, app: FakeApp, owner: Owner, app_id: str) -> Plan:
    ops = [
        ("allocate_port" if rng.random() < 0.7 else "release_port", {"service_name": service})
        for service in (rng.choice(SERVICES) for _ in range(rng.randint(*BURST)))
    ]
    mode = rng.choices(["early", "mid", "idle"], weights=[1, 2, 1])[0]
    # Early: a sidecar opens the registry some 0.2 s after `ready`, then answers.
    delay = rng.uniform(0.0, 0.4) if mode == "early" else rng.uniform(0.0, 0.3)
    return Plan(index, app, owner, app_id, ops, mode, rng.randrange(len(ops)), delay)


def collect(sidecar: Sidecar, run: Run, until: int | None) -> None:
    """Take what the sidecar says until it answers request `until` (None: until its stdout
    closes), noting when each answer was read and which services its monitor moved."""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while not run.closed:
        left = deadline - time.monotonic()
        try:
            message = sidecar.next_message(timeout=max(left, 0.0))
        except queue.Empty:
            raise AssertionError(
                f"{run.plan.note}: sidecar {run.plan.index} (pid {sidecar.pid}) gave no answer "
                f"{until} within {ANSWER_TIMEOUT:g} s; got {sorted(run.answers)}"
            ) from None
        if message is None:
            run.closed, run.closed_at = True, time.monotonic()
            run.heard.set()
        elif isinstance(message, dict) and message.get("method") == "port_event":
            params = message.get("params") or {}
            if params.get("type") == "PortChanged":
                run.moved.add(str(params.get("service")))
        elif isinstance(message, dict) and "method" not in message:
            run.answers[message.get("id")] = (time.monotonic(), message)  # type: ignore[index]
            run.heard.set()
            if message.get("id") == until:
                return


def drive(run: Run, spawn_sidecar: Callable[..., Sidecar]) -> Run:
    """Spawn the sidecar, write its whole burst at once, SIGKILL it when the plan says."""
    plan = run.plan
    try:
        run.spawned_at = time.monotonic()
        sidecar = spawn_sidecar(parent_pid=plan.app.pid, app_id=plan.app_id, stderr_path=run.log)
        frames = [
            sidecar.frame(
                json.dumps({"jsonrpc": "2.0", "id": i, "method": m, "params": p}).encode()
            )
            for i, (m, p) in enumerate(plan.ops)
        ]
        run.sent_at = time.monotonic()
        try:
            sidecar.write_raw(b"".join(frames))
        except BrokenPipeError:
            pass  # its app died already, and so did it: nothing was read
    finally:
        run.sent.set()
    if plan.mode == "mid":
        collect(sidecar, run, plan.kill_after)
    elif plan.mode == "idle":
        collect(sidecar, run, len(plan.ops) - 1)
        time.sleep(plan.delay)
    elif plan.mode == "outlive":
        collect(sidecar, run, None)  # until its stdout closes: it leaves when its app dies
    else:
        time.sleep(plan.delay)
    if plan.mode != "outlive":
        try:
            sidecar.signal(signal.SIGKILL)  # not reaped yet: the pid is still this sidecar's
        except ProcessLookupError:
            pass
    run.exit_code = sidecar.wait_exit(ANSWER_TIMEOUT)
    collect(sidecar, run, None)  # whatever it wrote before it died
    sidecar.stop()
    # A stranger on the machine listening on one of the app's ports makes the monitor move
    # the service; it logs the conflict before it moves, so a kill cannot hide a move.
    run.moved |= set(CONFLICT_LOG.findall(sidecar.stderr_text()))
    return run


def run_wave(
    plans: list[Plan],
    victim: FakeApp | None,
    victim_delay: float,
    spawn_sidecar: Callable[..., Sidecar],
    tmp_path: Path,
) -> tuple[list[Run], float | None]:
    """Run the plans' sidecars at once; SIGKILL `victim` (an app) at a random moment after
    every burst has gone out (and, if the app has sidecars meant to outlive it, once they
    serve). Returns the runs and when the app was killed."""
    runs = [Run(plan, log=tmp_path / f"storm-{plan.index:03d}.log") for plan in plans]
    died_at = None
    with ThreadPoolExecutor(len(plans)) as pool:
        futures = [pool.submit(drive, run, spawn_sidecar) for run in runs]
        if victim is not None:
            for run in runs:
                run.sent.wait(ANSWER_TIMEOUT)
                if run.plan.mode == "outlive":
                    run.heard.wait(ANSWER_TIMEOUT)
            time.sleep(victim_delay)
            died_at = time.monotonic()  # before the kill: the app is alive until then at least
            victim.kill()
        for future in futures:
            future.result()
    return runs, died_at


# --- what the answers prove ----------------------------------------------------------------


@dataclass
class Hold:
    """A lease the answers prove: `key` held `port` at every moment from `start` to `end`."""

    key: Key
    port: int
    start: float  # the answer was read then: the claim had run
    sidecar: int
    end: float = math.inf  # the earliest a request or event that may end it was sent


class Model:
    """Each key's lease as the answers tell it, replayed in each key's own order (only one
    sidecar at a time serves an (app, app id), and a sidecar answers in order). Answers that
    never came (the kill) leave a key UNKNOWN; requests it was sent still may end a hold."""

    def __init__(self) -> None:
        self.state: dict[Key, int | None] = {}  # live apps' keys: port, None (released), UNKNOWN
        self.open: dict[Key, Hold] = {}
        self.holds: list[Hold] = []
        self.died: dict[Owner, float] = {}
        self.mismatches: list[str] = []
        self.errors: list[str] = []
        self.figures: Counter[str] = Counter()

    def _end(self, key: Key, at: float) -> None:
        hold = self.open.pop(key, None)
        if hold is not None:
            hold.end = min(hold.end, at)

    def apply(self, run: Run, died_at: float | None) -> None:
        plan = run.plan
        pid, started = plan.owner
        for service in run.moved:  # moved at some moment of its life: nothing certain since
            self._end((pid, started, plan.app_id, service), run.spawned_at)
            self.figures["services moved by a monitor"] += 1
        for request_id, (method, params) in enumerate(plan.ops):
            service = params["service_name"]
            key = (pid, started, plan.app_id, service)
            if method == "release_port":
                self._end(key, run.sent_at)
            answer = run.answers.get(request_id)
            if (
                service in run.moved
                or answer is None
                or (died_at is not None and answer[0] > died_at)
            ):
                self.state[key] = UNKNOWN
                continue
            at, message = answer
            if "error" in message:
                self.errors.append(
                    f"sidecar {plan.index} #{request_id} {method} {service}: {message}"
                )
                self.state[key] = UNKNOWN
                continue
            if method == "release_port":
                self.figures["releases answered"] += 1
                self.state[key] = None
                continue
            port = message["result"]
            self.figures["claims answered"] += 1
            self.figures["claims answered outside the range"] += not RANGE[0] <= port <= RANGE[1]
            held = self.open.get(key)
            if held is not None:
                # Nothing since that claim could have ended its lease: the same port again.
                self.figures["answers checked against a lease held"] += 1
                if held.sidecar != plan.index:
                    self.figures["same port back from a respawned sidecar"] += 1
                if port != held.port:
                    self.mismatches.append(
                        f"{key} held port {held.port} (sidecar {held.sidecar}), yet sidecar "
                        f"{plan.index} answered {port} to request {request_id}"
                    )
            if held is None or held.port != port:
                self._end(key, at)
                self.open[key] = Hold(key, port, at, plan.index)
                self.holds.append(self.open[key])
            self.state[key] = port

    def app_died(self, owner: Owner, at: float) -> None:
        """Its leases are anybody's from `at` on."""
        self.died[owner] = at
        for key in [k for k in self.state if k[:2] == owner]:
            self._end(key, at)
            del self.state[key]

    def hold(self, key: Key, port: int, at: float, sidecar: int) -> None:
        self.holds.append(Hold(key, port, at, sidecar))

    def overlaps(self) -> list[str]:
        """Two keys proven to hold one port at the same moment."""
        by_port: dict[int, list[Hold]] = defaultdict(list)
        for hold in self.holds:
            if hold.start < hold.end:
                by_port[hold.port].append(hold)
        self.figures["leases proven held for a while"] = sum(map(len, by_port.values()))
        found = []
        for port, holds in by_port.items():
            holds.sort(key=lambda h: h.start)
            for i, first in enumerate(holds):
                for later in holds[i + 1 :]:
                    if later.start >= first.end:
                        break
                    if later.key != first.key:
                        found.append(f"port {port}: {first} and {later}")
        return found


# --- the registry file -----------------------------------------------------------------------


def owner_of(app: FakeApp) -> Owner:
    return app.pid, psutil.Process(app.pid).create_time()


def same_owner(pid: int, started: float, owner: Owner) -> bool:
    return pid == owner[0] and abs(started - owner[1]) < 0.01


def leases_by_owner(
    path: Path, owners: list[Owner]
) -> tuple[dict[Key, int], list[tuple[int, Owner, str, str]]]:
    """Every lease in the file, keyed by `owners` (the apps this test started): a lease of
    anybody else fails the test."""
    found, rows = {}, []
    for port, pid, started, app_id, service in query(
        path, "SELECT port, owner_pid, owner_started, app_id, service FROM leases ORDER BY port"
    ):
        owner = next((o for o in owners if same_owner(pid, started, o)), None)
        assert owner is not None, f"lease on {port} for an owner never started: {pid}"
        found[(*owner, app_id, service)] = port
        rows.append((port, owner, app_id, service))
    return found, rows


def report(figures: dict[str, Any]) -> None:
    print("\nkill -9 storm:", json.dumps(figures, indent=2))
    if target := os.environ.get("PORTD_STORM_REPORT"):
        Path(target).write_text(json.dumps(figures, indent=2) + "\n")


# --- the storm -------------------------------------------------------------------------------


def test_a_storm_of_kill_9s_over_one_registry_loses_no_lease_and_hands_out_no_port_twice(
    spawn_sidecar: Callable[..., Sidecar],
    start_app: Callable[[], FakeApp],
    registry_path: Path,
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    seed = int(os.environ.get("PORTD_STORM_SEED") or random.randrange(1 << 32))
    note = f"seed {seed} (PORTD_STORM_SEED={seed} replays the plan)"
    rng = random.Random(seed)
    model = Model()
    apps: list[FakeApp] = []
    owners: dict[FakeApp, Owner] = {}
    app_ids: dict[FakeApp, list[str]] = {}  # the shared ones, and one of its own

    def new_app() -> FakeApp:
        app = start_app()
        owners[app] = owner_of(app)
        app_ids[app] = [*APP_IDS, f"solo-{len(owners)}"]
        return app

    apps = [new_app() for _ in range(APPS)]
    modes: Counter[str] = Counter()
    figures: Counter[str] = Counter()
    slowest_exit = 0.0

    def wave(plans: list[Plan], victim: FakeApp | None, victim_delay: float = 0.0) -> None:
        nonlocal slowest_exit
        for plan in plans:
            plan.note = note
        runs, died_at = run_wave(plans, victim, victim_delay, spawn_sidecar, tmp_path)
        figures["sidecars spawned"] += len(runs)
        figures["waves"] += 1
        for run in runs:
            plan = run.plan
            model.apply(run, died_at if plan.app is victim else None)
            # Only a kill ends a sidecar whose app lives. One whose app died may go first:
            # 0 when it saw the app die, 2 when the app was gone before it looked.
            allowed = {-signal.SIGKILL} if plan.app is not victim else {0, 2, -signal.SIGKILL}
            if plan.mode == "outlive":
                allowed = {0}  # it had answered before its app died
            assert run.exit_code in allowed, (
                f"{note}: sidecar {plan.index} ({plan.mode}) exited {run.exit_code}; "
                f"its log {run.log}"
            )
            figures["SIGKILLs that killed"] += run.exit_code == -signal.SIGKILL
            modes[plan.mode] += run.exit_code == -signal.SIGKILL
            figures["sidecars that found their app gone"] += run.exit_code == 2
            if run.exit_code == 0:
                # It saw its app die and left: the leases it took went with it.
                assert died_at is not None
                figures["sidecars that left with their app"] += 1
                slowest_exit = max(slowest_exit, run.closed_at - died_at)
                taken = {
                    (*plan.owner, plan.app_id, params["service_name"])
                    for i, (method, params) in enumerate(plan.ops)
                    if method == "allocate_port" and "result" in run.answers.get(i, (0, {}))[1]
                }
                leases_now = leases_by_owner(registry_path, [*owners.values()])[0]  # it had some
                kept = {key: leases_now[key] for key in taken if key in leases_now}
                assert kept == {}, f"{note}: sidecar {plan.index} left, its leases stayed"
        if victim is not None:
            assert died_at is not None
            model.app_died(owners[victim], died_at)
            figures["apps killed"] += 1
        assert model.errors == [], f"{note}: {model.errors}"
        assert model.mismatches == [], f"{note}: an app lost its port: {model.mismatches}"
        assert_registry_sound(registry_path, f"{note}, after wave {figures['waves']}")

    # 1. The storm: waves of sidecars for random (app, app id)s, killed at random moments;
    # an (app, app id) served in one wave is usually served again in a later one. An app
    # dies in most waves, at a random moment once every burst has gone out. The respawn
    # after it (2.) has a sidecar for each live (app, app id): SIDECARS in all, at least.
    while figures["sidecars spawned"] + APPS * (len(APP_IDS) + 1) < SIDECARS:
        combos = [(app, app_id) for app in apps for app_id in app_ids[app]]
        chosen = rng.sample(combos, rng.randint(*WAVE))
        plans = [
            storm_plan(rng, figures["sidecars spawned"] + i, app, owners[app], app_id)
            for i, (app, app_id) in enumerate(chosen)
        ]
        dies = figures["waves"] % 2 == 1 or rng.random() < APP_DEATH
        victim = rng.choice(apps) if dies else None
        for plan in plans:
            if plan.app is victim and rng.random() < 0.5:
                plan.mode = "outlive"
        wave(plans, victim, rng.uniform(0.0, 1.0))
        if victim is not None:
            apps[apps.index(victim)] = new_app()

    # 2. Respawn: one more sidecar for every live (app, app id), asking for every service;
    # each gets the port its app holds, and then every live key is known.
    finals = [(app, app_id) for app in apps for app_id in app_ids[app]]
    for start in range(0, len(finals), WAVE[1]):
        plans = []
        for app, app_id in finals[start : start + WAVE[1]]:
            ops = [("allocate_port", {"service_name": s}) for s in SERVICES]
            index = figures["sidecars spawned"] + len(plans)
            plans.append(Plan(index, app, owners[app], app_id, ops, "idle"))
        wave(plans, None)
    assert not [k for k, port in model.state.items() if port in (None, UNKNOWN)], note
    assert model.figures["same port back from a respawned sidecar"] > 0, note
    # Claims during the storm reclaim dead apps' leases as they go; one app dies last, after
    # its sidecars were killed, so that its leases are surely left behind for step 4.
    last = apps.pop(rng.randrange(len(apps)))
    died_at = time.monotonic()
    last.kill()
    model.app_died(owners[last], died_at)

    # 3. The file: sound, every live app's leases there as answered, the rest dead apps'.
    everyone = [*owners.values()]
    live_owners = {owners[app] for app in apps}
    assert_registry_sound(registry_path, f"{note}, after the storm")
    found, rows = leases_by_owner(registry_path, everyone)
    expected = dict(model.state)
    assert {k: p for k, p in found.items() if k[:2] in live_owners} == expected, note
    stale = [
        (port, app_id, service) for port, owner, app_id, service in rows if owner in model.died
    ]
    assert len(stale) == len(rows) - len(expected), note
    assert stale, f"{note}: no dead app left a lease behind, nothing to reclaim"

    # 4. Dead apps' leases: a new app's claim for the port takes it, whether the port is
    # its service's port of last time (sticky: the app restarted under the dead one's own
    # app id) or asked for by number. A port someone else on this machine listens on now
    # is not free, so not reclaimable: skipped.
    sticky = {
        (a, s): p
        for a, s, p in query(registry_path, "SELECT app_id, service, port FROM last_ports")
    }
    asks: dict[str, list[tuple[dict[str, Any], int]]] = defaultdict(list)
    busy = []
    for port, app_id, service in stale:
        if not binds(port):
            busy.append(port)
        elif sticky.get((app_id, service)) == port:
            asks[app_id].append(({"service_name": service}, port))
            figures["stale leases reclaimed as a sticky port"] += 1
        else:
            params = {"service_name": f"reclaim-{port}", "preferred_port": port}
            asks[rng.choice(APP_IDS)].append((params, port))
    newcomer = new_app()

    def reclaim(app_id: str) -> list[tuple[Key, int, int, float]]:
        sidecar = spawn_sidecar(
            parent_pid=newcomer.pid, app_id=app_id, stderr_path=tmp_path / f"reclaim-{app_id}.log"
        )
        got = []
        for params, want in asks[app_id]:
            response = sidecar.request("allocate_port", params, timeout=ANSWER_TIMEOUT)
            assert "result" in response, f"{note}: {params} answered {response}"
            answer = response["result"]
            got.append(
                (
                    (*owners[newcomer], app_id, params["service_name"]),
                    want,
                    answer,
                    time.monotonic(),
                )
            )
        return got

    with ThreadPoolExecutor(max(1, len(asks))) as pool:
        reclaimed = [got for gots in pool.map(reclaim, list(asks)) for got in gots]
    figures["sidecars spawned"] += len(asks)
    assert [(k, want, got) for k, want, got, _ in reclaimed if got != want] == [], note
    for index, (key, _, port, at) in enumerate(reclaimed):
        model.hold(key, port, at, -1 - index)
    found_after, rows_after = leases_by_owner(registry_path, [*owners.values()])
    assert_registry_sound(registry_path, f"{note}, after the reclaims")
    assert {k: p for k, p in found_after.items() if k[:2] in live_owners} == expected, note
    assert sorted(p for p, owner, _, _ in rows_after if owner in model.died) == sorted(busy), note
    assert {k: p for k, p in found_after.items() if k[:2] == owners[newcomer]} == {
        key: port for key, _, port, _ in reclaimed
    }, note

    # 5. Never one port for two keys at once, as far as the answers can prove it.
    assert model.overlaps() == [], note

    figures.update(model.figures)
    figures.update({f"killed {mode}": n for mode, n in modes.items() if n})
    for mode in ("early", "mid", "idle"):
        assert modes[mode] > 0, f"{note}: no sidecar was killed {mode}"
    report(
        {
            "seed": seed,
            **figures,
            "stale leases after the storm": len(stale),
            "stale leases in the range": sum(RANGE[0] <= p <= RANGE[1] for p, _, _ in stale),
            "stale leases reclaimed": len(reclaimed),
            "stale leases on busy ports": len(busy),
            "live leases kept": len(expected),
            "slowest exit after the app died (s)": round(slowest_exit, 2),
            "wall seconds": round(time.monotonic() - began, 1),
        }
    )
