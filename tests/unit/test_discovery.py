"""Service discovery (portd.discovery): where another app's service is, and what a watcher
of it is told, read from a real in-memory SQLite registry or a stand-in with other hosts.

Owners are made-up identities: this test process with its own start time is alive; with
another start time it is a pid reused by someone else, which is gone for the registry."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portd import discovery
from portd.discovery import LOOPBACK, ServiceWatch, locate, resolve
from portd.process import ProcessIdentity, identify
from portd.protocol.errors import UnknownService
from portd.protocol.models import PortEvent, ServiceLocation
from portd.registry import Lease, LeaseKey, Registry

ME = identify(os.getpid())
assert ME is not None
GONE = ProcessIdentity(os.getpid(), ME.started - 1000.0)  # this pid, long ago: not alive
HERE = "alpha"  # the stand-in registry's host id


@dataclass(frozen=True, slots=True)
class HostLease(Lease):
    """A lease that names its host, as the etcd back end's do."""

    host: str = HERE


@dataclass
class StandIn:
    """A registry of several hosts: what discovery reads of one, counted."""

    held: list[Lease] = field(default_factory=list)
    host_id: str = HERE
    revision: int = 0
    reads: int = 0
    version_reads: int = 0

    def leases(self) -> list[Lease]:
        self.reads += 1
        return list(self.held)

    def version(self) -> tuple[int, int]:
        self.version_reads += 1
        return self.revision, 0

    def is_local(self, lease: Lease) -> bool:
        return getattr(lease, "host", self.host_id) == self.host_id

    def set(self, *leases: Lease) -> None:
        self.held = list(leases)
        self.revision += 1


def lease(
    port: int,
    service: str = "api",
    app: str = "chat",
    owner: ProcessIdentity = ME,
    holders: tuple[ProcessIdentity, ...] = (),
    created: int = 1_000,
    host: str = HERE,
) -> HostLease:
    return HostLease(port, LeaseKey(owner, app, service), holders, created, created, host)


@pytest.fixture
def registry() -> Iterator[Registry]:
    reg = Registry.in_memory()
    yield reg
    reg.close()


def insert(registry: Registry, port: int, service: str, app: str = "chat", **kw: Any) -> None:
    owner = kw.get("owner", ME)
    with registry.transaction() as tx:
        tx.insert(port, LeaseKey(owner, app, service), kw.get("holders", ()))


# --- resolving --------------------------------------------------------------------------------


def test_a_live_lease_of_this_machine_resolves_to_loopback_with_its_owner(
    registry: Registry,
) -> None:
    insert(registry, 41001, "api")

    [where] = resolve(registry, "chat", "api")

    assert (where.app_id, where.service, where.port) == ("chat", "api", 41001)
    assert (where.host, where.address, where.local) == (socket.gethostname(), LOOPBACK, True)
    assert (where.state, where.pid, where.holder_pids) == ("live", ME.pid, [])


def test_only_the_named_apps_named_service_is_answered(registry: Registry) -> None:
    insert(registry, 41001, "api")
    insert(registry, 41002, "api", app="mail")
    insert(registry, 41003, "web")

    assert [w.port for w in resolve(registry, "chat", "api")] == [41001]
    assert [w.port for w in resolve(registry, "mail", "api")] == [41002]


def test_an_unknown_service_is_unknown_service_naming_what_the_app_has(
    registry: Registry,
) -> None:
    insert(registry, 41001, "web")
    insert(registry, 41002, "db")

    with pytest.raises(UnknownService) as raised:
        resolve(registry, "chat", "api")

    assert raised.value.code == -32002
    assert raised.value.message == "no lease for 'chat/api'; app 'chat' has 'db', 'web'"


def test_an_app_without_any_lease_is_unknown_service_saying_so(registry: Registry) -> None:
    with pytest.raises(UnknownService, match="app 'chat' holds no lease"):
        resolve(registry, "chat", "api")


def test_a_lease_whose_owner_and_servers_are_gone_is_left_out_and_the_error_says_why(
    registry: Registry,
) -> None:
    insert(registry, 41001, "api", owner=GONE, holders=(GONE,))

    assert locate(registry, "chat", "api") == []
    with pytest.raises(UnknownService, match=f"port 41001 is of pid {GONE.pid}, which is gone"):
        resolve(registry, "chat", "api")


def test_an_orphan_still_answers_but_after_every_live_lease() -> None:
    orphan = lease(41001, owner=GONE, holders=(ME,), created=9_000)  # newest, yet last
    live = lease(41002, created=1_000)

    found = locate(StandIn([orphan, live]), "chat", "api")

    assert [(w.port, w.state) for w in found] == [(41002, "live"), (41001, "orphan")]
    assert found[1].holder_pids == [ME.pid]


def test_another_hosts_lease_counts_as_alive_and_is_reached_at_that_host() -> None:
    # Its pid names nothing here, dead or alive: only its own host can tell.
    theirs = lease(41001, owner=GONE, host="beta")

    [where] = locate(StandIn([theirs]), "chat", "api")

    assert (where.host, where.address, where.state) == ("beta", "beta", "remote")
    assert not where.local


def test_a_local_lease_of_a_registry_with_a_host_id_is_named_by_it() -> None:
    [where] = locate(StandIn([lease(41001)], host_id="alpha"), "chat", "api")
    assert (where.host, where.address) == ("alpha", LOOPBACK)


Liveness = st.sampled_from(["live", "orphan", "stale"])
Spec = st.tuples(
    st.sampled_from(["chat", "mail"]),
    st.sampled_from(["api", "web"]),
    st.integers(0, 5),  # created: small, so that ties happen
    Liveness,
    st.sampled_from([HERE, "beta"]),
)


def made(index: int, spec: tuple[str, str, int, str, str]) -> HostLease:
    app, service, created, liveness, host = spec
    owner, holders = {"live": (ME, ()), "orphan": (GONE, (ME,)), "stale": (GONE, ())}[liveness]
    return lease(41000 + index, service, app, owner, holders, created, host)


@given(st.lists(Spec, max_size=12))
@settings(max_examples=200, deadline=None)
def test_the_answer_is_every_lease_that_can_answer_best_first(
    specs: list[tuple[str, str, int, str, str]],
) -> None:
    leases = [made(i, spec) for i, spec in enumerate(specs)]
    rank = {"live": 0, "remote": 1, "orphan": 2}

    found = locate(StandIn(leases), "chat", "api")

    expected = {
        x.port
        for x, (app, service, _, liveness, host) in zip(leases, specs, strict=True)
        if (app, service) == ("chat", "api") and (host != HERE or liveness != "stale")
    }
    assert {w.port for w in found} == expected
    order = [(rank[w.state], -w.allocated_at, w.port) for w in found]
    assert order == sorted(order), "live here, then other hosts', then orphans; newest first"
    assert all((w.address == LOOPBACK) == w.local == (w.host == HERE) for w in found)


@given(app=st.text(min_size=1, max_size=20), service=st.text(min_size=1, max_size=20))
@settings(max_examples=100, deadline=None)
def test_a_not_found_message_is_one_line_whatever_the_names_hold(app: str, service: str) -> None:
    registry = StandIn([lease(41001, service + "x", app), lease(41002, service, app, GONE)])
    for asked_app, asked in ((app, service), (app, service + "y"), (app + "z", service)):
        with pytest.raises(UnknownService) as raised:
            resolve(registry, asked_app, asked)
        assert "\n" not in raised.value.message and "\r" not in raised.value.message


# --- watching ---------------------------------------------------------------------------------


class Watcher:
    def __init__(self, registry: StandIn) -> None:
        self.registry = registry
        self.events: list[PortEvent] = []
        self.watch = ServiceWatch(registry, self.events.append)

    def kinds(self) -> list[str]:
        return [e.type for e in self.events]


def test_watch_answers_where_the_service_is_now_and_stays_quiet_while_it_stays() -> None:
    registry = StandIn([lease(41001)])
    watcher = Watcher(registry)

    [where] = watcher.watch.watch("chat", "api")
    for _ in range(3):
        watcher.watch.poll()

    assert where.port == 41001
    assert watcher.events == []


def test_a_service_that_comes_up_moves_and_goes_down_is_told_once_each() -> None:
    registry = StandIn()
    watcher = Watcher(registry)
    assert watcher.watch.watch("chat", "api") == []  # not up yet: nothing, not an error

    registry.set(lease(41001))
    watcher.watch.poll()
    watcher.watch.poll()
    registry.set(lease(41002, created=2_000))
    watcher.watch.poll()
    registry.set()
    watcher.watch.poll()
    watcher.watch.poll()

    up, moved, down = watcher.events
    assert (up.type, up.app_id, up.service, up.port, up.address) == (
        "ServiceUp", "chat", "api", 41001, LOOPBACK
    )  # fmt: skip
    assert (moved.type, moved.old_port, moved.new_port, moved.port) == (
        "ServiceMoved", 41001, 41002, 41002
    )  # fmt: skip
    assert (down.type, down.port, down.host) == ("ServiceDown", 41002, HERE)
    assert down.model_dump(exclude_none=True).keys() == {
        "type", "port", "service", "app_id", "host", "address", "timestamp"
    }  # fmt: skip


def test_a_move_to_another_host_is_told_with_its_address() -> None:
    registry = StandIn([lease(41001)])
    watcher = Watcher(registry)
    watcher.watch.watch("chat", "api")

    registry.set(lease(41001, host="beta"))
    watcher.watch.poll()

    [moved] = watcher.events
    assert (moved.type, moved.host, moved.address, moved.port) == (
        "ServiceMoved", "beta", "beta", 41001
    )  # fmt: skip


def test_an_owner_that_dies_without_a_word_is_told_as_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead: set[ProcessIdentity] = set()
    monkeypatch.setattr(discovery, "is_alive", lambda ident: ident not in dead)
    registry = StandIn([lease(41001)])
    watcher = Watcher(registry)
    watcher.watch.watch("chat", "api")

    dead.add(ME)  # the registry does not change: no version to notice
    watcher.watch.poll()

    assert watcher.kinds() == ["ServiceDown"]


def test_nothing_watched_costs_no_registry_read() -> None:
    registry = StandIn([lease(41001)])
    watcher = Watcher(registry)
    for _ in range(3):
        watcher.watch.poll()
    watcher.watch.watch("chat", "api")
    watcher.watch.unwatch("chat", "api")
    reads = registry.reads
    watcher.watch.poll()

    assert (registry.reads, registry.version_reads) == (reads, 0)


def test_the_registry_is_read_again_only_when_its_version_changes() -> None:
    registry = StandIn([lease(41001)])
    watcher = Watcher(registry)
    watcher.watch.watch("chat", "api")
    watcher.watch.poll()  # the first poll reads what the watch added
    reads = registry.reads

    for _ in range(3):
        watcher.watch.poll()
    assert registry.reads == reads
    watcher.watch.poll(version=("given", "by the monitor"))
    assert registry.reads == reads + 1
    assert registry.version_reads == 4  # the given version was not read again


def test_unwatching_stops_the_events_and_twice_is_fine() -> None:
    registry = StandIn([lease(41001)])
    watcher = Watcher(registry)
    watcher.watch.watch("chat", "api")
    watcher.watch.watch("chat", "web")

    watcher.watch.unwatch("chat", "api")
    watcher.watch.unwatch("chat", "api")
    registry.set(lease(41002, "web"))
    watcher.watch.poll()

    assert [(e.type, e.service) for e in watcher.events] == [("ServiceUp", "web")]


# A registry's history, one state a step: which of a few ports and hosts hold the service.
States = st.lists(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), Liveness, st.sampled_from([HERE, "b"])),
        max_size=3,
        unique_by=lambda t: t[0],
    ),
    min_size=1,
    max_size=10,
)


def told_place(place: tuple[str, int] | None, event: PortEvent) -> tuple[str, int] | None:
    """What a watcher that knew `place` knows after `event`; checks the event fits."""
    assert event.host is not None and event.port is not None
    if event.type == "ServiceUp":
        assert place is None
        return event.host, event.port
    if event.type == "ServiceMoved":
        assert place is not None and event.old_port == place[1] and event.new_port == event.port
        return event.host, event.port
    assert event.type == "ServiceDown" and place == (event.host, event.port)
    return None


def place_of(found: list[ServiceLocation]) -> tuple[str, int] | None:
    return (found[0].host, found[0].port) if found else None


@given(States)
@settings(max_examples=150, deadline=None)
def test_the_events_told_replay_to_where_the_service_is_and_only_changes_are_told(
    history: list[list[tuple[int, int, str, str]]],
) -> None:
    registry = StandIn()
    watcher = Watcher(registry)
    place = place_of(watcher.watch.watch("chat", "api"))
    for state in history:
        registry.set(
            *(made(port, ("chat", "api", created, liveness, host))
              for port, created, liveness, host in state)
        )  # fmt: skip
        before = len(watcher.events)
        watcher.watch.poll()
        new = watcher.events[before:]
        now = place_of(locate(registry, "chat", "api"))
        assert len(new) == (now != place), "one event for a change, none without"
        for event in new:
            place = told_place(place, event)
        assert place == now
