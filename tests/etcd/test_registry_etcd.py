"""The etcd registry, against a real etcd: the SQLite registry's promises, across hosts.

Owners here are made-up identities: the registry stores who owns a lease, and never looks
at processes itself (that is the manager's part, and only for its own host's leases)."""

from __future__ import annotations

import inspect
import re
import socket
import sqlite3
import threading
import time
from collections import Counter
from typing import Any

import pytest

from tests.etcd.conftest import EtcdServer, OpenRegistry, key, owner, skip_reason
from tests.support.sidecar import wait_until

if (reason := skip_reason()) is not None:
    pytest.skip(reason, allow_module_level=True)

from portd.protocol.errors import RegistryUnavailable
from portd.registry import LeaseKey, Registry, Transaction
from portd.registry_etcd import (
    DuplicateLease,
    EtcdRegistry,
    EtcdTransaction,
    ForeignLease,
    TransactionConflict,
)

pytestmark = pytest.mark.timeout(60)


# --- the interface ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sqlite", "etcd"), [(Registry, EtcdRegistry), (Transaction, EtcdTransaction)]
)
def test_it_offers_the_sqlite_registrys_methods_with_the_same_parameters(
    sqlite: type, etcd: type
) -> None:
    names = {
        Registry: [
            "transaction", "reading", "version", "leases", "lease_on", "find", "renew",
            "claim", "claim_first_unleased", "release", "recheck", "integrity_check", "close",
        ],
        Transaction: [
            "find", "lease_on", "next_unleased", "leases_in", "insert", "set_holders",
            "delete", "last_port",
        ],
    }[sqlite]  # fmt: skip
    for name in names:
        theirs = list(inspect.signature(getattr(sqlite, name)).parameters)
        ours = list(inspect.signature(getattr(etcd, name)).parameters)
        assert ours == theirs, name


def test_a_duplicate_is_the_integrity_error_the_manager_already_catches() -> None:
    assert issubclass(DuplicateLease, sqlite3.IntegrityError)
    assert issubclass(TransactionConflict, RegistryUnavailable)


# --- claims, renewals, releases ------------------------------------------------------------


def test_two_hosts_racing_for_the_same_ports_never_both_win(open_registry: OpenRegistry) -> None:
    hosts = [open_registry("alpha"), open_registry("beta")]
    threads, claims_each, low, high = 8, 200, 33000, 34999
    won: list[list[tuple[int, str]]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    go = threading.Barrier(threads)

    def claim_many(n: int) -> None:
        """As a sidecar does: from the port after its last claim, wrapping around."""
        registry, resume = hosts[n % 2], low
        try:
            go.wait()
            for i in range(claims_each):
                lease_key = key(f"t{n}-{i}", pid=n)
                lease = registry.claim_first_unleased(lease_key, resume, high, [])
                lease = lease or registry.claim_first_unleased(lease_key, low, resume - 1, [])
                assert lease is not None
                won[n].append((lease.port, lease.host))
                resume = lease.port + 1
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=claim_many, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(50)
    assert not errors, errors[:3]
    ports = Counter(port for claims in won for port, _ in claims)
    assert sum(ports.values()) == threads * claims_each
    assert [port for port, times in ports.items() if times > 1] == []
    stored = {lease.port: lease.host for lease in hosts[0].leases()}
    assert stored == {port: host for claims in won for port, host in claims}
    assert hosts[1].integrity_check() == "ok"


def test_a_port_claimed_by_many_at_once_goes_to_exactly_one(open_registry: OpenRegistry) -> None:
    hosts = [open_registry("alpha"), open_registry("beta")]
    threads, rounds = 8, 40
    winners: list[list[int]] = [[] for _ in range(rounds)]
    go = threading.Barrier(threads)

    def race(n: int) -> None:
        for r in range(rounds):
            go.wait()
            if hosts[n % 2].claim(key(f"r{r}", pid=n), 35000 + r) is not None:
                winners[r].append(n)

    workers = [threading.Thread(target=race, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(50)
    assert [len(w) for w in winners] == [1] * rounds


# --- transactions --------------------------------------------------------------------------


def test_a_transaction_s_writes_are_unseen_by_others_until_it_ends(
    open_registry: OpenRegistry,
) -> None:
    registry, other = open_registry("alpha"), open_registry("beta")
    with registry.transaction() as tx:
        inserted = tx.insert(36000, key("web"))
        assert other.lease_on(36000) is None
        assert registry.find(key("web")) is None
    assert other.lease_on(36000) == inserted


def test_a_transaction_reads_one_snapshot(open_registry: OpenRegistry) -> None:
    registry, other = open_registry("alpha"), open_registry("beta")
    with registry.reading() as tx:
        assert tx.lease_on(36100) is None
        assert other.claim(key("web"), 36101) is not None
        assert tx.lease_on(36101) is None  # written after the snapshot
        assert tx.next_unleased(36100, 36105) == 36100
    with registry.reading() as tx:
        assert tx.lease_on(36101) is not None
        assert [lease.port for lease in tx.leases_in(36100, 36200)] == [36101]


def test_a_transaction_conflicts_when_a_key_it_read_changes(open_registry: OpenRegistry) -> None:
    registry, other = open_registry("alpha"), open_registry("beta")
    with pytest.raises(TransactionConflict), registry.transaction() as tx:
        port = tx.next_unleased(36200, 36210)
        assert port == 36200
        assert other.claim(key("api", pid=9), 36200) is not None  # taken meanwhile
        tx.insert(port, key("web"))
    assert registry.find(key("web")) is None
    assert registry.lease_on(36200).key == key("api", pid=9)  # type: ignore[union-attr]

    assert registry.claim(key("db"), 36201) is not None
    with pytest.raises(TransactionConflict), registry.transaction() as tx:
        assert tx.find(key("db")) is not None
        registry.renew(key("db"))  # rewritten meanwhile
        tx.set_holders(36201, (owner(77),))
    assert registry.find(key("db")).holders == ()  # type: ignore[union-attr]


def test_a_transaction_commits_when_only_keys_it_did_not_read_changed(
    open_registry: OpenRegistry,
) -> None:
    registry, other = open_registry("alpha"), open_registry("beta")
    with registry.transaction() as tx:
        assert tx.lease_on(36300) is None
        assert other.claim(key("api", pid=9), 36301) is not None
        tx.insert(36300, key("web"))
    assert registry.lease_on(36300) is not None


def test_transactions_racing_from_two_hosts_never_share_a_port(
    open_registry: OpenRegistry,
) -> None:
    hosts = [open_registry("alpha"), open_registry("beta")]
    threads, each = 4, 25
    got: list[list[int]] = [[] for _ in range(threads)]

    def take(n: int) -> None:
        for i in range(each):
            lease_key = key(f"{n}-{i}", n)

            def next_free(tx: EtcdTransaction) -> int:
                port = tx.next_unleased(36800, 36999)
                assert port is not None
                return tx.insert(port, lease_key).port  # noqa: B023 (run before the next i)

            got[n].append(hosts[n % 2].run_transaction(next_free, attempts=64))

    workers = [threading.Thread(target=take, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(50)
    ports = [port for group in got for port in group]
    assert len(ports) == threads * each == len(set(ports))
    assert sorted(lease.port for lease in hosts[0].leases()) == sorted(ports)


def test_a_transaction_that_fails_or_only_reads_writes_nothing(
    open_registry: OpenRegistry,
) -> None:
    registry = open_registry()
    with pytest.raises(ZeroDivisionError), registry.transaction() as tx:
        tx.insert(36400, key("web"))
        _ = 1 / 0
    assert registry.lease_on(36400) is None
    before = registry.version()
    with registry.transaction() as tx:  # nothing written: nothing to conflict with
        assert tx.lease_on(36400) is None
        registry.claim(key("web"), 36400)
    assert registry.version() != before
    with registry.reading() as tx, pytest.raises(RuntimeError):
        tx.delete(36400)


def test_run_transaction_runs_the_body_again_after_a_conflict(open_registry: OpenRegistry) -> None:
    registry, other = open_registry("alpha"), open_registry("beta")
    runs: list[int | None] = []

    def take_first_free(tx: EtcdTransaction) -> int:
        port = tx.next_unleased(36500, 36510)
        assert port is not None
        runs.append(port)
        if len(runs) == 1:
            other.claim(key("api", pid=9), port)  # lose the first run's race
        tx.insert(port, key("web"))
        return port

    assert registry.run_transaction(take_first_free) == 36501
    assert runs == [36500, 36501]
    assert registry.lease_on(36501).key == key("web")  # type: ignore[union-attr]


def test_a_transaction_may_read_more_keys_than_etcd_compares_at_once(
    open_registry: OpenRegistry,
) -> None:
    registry, other = open_registry("alpha"), open_registry("beta")
    with registry.transaction() as tx:
        assert all(tx.lease_on(port) is None for port in range(36600, 36750))  # 150 reads
        tx.insert(36600, key("web"))
    assert registry.lease_on(36600) is not None
    with pytest.raises(TransactionConflict), registry.transaction() as tx:
        assert all(tx.lease_on(port) is None for port in range(36601, 36751))
        assert other.claim(key("api", pid=9), 36700) is not None  # one of those read
        tx.insert(36601, key("db"))


# --- sticky ports and holders --------------------------------------------------------------


# --- hosts and their etcd lease ------------------------------------------------------------


def test_another_hosts_lease_is_never_reclaimed_here_and_goes_with_its_host(
    open_registry: OpenRegistry,
) -> None:
    here, there = open_registry("alpha"), open_registry("beta", ttl=2)
    assert there.claim(key("web", pid=1), 38000) is not None
    lease = here.lease_on(38000)
    assert lease is not None and lease.host == "beta"
    assert not here.is_local(lease) and there.is_local(lease)
    assert here.claim(key("web", pid=2), 38000) is None
    for change in (lambda tx: tx.delete(38000), lambda tx: tx.set_holders(38000, ())):
        with pytest.raises(ForeignLease), here.transaction() as tx:
            change(tx)
    assert here.lease_on(38000) == lease

    there.close()  # its host's last sidecar is gone: nobody keeps the host lease alive
    wait_until(lambda: here.lease_on(38000) is None, 10, 0.1, "beta's lease to expire")
    assert here.leases() == []
    assert here.claim(key("web", pid=2), 38000) is not None
    with here.reading() as tx:
        assert tx.last_port("app", "web") == 38000  # sticky ports have no TTL


def test_a_sidecar_killed_on_a_live_host_leaves_its_leases_to_its_app(
    open_registry: OpenRegistry,
) -> None:
    killed, sibling = open_registry("alpha", ttl=2), open_registry("alpha", ttl=2)
    assert killed.host_lease.id == sibling.host_lease.id  # one etcd lease per host
    assert killed.claim(key("web"), 38100) is not None
    killed.close()  # as SIGKILL: no release, no revoke, and no more keep-alives from it
    seen = sibling.host_lease.keepalives
    wait_until(lambda: sibling.host_lease.keepalives >= seen + 5, 10, 0.1, "two TTLs pass")
    assert sibling.find(key("web")) is not None

    respawned = open_registry("alpha", ttl=2)
    assert respawned.host_lease.id == sibling.host_lease.id
    assert respawned.renew(key("web")) is not None  # the app gets its port back


def test_an_expired_host_lease_is_replaced_on_the_next_claim(open_registry: OpenRegistry) -> None:
    registry = open_registry("alpha")
    assert registry.claim(key("web"), 38200) is not None
    expired = registry.host_lease.id
    registry.client.revoke(expired)  # as if etcd had been out of reach for over the TTL
    assert registry.find(key("web")) is None  # its keys went with it
    assert registry.claim(key("web"), 38200) is not None
    assert registry.host_lease.id != expired
    with registry.transaction() as tx:
        tx.insert(38201, key("api"))
    assert registry.integrity_check() == "ok"


# --- faults --------------------------------------------------------------------------------


def test_an_etcd_that_is_not_there_is_registry_unavailable_at_once(prefix: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nobody listens
    registry = EtcdRegistry(endpoint, prefix=prefix, host_id="alpha")
    try:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable, match="cannot be reached"):
            registry.claim(key("web"), 39000)
        assert time.monotonic() - started < 1
        assert registry.recheck() is not None and "cannot be reached" in registry.recheck()  # type: ignore[operator]
    finally:
        registry.close()
    with pytest.raises(RegistryUnavailable):
        EtcdRegistry.open(endpoint, prefix=prefix)


def test_an_etcd_that_does_not_answer_is_registry_unavailable_within_the_timeout(
    prefix: str,
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        registry = EtcdRegistry(endpoint, prefix=prefix, host_id="alpha", timeout=0.5)
        try:
            started = time.monotonic()
            with pytest.raises(RegistryUnavailable, match=re.escape("did not answer within 0.5 s")):
                registry.find(key("web"))
            assert time.monotonic() - started < 1.5
        finally:
            registry.close()


def test_etcd_killed_mid_claims_fails_fast_loses_nothing_and_recovers(
    private_etcd: EtcdServer, open_registry: OpenRegistry
) -> None:
    registry = open_registry("alpha", endpoint=private_etcd.endpoint)
    claimed: list[int] = []
    failed: list[tuple[float, BaseException]] = []
    stop = threading.Event()

    def claim_until_it_fails() -> None:
        n = 0
        while not stop.is_set():
            try:
                lease = registry.claim_first_unleased(key(f"s{n}"), 39100, 39999, [])
            except RegistryUnavailable as exc:
                failed.append((time.monotonic(), exc))
                return
            assert lease is not None
            claimed.append(lease.port)
            n += 1

    worker = threading.Thread(target=claim_until_it_fails)
    worker.start()
    try:
        wait_until(lambda: len(claimed) >= 30, 20, 0.01, "claims before the kill")
        private_etcd.kill()
        killed_at = time.monotonic()
        wait_until(lambda: failed, 10, 0.01, "a claim to fail")
    finally:
        stop.set()
        worker.join(10)
    assert failed[0][0] - killed_at < 2.5
    assert registry.fault is not None
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match=re.escape(private_etcd.endpoint)):
        registry.claim(key("web"), 39050)
    assert time.monotonic() - started < 2.5

    private_etcd.start()  # the same data, the same ports
    lease: Any = wait_until(
        lambda: _claim_or_none(registry, key("web"), 39050), 20, 0.1, "claims to work again"
    )
    assert lease.port == 39050
    assert registry.fault is None
    assert registry.recheck() is None
    ports = [lease.port for lease in registry.leases()]
    assert len(ports) == len(set(ports))
    assert set(claimed) <= set(ports)  # every claim that answered is on record
    assert registry.integrity_check() == "ok"


def _claim_or_none(registry: EtcdRegistry, lease_key: LeaseKey, port: int) -> Any:
    try:
        return registry.claim(lease_key, port)
    except RegistryUnavailable:
        return None
