"""The etcd registry's keys and records (docs/etcd.md, "Keys"), and its own errors.

    {prefix}/ports/{port:05d}                                    the lease record (JSON)
    {prefix}/keys/{host}/{owner_pid}/{owner_started}/{app_id}/{service}   the same record
    {prefix}/last/{app_id}/{service}                             the sticky port (no TTL)
    {prefix}/hosts/{host}                                        the host's etcd lease id

Names are percent-encoded, so a service called `a/b` cannot reach into another's keys;
ports have five digits, so the keys sort as the ports do and a port range is a key range.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from ._etcd_client import KeyValue, Op, put
from .process import ProcessIdentity
from .protocol.errors import PermissionDenied, RegistryUnavailable
from .registry import DuplicateLease as DuplicateLease
from .registry import Lease, LeaseKey, now_ms


class TransactionConflict(RegistryUnavailable):
    """Another writer changed a key that the transaction read: run it again. A
    RegistryUnavailable, so that a caller that does not retry answers -32004, not -32603."""


class ForeignLease(PermissionDenied):
    """A lease of another host: only its own host may reclaim or change it."""


@dataclass(frozen=True, slots=True)
class EtcdLease(Lease):
    """A lease and the host its owner runs on."""

    host: str = ""


def record(lease: EtcdLease) -> bytes:
    owner = lease.key.owner
    return json.dumps(
        {
            "port": lease.port,
            "service": lease.key.service,
            "app_id": lease.key.app_id,
            "host": lease.host,
            "owner_pid": owner.pid,
            "owner_started": owner.started,
            "holders": [[h.pid, h.started] for h in lease.holders],
            "created_at": lease.created_at,
            "renewed_at": lease.renewed_at,
        },
        separators=(",", ":"),
    ).encode()


def decode(kv: KeyValue | bytes) -> EtcdLease:
    """The lease a record holds; RegistryUnavailable for anything else (someone else's
    data under our prefix is a fault of the registry, not a bug of the caller)."""
    value = kv if isinstance(kv, bytes) else kv.value
    try:
        d = json.loads(value)
        owner = ProcessIdentity(int(d["owner_pid"]), float(d["owner_started"]))
        key = LeaseKey(owner, str(d["app_id"]), str(d["service"]))
        held = tuple(ProcessIdentity(int(p), float(s)) for p, s in d["holders"])
        created, renewed = int(d["created_at"]), int(d["renewed_at"])
        return EtcdLease(int(d["port"]), key, held, created, renewed, str(d["host"]))
    except (ValueError, KeyError, TypeError):
        where = "" if isinstance(kv, bytes) else f" at {kv.key}"
        raise RegistryUnavailable(
            f"the etcd registry holds a record{where} that is not a lease"
        ) from None


def _q(name: str) -> str:
    return quote(name, safe="")


class Keyspace:
    """Where each kind of key lives, for one host's registry."""

    def __init__(self, prefix: str, host_id: str) -> None:
        self.prefix = "/" + prefix.strip("/")
        self.host_id = host_id
        self.ports = f"{self.prefix}/ports/"
        self.indexes = f"{self.prefix}/keys/"
        self.host = f"{self.prefix}/hosts/{_q(host_id)}"

    def port(self, port: int) -> str:
        return f"{self.ports}{port:05d}"

    def is_port(self, key: str) -> bool:
        return key.startswith(self.ports)

    def port_of(self, key: str) -> int:
        return int(key[len(self.ports) :])

    def owner(self, owner: ProcessIdentity, app_id: str, host: str | None = None) -> str:
        """The prefix of one owner's index keys for one app (`repr` of the start time
        round-trips exactly, as LeaseKey's equality needs)."""
        host = self.host_id if host is None else host
        return f"{self.indexes}{_q(host)}/{owner.pid}/{owner.started!r}/{_q(app_id)}/"

    def index(self, key: LeaseKey, host: str | None = None) -> str:
        return self.owner(key.owner, key.app_id, host) + _q(key.service)

    def last(self, app_id: str, service: str) -> str:
        return f"{self.prefix}/last/{_q(app_id)}/{_q(service)}"

    def new(self, port: int, key: LeaseKey, holders: tuple[ProcessIdentity, ...] = ()) -> EtcdLease:
        now = now_ms()
        return EtcdLease(port, key, holders, now, now, self.host_id)

    def pair(self, lease: EtcdLease, etcd_lease: int) -> list[tuple[str, Op]]:
        """The writes of one lease: its port key and its index key, one value, one etcd
        lease. Every write of a lease writes both, so they share their mod_revision."""
        value = record(lease)
        keys = (self.port(lease.port), self.index(lease.key, lease.host))
        return [(key, put(key, value, etcd_lease)) for key in keys]

    def pair_ops(self, lease: EtcdLease, etcd_lease: int) -> list[Op]:
        return [op for _, op in self.pair(lease, etcd_lease)]

    def remember(self, lease: Lease) -> tuple[str, Op]:
        """The sticky port, as SQLite's trigger keeps it: no etcd lease, it outlives the
        lease."""
        key = self.last(lease.key.app_id, lease.key.service)
        return key, put(key, str(lease.port))
