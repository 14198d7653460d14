"""The etcd registry's `Transaction`: the SQLite one's reads and writes, optimistic.

Reads see one snapshot, the revision of the first read. Writes are buffered, and
`commit` sends them in one etcd transaction that holds only if every key read by name
(`find`, `lease_on`, `last_port`, the port `next_unleased` returned, and what each write
looked at first) is unchanged since, or still absent; else `TransactionConflict`, and the
whole block is to be run again (`EtcdRegistry.run_transaction`). Range reads are hints:
what the caller acts on it reads again by name or writes, and that is compared. No two
leases on one port can come of it, whatever the interleaving: every insert compares its
port key and its index key as absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ._etcd_client import (
    Compacted,
    EtcdClient,
    HostLease,
    KeyValue,
    LeaseNotFound,
    Op,
    absent,
    delete,
    not_written_since,
    unchanged,
)
from ._etcd_keys import (
    DuplicateLease,
    EtcdLease,
    ForeignLease,
    Keyspace,
    TransactionConflict,
    decode,
    record,
)
from .process import ProcessIdentity
from .registry import LeaseKey

MAX_COMPARES = 100  # etcd takes at most 128 in one transaction (--max-txn-ops)


class EtcdTransaction:
    def __init__(
        self,
        keys: Keyspace,
        client: EtcdClient,
        host_lease: HostLease,
        writable: bool,
        committed: Callable[[], None] = lambda: None,
    ) -> None:
        self._keys, self._client, self._host_lease = keys, client, host_lease
        self._writable, self._committed = writable, committed
        self._revision = 0  # the snapshot: the revision of the first read
        self._known: dict[str, KeyValue | None] = {}  # values at the snapshot
        self._windows: list[tuple[int, int, frozenset[int]]] = []  # leased ports, by range
        self._compared: dict[str, KeyValue | None] = {}  # read by name: compared at commit
        self._writes: dict[str, Op] = {}
        self._after: dict[str, bytes | None] = {}  # what this transaction wrote
        self._ports: dict[int, bool] = {}  # ports it leased (True) or freed (False)

    # --- the Transaction API ---------------------------------------------------------------

    def find(self, key: LeaseKey) -> EtcdLease | None:
        value = self._read(self._keys.index(key))
        return decode(value) if value is not None else None

    def lease_on(self, port: int) -> EtcdLease | None:
        value = self._read(self._keys.port(port))
        return decode(value) if value is not None else None

    def next_unleased(self, low: int, high: int) -> int | None:
        """The lowest port in low..high with no lease (`low` itself if free, even past
        `high`, as SQLite's); that it is free is compared at commit."""
        high = max(low, high)
        leased = self._leased(low, high)
        port = next((p for p in range(low, high + 1) if p not in leased), None)
        if port is not None:
            self._read(self._keys.port(port))
        return port

    def leases_in(self, low: int, high: int) -> list[EtcdLease]:
        """The leases in low..high, by port: a hint, not compared at commit."""
        by_port = {}
        for kv in self._range(low, high, keys_only=False):
            self._known.setdefault(kv.key, kv)
            by_port[self._keys.port_of(kv.key)] = decode(kv)
        for port in self._ports:
            if low <= port <= high:
                value = self._after[self._keys.port(port)]
                if value is None:
                    by_port.pop(port, None)
                else:
                    by_port[port] = decode(value)
        return [by_port[port] for port in sorted(by_port)]

    def insert(
        self, port: int, key: LeaseKey, holders: tuple[ProcessIdentity, ...] = ()
    ) -> EtcdLease:
        self._check_writable()
        if self._read(self._keys.port(port)) is not None:
            raise DuplicateLease(f"port {port} already has a lease")
        if self._read(self._keys.index(key)) is not None:
            raise DuplicateLease(f"{key.service} of app {key.app_id} already has a lease")
        lease = self._keys.new(port, key, holders)
        self._stage_pair(lease, self._host_lease.id)
        last, op = self._keys.remember(lease)
        self._stage(last, op, str(port).encode())
        return lease

    def set_holders(self, port: int, holders: tuple[ProcessIdentity, ...]) -> None:
        lease = self._local_lease(port)
        if lease is not None:
            self._stage_pair(replace(lease, holders=holders), self._etcd_lease_of(port))

    def delete(self, port: int) -> None:
        lease = self._local_lease(port)
        if lease is not None:
            for key in (self._keys.port(port), self._keys.index(lease.key, lease.host)):
                self._stage(key, delete(key), None)
            self._ports[port] = False

    def last_port(self, app_id: str, service: str) -> int | None:
        value = self._read(self._keys.last(app_id, service))
        return int(value) if value is not None else None

    # --- reading the snapshot --------------------------------------------------------------

    def _read(self, key: str) -> bytes | None:
        """The key's value as this transaction sees it; compared at commit."""
        if key in self._after:
            return self._after[key]
        kv = self._fetch(key)
        self._compared.setdefault(key, kv)
        return kv.value if kv is not None else None

    def _fetch(self, key: str) -> KeyValue | None:
        if key in self._known:
            return self._known[key]
        if self._keys.is_port(key):
            port = self._keys.port_of(key)
            if any(lo <= port <= hi and port not in leased for lo, hi, leased in self._windows):
                return None  # a range read of this snapshot saw no lease there
        try:
            kv, at = self._client.get(key, self._revision)
        except Compacted:
            raise TransactionConflict("the snapshot was compacted away") from None
        self._revision = self._revision or at
        self._known[key] = kv
        return kv

    def _range(self, low: int, high: int, keys_only: bool) -> list[KeyValue]:
        start, end = self._keys.port(low), self._keys.port(high + 1)
        try:
            kvs, at, _ = self._client.range(
                start, end, keys_only=keys_only, revision=self._revision
            )
        except Compacted:
            raise TransactionConflict("the snapshot was compacted away") from None
        self._revision = self._revision or at
        self._windows.append((low, high, frozenset(self._keys.port_of(kv.key) for kv in kvs)))
        return kvs

    def _leased(self, low: int, high: int) -> set[int]:
        """The leased ports in low..high, this transaction's own writes included: one range
        read of keys for the first window, none for a window inside one read before."""
        window = next((w for w in self._windows if w[0] <= low and high <= w[1]), None)
        if window is not None:
            ports = set(window[2])
        else:
            ports = {self._keys.port_of(kv.key) for kv in self._range(low, high, True)}
        for port, leased in self._ports.items():
            if low <= port <= high:
                if leased:
                    ports.add(port)
                else:
                    ports.discard(port)
        return ports

    # --- writing ---------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if not self._writable:
            raise RuntimeError("a registry read (`reading()`) cannot write")

    def _local_lease(self, port: int) -> EtcdLease | None:
        """The lease on `port`, to change: None if there is none; ForeignLease if it is
        another host's (its liveness is its host's to judge, by pid, and etcd's, by TTL)."""
        self._check_writable()
        value = self._read(self._keys.port(port))
        if value is None:
            return None
        lease = decode(value)
        if lease.host != self._keys.host_id:
            raise ForeignLease(
                f"port {port} is leased on host {lease.host}: only that host may change it"
            )
        return lease

    def _etcd_lease_of(self, port: int) -> int:
        """The etcd lease the port key hangs on: a rewrite keeps it there."""
        op = self._writes.get(self._keys.port(port))
        if op is not None and "request_put" in op:
            return int(op["request_put"].get("lease", 0))
        kv = self._known.get(self._keys.port(port))
        return kv.lease if kv is not None and kv.lease else self._host_lease.id

    def _stage(self, key: str, op: Op, value: bytes | None) -> None:
        self._writes[key] = op  # etcd takes one op per key: the last write wins
        self._after[key] = value

    def _stage_pair(self, lease: EtcdLease, etcd_lease: int) -> None:
        value = record(lease)
        for key, op in self._keys.pair(lease, etcd_lease):
            self._stage(key, op, value)
        self._ports[lease.port] = True

    def commit(self) -> None:
        """One etcd transaction: every key read by name unchanged (or still absent), then
        every buffered write. Nothing written: nothing to do, as a read-only SQLite one."""
        if not self._writes:
            return
        try:
            result = self._client.txn(self._compares(), list(self._writes.values()))
        except LeaseNotFound:
            self._host_lease.lost(self._host_lease.id)
            raise TransactionConflict("the host lease expired during the transaction") from None
        if not result.succeeded:
            raise TransactionConflict(
                "the etcd registry changed under the transaction (another writer wrote a key "
                "it read): run it again"
            )
        self._committed()

    def _compares(self) -> list[Op]:
        """A compare per key read by name. Past etcd's limit, the port keys that were only
        read fold into one range compare, "none written since the snapshot": that misses a
        lease released meanwhile, which only makes the transaction's view cautious."""
        compared = dict(self._compared)
        compares: list[Op] = []
        if len(compared) > MAX_COMPARES:
            only_read = [k for k in compared if self._keys.is_port(k) and k not in self._writes]
            if only_read:
                ports = sorted(self._keys.port_of(k) for k in only_read)
                for key in only_read:
                    del compared[key]
                first, end = self._keys.port(ports[0]), self._keys.port(ports[-1] + 1)
                compares.append(not_written_since(first, end, self._revision))
        for key, kv in compared.items():
            compares.append(absent(key) if kv is None else unchanged(key, kv.mod_revision))
        return compares
