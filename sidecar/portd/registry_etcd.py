"""Port leases in etcd: one registry for many hosts, with the SQLite `Registry`'s interface.

A lease is a pair of keys holding one JSON record (`_etcd_keys`): its port key and its
LeaseKey's index key, written together by every transaction that writes either, so both
always carry the same mod_revision. A claim is one etcd transaction that creates both only
if neither exists, so no two sidecars, on one host or on two, ever hold one port; a release
or a renewal reads the index key and compares both keys against its revision. Both keys
hang on the host lease (`_etcd_client.HostLease`): they vanish when no sidecar of their
host has kept it alive for a TTL, and survive a sidecar killed while its app lives as long
as another sidecar of the host, or its respawned self, keeps it.

`transaction()` is optimistic (`_etcd_transaction`): TransactionConflict on leaving the
block when someone wrote what it read, which `run_transaction` retries. Dead owners'
leases are reclaimed on their own host only: changing another host's lease raises
ForeignLease (`is_local` tells them apart). etcd out of reach: RegistryUnavailable (-32004)
within the request timeout (2 s), logged once; the next call that gets through recovers.
docs/etcd.md has the design and what the manager must change to use it.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar

from ._etcd_client import (
    TIMEOUT,
    EtcdClient,
    HostLease,
    LeaseNotFound,
    absent,
    delete,
    prefix_end,
    read,
    unchanged,
)
from ._etcd_keys import (
    DuplicateLease,
    EtcdLease,
    ForeignLease,
    Keyspace,
    TransactionConflict,
    decode,
)
from ._etcd_transaction import EtcdTransaction
from .process import ProcessIdentity
from .protocol.errors import RegistryUnavailable
from .registry import Lease, LeaseKey, now_ms

__all__ = [
    "DuplicateLease",
    "EtcdLease",
    "EtcdRegistry",
    "EtcdTransaction",
    "ForeignLease",
    "TransactionConflict",
]

log = logging.getLogger("portd.registry")

DEFAULT_PREFIX = "/portd"
DEFAULT_TTL = 10  # seconds a host's leases outlive the last of its sidecars
PAGE = 128  # port keys read at a time when looking for a free one
MAX_PAGE = 2048  # ... doubling each time up to this, through a crowded range
SPREAD = 8  # free ports a claim that keeps losing races picks among
ATTEMPTS = 64  # compare-and-swap rounds before a call gives up (each lost one is progress)
T = TypeVar("T")


class EtcdRegistry:
    """Leases in etcd at `endpoint`, under `prefix`, as seen from the host `host_id`."""

    degraded: str | None = None  # never falls back to memory: see docs/etcd.md

    def __init__(
        self,
        endpoint: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        host_id: str | None = None,
        ttl: int = DEFAULT_TTL,
        timeout: float = TIMEOUT,
    ) -> None:
        self.host_id = host_id or socket.gethostname()
        self.keys = Keyspace(prefix, self.host_id)
        self.client = EtcdClient(endpoint, timeout)
        self.host_lease = HostLease(self.client, self.keys.host, ttl)
        self.path = f"{self.client.endpoint}{self.keys.prefix}"
        self._own_writes = 0
        self._contention = 0  # races recent range claims lost (0-3, halving when calm)
        self.host_lease.start()

    @classmethod
    def open(
        cls,
        endpoint: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        host_id: str | None = None,
        ttl: int = DEFAULT_TTL,
        timeout: float = TIMEOUT,
    ) -> EtcdRegistry:
        """A registry with its host lease in hand: RegistryUnavailable if etcd cannot be
        reached now. (The constructor alone does not wait: calls fail until etcd comes.)"""
        registry = cls(endpoint, prefix=prefix, host_id=host_id, ttl=ttl, timeout=timeout)
        try:
            _ = registry.host_lease.id
        except BaseException:
            registry.close()
            raise
        return registry

    @property
    def fault(self) -> str | None:
        return self.client.fault

    @property
    def log_faults(self) -> bool:
        return self.client.log_faults

    @log_faults.setter
    def log_faults(self, value: bool) -> None:
        self.client.log_faults = value

    def is_local(self, lease: Lease) -> bool:
        """Whether the lease's owner runs on this host: only then can its liveness be told
        from its pid, and only then may this host reclaim it."""
        return getattr(lease, "host", self.host_id) == self.host_id

    def _wrote(self) -> None:
        self._own_writes += 1

    # --- transactions ----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[EtcdTransaction]:
        """Reads from one snapshot, writes committed in one etcd transaction on leaving
        the block if nothing read has changed, else TransactionConflict. An exception in
        the block writes nothing."""
        tx = EtcdTransaction(self.keys, self.client, self.host_lease, True, self._wrote)
        yield tx
        tx.commit()

    @contextmanager
    def reading(self) -> Iterator[EtcdTransaction]:
        """Reads from one snapshot; a write raises RuntimeError."""
        yield EtcdTransaction(self.keys, self.client, self.host_lease, False)

    def run_transaction(self, body: Callable[[EtcdTransaction], T], attempts: int = 16) -> T:
        """`body(tx)` in a transaction, run again after a short random pause while it
        conflicts; TransactionConflict after `attempts` runs. `body` may run several times,
        so it must do nothing but registry reads and writes (and pure checks)."""
        for attempt in range(attempts):
            try:
                with self.transaction() as tx:
                    result = body(tx)
                return result
            except TransactionConflict:
                if attempt == attempts - 1:
                    raise
                time.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.05)))
        raise AssertionError("unreachable")

    def version(self) -> tuple[int, int]:
        """Changes whenever anyone has written to etcd (its revision: one small request),
        or lease keys expired."""
        _, revision = self.client.count(self.keys.ports, prefix_end(self.keys.ports))
        return revision, self._own_writes

    # --- reads -----------------------------------------------------------------------------

    def leases(
        self, owner: ProcessIdentity | None = None, app_id: str | None = None
    ) -> list[Lease]:
        """Every host's leases (EtcdLease, naming the host), or those of one owner (of this
        host) and app; by port."""
        start = self.keys.ports
        if owner is not None and app_id is not None:
            start = self.keys.owner(owner, app_id)
        kvs, _, _ = self.client.range(start, prefix_end(start))
        leases: list[Lease] = []
        for kv in kvs:
            try:
                leases.append(decode(kv))
            except RegistryUnavailable as exc:
                log.warning("%s; skipped", exc)
        return sorted(leases, key=lambda lease: lease.port)

    def lease_on(self, port: int) -> EtcdLease | None:
        kv, _ = self.client.get(self.keys.port(port))
        return decode(kv) if kv else None

    def find(self, key: LeaseKey) -> EtcdLease | None:
        kv, _ = self.client.get(self.keys.index(key))
        return decode(kv) if kv else None

    # --- writes ----------------------------------------------------------------------------

    def claim(self, key: LeaseKey, port: int) -> EtcdLease | None:
        """Lease `port` if it has no lease, in one transaction; None if it has one,
        DuplicateLease if it has none but the key has a lease (as SQLite's UNIQUE)."""
        lease = self.keys.new(port, key)
        result = self._with_host_lease(
            lambda etcd_lease: self.client.txn(
                [absent(self.keys.port(port)), absent(self.keys.index(key))],
                [*self.keys.pair_ops(lease, etcd_lease), self.keys.remember(lease)[1]],
                [read(self.keys.port(port), count_only=True)],
            )
        )
        if result.succeeded:
            self._wrote()
            return lease
        if result.ranges[0].count:
            return None
        raise DuplicateLease(f"{key.service} of app {key.app_id} already has a lease")

    def claim_first_unleased(
        self, key: LeaseKey, start: int, high: int, skip: list[int]
    ) -> EtcdLease | None:
        """Lease the lowest port in start..high that has no lease and is not in `skip`.

        The first attempt tries `start` (or the first port not skipped) without reading
        anything: the manager resumes after its last range claim, which is usually free,
        so a claim is one round trip. A failed attempt's transaction reads the leased ports
        from `start` (a page), and the next attempt takes the lowest free port found.
        Under contention, "the lowest" gives way: after losing a race for a port it saw
        free, a claim picks at random among the lowest 2, 4, ... 8 free ones (claimers who
        all eye the lowest keep colliding, one winner per round, and each lost round is a
        write that etcd logs), and while recent claims lost races, the next one reads first
        instead of trying blind."""
        skipped, known, lost = set(skip), None, 0  # lost: races for ports seen free
        index, end = self.keys.index(key), self.keys.port(high + 1)
        for _ in range(ATTEMPTS):
            if known is None and not self._contention:  # blind
                free = next(([p] for p in range(start, high + 1) if p not in skipped), [])
            else:
                spread = min(2 ** (self._contention + lost), SPREAD)
                free = self._free(start, high, skipped, known, spread)
            if not free:
                return None
            start, lease = free[0], self.keys.new(random.choice(free), key)
            result = self._with_host_lease(
                lambda etcd_lease, lease=lease, start=start: self.client.txn(  # type: ignore[misc]
                    [absent(self.keys.port(lease.port)), absent(index)],
                    [*self.keys.pair_ops(lease, etcd_lease), self.keys.remember(lease)[1]],
                    [
                        read(index, count_only=True),
                        read(self.keys.port(start), end, keys_only=True, limit=PAGE),
                    ],
                )
            )
            if result.succeeded:
                self._wrote()
                self._contention = (
                    min(lost, 3) if lost > self._contention else self._contention // 2
                )
                return lease
            lost += known is not None
            page = result.ranges[1]
            leased = {self.keys.port_of(kv.key) for kv in page.kvs}
            known = (leased, max(leased) if page.more else high)
            if result.ranges[0].count:  # as SQLite: the key's lease matters if a port is free
                if not self._free(start, high, skipped, known, 1):
                    return None
                raise DuplicateLease(f"{key.service} of app {key.app_id} already has a lease")
        raise TransactionConflict(f"claiming a port up to {high} kept conflicting")

    def _free(
        self,
        start: int,
        high: int,
        skip: set[int],
        known: tuple[set[int], int] | None,
        count: int,
    ) -> list[int]:
        """The lowest ports from `start` to `high` neither leased nor skipped: the first
        one, reading the leased ports a page at a time (each twice the last) as far as
        needed, and up to `count` in all from what that read; `known`: (leased ports from
        `start`, up to which)."""
        leased, covered = known if known is not None else (set(), start - 1)
        free: list[int] = []
        port, page = start, PAGE
        while port <= high and len(free) < count:
            if port > covered:
                if free:
                    break  # enough to choose from without another read
                kvs, _, more = self.client.range(
                    self.keys.port(port), self.keys.port(high + 1), keys_only=True, limit=page
                )
                page = min(page * 2, MAX_PAGE)  # a crowded range: fewer, longer reads
                leased = {self.keys.port_of(kv.key) for kv in kvs}
                covered = max(leased) if more else high
            if port not in leased and port not in skip:
                free.append(port)
            port += 1
        return free

    def _with_host_lease(self, write: Callable[[int], T]) -> T:
        """Run a write that hangs keys on the host lease; if that lease has expired (etcd
        was out of reach for longer than its TTL), once more with a new one."""
        etcd_lease = self.host_lease.id
        try:
            return write(etcd_lease)
        except LeaseNotFound:
            self.host_lease.lost(etcd_lease)
        try:
            return write(self.host_lease.id)
        except LeaseNotFound as exc:
            raise TransactionConflict(f"the host lease keeps expiring: {exc}") from None

    def renew(self, key: LeaseKey) -> EtcdLease | None:
        """The key's live lease, marked renewed: a read and a compare-and-swap of the pair,
        which stays on the etcd lease it hangs on."""
        index = self.keys.index(key)
        for _ in range(ATTEMPTS):
            kv, _ = self.client.get(index)
            if kv is None:
                return None
            lease = replace(decode(kv), renewed_at=now_ms())
            port = self.keys.port(lease.port)
            compare = [unchanged(index, kv.mod_revision), unchanged(port, kv.mod_revision)]
            try:
                if self.client.txn(compare, self.keys.pair_ops(lease, kv.lease)).succeeded:
                    self._wrote()
                    return lease
            except LeaseNotFound:
                continue  # the host lease expired: the pair is gone with it
        raise TransactionConflict(f"renewing {key.service} kept conflicting")

    def release(self, key: LeaseKey) -> bool:
        """End the key's lease; False if it had none."""
        index = self.keys.index(key)
        for _ in range(ATTEMPTS):
            kv, _ = self.client.get(index)
            if kv is None:
                return False
            port = self.keys.port(decode(kv).port)
            result = self.client.txn(
                [unchanged(index, kv.mod_revision), unchanged(port, kv.mod_revision)],
                [delete(index), delete(port)],
                [read(port)],
            )
            if result.succeeded:
                self._wrote()
                return True
            now = result.ranges[0].kvs
            if not now or decode(now[0]).key != key:  # a stale index, whose port is not its
                self.client.txn([unchanged(index, kv.mod_revision)], [delete(index)])
                return False
        raise TransactionConflict(f"releasing {key.service} kept conflicting")

    # --- health ----------------------------------------------------------------------------

    def recheck(self) -> str | None:
        """What is wrong with etcd now, or None (one small request)."""
        try:
            self.version()
        except RegistryUnavailable:
            pass
        return self.fault

    def integrity_check(self) -> str:
        """ "ok", or what breaks the pairing of port keys and index keys (one snapshot)."""
        ports, at, _ = self.client.range(self.keys.ports, prefix_end(self.keys.ports))
        start = self.keys.indexes
        indexes, _, _ = self.client.range(start, prefix_end(start), revision=at)
        by_key = {kv.key: kv for kv in indexes}
        problems = []
        for kv in ports:
            lease = decode(kv)
            twin = by_key.pop(self.keys.index(lease.key, lease.host), None)
            if lease.port != self.keys.port_of(kv.key):
                problems.append(f"{kv.key} names port {lease.port}")
            if twin is None or (twin.value, twin.mod_revision) != (kv.value, kv.mod_revision):
                problems.append(f"{kv.key} has no matching index key")
        problems += [f"{key} has no port key" for key in by_key]
        return "; ".join(problems[:10]) if problems else "ok"

    def close(self) -> None:
        """Stop keeping the host lease alive, without revoking it: the host's other
        sidecars keep it, or it expires after its TTL (see docs/etcd.md)."""
        self.host_lease.stop()
        self.client.close()
