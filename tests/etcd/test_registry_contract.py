"""The registry contract: what the engine relies on of a registry, held against both back
ends, the SQLite file and etcd, by one parametrised suite. (What only etcd has, hosts, its
leases' TTL and optimistic conflicts, is in test_registry_etcd.py.)

Owners are made-up identities: a registry stores who owns a lease and never looks at
processes itself."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.etcd.conftest import OpenRegistry, key, owner, skip_reason

if (reason := skip_reason()) is not None:
    pytest.skip(reason, allow_module_level=True)

from portd.registry import LeaseKey, Registry
from portd.registry_backend import RegistryBackend, RegistryTransaction

pytestmark = pytest.mark.timeout(120)

OpenBackend = Callable[[], RegistryBackend]


@pytest.fixture(params=["sqlite", "etcd"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_backend(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OpenBackend]:
    """`open_backend()`: one more handle on the test's own registry (a connection to one
    SQLite file, or a registry of host alpha on one etcd prefix), as another sidecar of the
    same host would open it. All are closed when the test ends."""
    opened: list[RegistryBackend] = []
    if backend == "etcd":
        open_registry: OpenRegistry = request.getfixturevalue("open_registry")

        def open_one() -> RegistryBackend:
            return open_registry("alpha")
    else:

        def open_one() -> RegistryBackend:
            opened.append(Registry.open(tmp_path / "registry.sqlite3"))
            return opened[-1]

    yield open_one
    for registry in opened:
        with contextlib.suppress(Exception):
            registry.close()


def test_a_claim_is_found_renewed_and_released(open_backend: OpenBackend) -> None:
    registry = open_backend()
    web = key("vite/dev server ü")  # names with slashes and more are quoted into keys
    lease = registry.claim(web, 30001)
    assert lease is not None
    assert (lease.port, lease.key, lease.holders) == (30001, web, ())
    assert registry.is_local(lease)
    assert registry.find(web) == lease
    assert registry.lease_on(30001) == lease
    assert registry.leases() == [lease]
    assert registry.leases(web.owner, "app") == [lease]
    assert registry.leases(web.owner, "other-app") == []

    renewed = registry.renew(web)
    assert renewed is not None
    assert renewed.port == 30001
    assert renewed.renewed_at >= lease.created_at == renewed.created_at
    assert registry.find(web) == renewed == registry.lease_on(30001)

    assert registry.release(web) is True
    assert registry.find(web) is None
    assert registry.lease_on(30001) is None
    assert registry.release(web) is False
    assert registry.renew(web) is None
    assert registry.integrity_check() == "ok"
    assert registry.recheck() is None


def test_a_port_has_one_lease_and_a_key_one_port(open_backend: OpenBackend) -> None:
    registry = open_backend()
    assert registry.claim(key("web"), 30010) is not None
    assert registry.claim(key("api"), 30010) is None  # the port is leased
    with pytest.raises(sqlite3.IntegrityError):
        registry.claim(key("web"), 30011)  # the key has its lease
    assert registry.lease_on(30011) is None
    assert [lease.port for lease in registry.leases()] == [30010]


def test_claim_first_unleased_takes_the_lowest_port_neither_leased_nor_skipped(
    open_backend: OpenBackend,
) -> None:
    registry = open_backend()
    for n, port in enumerate((31000, 31001, 31003)):
        assert registry.claim(key(f"taken-{n}"), port) is not None
    lease = registry.claim_first_unleased(key("web"), 31000, 31010, [31002, 31004])
    assert lease is not None and lease.port == 31005
    assert registry.claim_first_unleased(key("api"), 31006, 31006, []) is not None
    assert registry.claim_first_unleased(key("db"), 31006, 31006, []) is None  # full
    assert registry.claim_first_unleased(key("db"), 31000, 31004, [31002, 31004]) is None


def test_claim_first_unleased_reads_past_a_page_of_leases(open_backend: OpenBackend) -> None:
    registry = open_backend()
    for n in range(300):  # more than one page (128) of leased ports in a row
        assert registry.claim_first_unleased(key(f"s{n}"), 32000, 32999, []) is not None
    lease = registry.claim_first_unleased(key("last"), 32000, 32999, [32300])
    assert lease is not None and lease.port == 32301
    with pytest.raises(sqlite3.IntegrityError):  # a free port, but the key has its lease
        registry.claim_first_unleased(key("last"), 32000, 32999, [])
    assert registry.claim_first_unleased(key("none"), 32000, 32299, []) is None


def test_a_transaction_s_insert_refuses_a_leased_port_or_key_at_once(
    open_backend: OpenBackend,
) -> None:
    registry = open_backend()
    assert registry.claim(key("web"), 36350) is not None
    with registry.transaction() as tx:
        with pytest.raises(sqlite3.IntegrityError):
            tx.insert(36350, key("api"))  # the port
        with pytest.raises(sqlite3.IntegrityError):
            tx.insert(36351, key("web"))  # the key
    assert [lease.port for lease in registry.leases()] == [36350]


def test_a_service_s_last_port_outlives_its_lease(open_backend: OpenBackend) -> None:
    registry = open_backend()
    assert registry.claim(key("web"), 37000) is not None
    assert registry.release(key("web"))
    with registry.reading() as tx:
        assert tx.last_port("app", "web") == 37000
        assert tx.last_port("app", "api") is None
    assert registry.claim_first_unleased(key("web"), 37005, 37010, []) is not None
    with registry.transaction() as tx:
        assert tx.last_port("app", "web") == 37005
        tx.insert(37020, key("web", pid=5))
        assert tx.last_port("app", "web") == 37020
    with registry.reading() as tx:
        assert tx.last_port("app", "web") == 37020


def test_holders_are_kept_on_the_lease(open_backend: OpenBackend) -> None:
    registry = open_backend()
    assert registry.claim(key("web"), 37100) is not None
    holders = (owner(101), owner(102))
    with registry.transaction() as tx:
        tx.set_holders(37100, holders)
        tx.set_holders(37199, holders)  # no lease there: nothing to do, as in SQLite
    assert registry.find(key("web")).holders == holders  # type: ignore[union-attr]
    assert registry.lease_on(37100).holders == holders  # type: ignore[union-attr]
    assert registry.renew(key("web")).holders == holders  # type: ignore[union-attr]
    assert registry.lease_on(37199) is None
    assert registry.integrity_check() == "ok"


def test_version_changes_when_anyone_writes(open_backend: OpenBackend) -> None:
    registry, other = open_backend(), open_backend()
    before = registry.version()
    assert registry.version() == before
    assert other.claim(key("web"), 38300) is not None
    assert registry.version() != before


def test_a_transaction_s_writes_land_together_when_it_ends(open_backend: OpenBackend) -> None:
    registry = open_backend()
    dead, heir = key("web", pid=1), key("web", pid=2)
    assert registry.claim(dead, 36000) is not None
    with registry.transaction() as tx:  # a dead owner's port, reclaimed in one commit
        assert tx.lease_on(36000) is not None
        tx.delete(36000)
        assert tx.lease_on(36000) is None  # a transaction sees its own writes
        inserted = tx.insert(36000, heir)
        assert tx.find(heir) == inserted
    assert registry.find(heir) == inserted
    assert registry.find(dead) is None
    assert registry.integrity_check() == "ok"


def test_a_transaction_that_raises_writes_nothing(open_backend: OpenBackend) -> None:
    registry = open_backend()
    assert registry.claim(key("db"), 36401) is not None
    with pytest.raises(ZeroDivisionError), registry.transaction() as tx:
        tx.insert(36400, key("web"))
        tx.delete(36401)
        _ = 1 / 0
    assert registry.lease_on(36400) is None
    assert registry.lease_on(36401) is not None


def test_run_transaction_commits_the_body_and_returns_what_it_returns(
    open_backend: OpenBackend,
) -> None:
    registry = open_backend()
    assert registry.claim(key("db"), 36500) is not None

    def take_first_free(tx: RegistryTransaction) -> int:
        port = tx.next_unleased(36500, 36510)
        assert port is not None
        tx.insert(port, key("web"))
        return port

    assert registry.run_transaction(take_first_free) == 36501
    assert open_backend().find(key("web")) == registry.lease_on(36501)


def test_leases_are_listed_by_port_and_filtered_by_owner_and_app(
    open_backend: OpenBackend,
) -> None:
    registry = open_backend()
    for port, lease_key in [
        (36703, key("a")),
        (36701, key("b", pid=7)),
        (36702, key("c", app="x")),
    ]:
        assert registry.claim(lease_key, port) is not None
    assert [lease.port for lease in registry.leases()] == [36701, 36702, 36703]
    assert [lease.port for lease in registry.leases(owner(4242), "app")] == [36703]
    with registry.reading() as tx:
        assert [lease.port for lease in tx.leases_in(36702, 36710)] == [36702, 36703]
        assert tx.next_unleased(36701, 36710) == 36704
        assert tx.next_unleased(36701, 36703) is None


# --- generated: any sequence of calls keeps the registry as a plain model says -------------

PORTS = range(39900, 39908)
SERVICES = ("web", "api", "db")
OWNERS = (1, 2)
Step = tuple[str, int, str, int]  # (call, owner pid, service, port)
steps = st.lists(
    st.tuples(
        st.sampled_from(["claim", "claim_first", "renew", "release", "move"]),
        st.sampled_from(OWNERS),
        st.sampled_from(SERVICES),
        st.sampled_from(PORTS),
    ),
    max_size=25,
)


def apply(registry: RegistryBackend, model: dict[int, LeaseKey], step: Step) -> None:
    """One call on the registry and its effect on the model (port -> key), checked against
    each other: both say the same, whatever came before."""
    call, pid, service, port = step
    k = key(service, pid)
    held = next((p for p, lk in model.items() if lk == k), None)
    if call == "claim":
        if port in model:
            assert registry.claim(k, port) is None
        elif held is not None:
            with pytest.raises(sqlite3.IntegrityError):
                registry.claim(k, port)
        else:
            assert registry.claim(k, port) is not None
            model[port] = k
    elif call == "claim_first":
        free = [p for p in PORTS if p >= port and p not in model]
        if free and held is not None:
            with pytest.raises(sqlite3.IntegrityError):
                registry.claim_first_unleased(k, port, PORTS[-1], [])
        else:
            lease = registry.claim_first_unleased(k, port, PORTS[-1], [])
            assert (lease.port if lease else None) == (free[0] if free else None)
            if lease is not None:
                model[lease.port] = k
    elif call == "renew":
        renewed = registry.renew(k)
        assert (renewed.port if renewed else None) == held
    elif call == "release":
        assert registry.release(k) is (held is not None)
        model.pop(held, None)  # type: ignore[arg-type]
    else:  # move the key's lease to `port` in one transaction, if it has one and port is free

        def move(tx: RegistryTransaction) -> bool:
            lease = tx.find(k)
            if lease is None or tx.lease_on(port) is not None:
                return False
            tx.delete(lease.port)
            tx.insert(port, k)
            return True

        moved = registry.run_transaction(move)
        assert moved is (held is not None and port not in model)
        if moved:
            del model[held]  # type: ignore[arg-type]
            model[port] = k


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(calls=steps)
def test_any_sequence_of_calls_leaves_one_lease_per_port_and_per_key_as_a_model_says(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, calls: list[Step]
) -> None:
    if backend == "etcd":  # each example on a fresh prefix
        open_registry: OpenRegistry = request.getfixturevalue("open_registry")
        registry: RegistryBackend = open_registry("alpha", prefix=f"/portd-gen-{uuid.uuid4().hex}")
    else:
        registry = Registry.open(tmp_path / f"{uuid.uuid4().hex}.sqlite3")
    model: dict[int, LeaseKey] = {}
    try:
        for step in calls:
            apply(registry, model, step)
            leases = registry.leases()
            assert {lease.port: lease.key for lease in leases} == model
            assert len({lease.key for lease in leases}) == len(leases)
        assert registry.integrity_check() == "ok"
    finally:
        if backend == "sqlite":
            registry.close()
