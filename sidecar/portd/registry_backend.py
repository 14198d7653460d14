"""What the engine needs of a registry, whichever one it has: the SQLite file (`registry`)
or etcd (`registry_etcd`), and how to open one from `--registry`.

The engine types against these protocols only; it never asks which back end it has. Two
things a shared registry adds, and a single machine answers trivially:

- `run_transaction(body)`: etcd's transactions are optimistic and may conflict, so a body
  may run more than once (SQLite runs it once, holding the write lock);
- `is_local(lease)`: a lease of another host is alive for as long as its host keeps it (only
  that host can look at its owner's pid), and only that host may reclaim it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from .process import ProcessIdentity
    from .registry import Lease, LeaseKey

T = TypeVar("T")
ETCD_SCHEMES = ("etcd://", "etcds://")  # etcds: TLS to etcd's client port
NO_ETCD_HINT = (
    "pip install 'portd[etcd]', or build the frozen sidecar with PORTD_BUILD_ETCD=1 ./scripts/build"
)


class RegistryTransaction(Protocol):
    def find(self, key: LeaseKey) -> Lease | None: ...
    def lease_on(self, port: int) -> Lease | None: ...
    def next_unleased(self, low: int, high: int) -> int | None: ...
    def leases_in(self, low: int, high: int) -> Sequence[Lease]: ...
    def insert(
        self, port: int, key: LeaseKey, holders: tuple[ProcessIdentity, ...] = ()
    ) -> Lease: ...
    def set_holders(self, port: int, holders: tuple[ProcessIdentity, ...]) -> None: ...
    def delete(self, port: int) -> None: ...
    def last_port(self, app_id: str, service: str) -> int | None: ...


class RegistryBackend(Protocol):
    path: str  # a file, or the etcd endpoint and prefix: what messages name
    log_faults: bool

    @property
    def degraded(self) -> str | None: ...  # why it is a private memory stand-in, if it is
    @property
    def fault(self) -> str | None: ...
    def transaction(self) -> AbstractContextManager[RegistryTransaction]: ...
    def reading(self) -> AbstractContextManager[RegistryTransaction]: ...
    def run_transaction(self, body: Callable[[RegistryTransaction], T]) -> T: ...
    def version(self) -> tuple[int, int]: ...
    def leases(
        self, owner: ProcessIdentity | None = None, app_id: str | None = None
    ) -> list[Lease]: ...
    def lease_on(self, port: int) -> Lease | None: ...
    def find(self, key: LeaseKey) -> Lease | None: ...
    def renew(self, key: LeaseKey) -> Lease | None: ...
    def claim(self, key: LeaseKey, port: int) -> Lease | None: ...
    def claim_first_unleased(
        self, key: LeaseKey, start: int, high: int, skip: list[int]
    ) -> Lease | None: ...
    def release(self, key: LeaseKey) -> bool: ...
    def is_local(self, lease: Lease) -> bool: ...
    def recheck(self) -> str | None: ...
    def integrity_check(self) -> str: ...
    def close(self) -> None: ...


def is_etcd(spec: str) -> bool:
    return spec.startswith(ETCD_SCHEMES)


def etcd_address(spec: str) -> tuple[str, str | None]:
    """`etcd://HOST:PORT[/prefix]` (`etcds://` for TLS) as (endpoint URL, prefix or None),
    or ValueError saying what is wrong."""
    from urllib.parse import urlsplit

    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.query or parts.fragment:
        raise ValueError(f"{spec!r} is not etcd://HOST:PORT[/prefix]")
    scheme = "https" if parts.scheme == "etcds" else "http"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}:{port}", parts.path.rstrip("/") or None


def open_etcd(spec: str, host_id: str | None) -> RegistryBackend:
    """The etcd registry at `spec` (see `etcd_address`), returned at once, etcd reachable or
    not: calls answer -32004 until it is (never a private stand-in, which would hand out
    other hosts' ports). ImportError when this install has no etcd client (the `etcd`
    extra)."""
    endpoint, prefix = etcd_address(spec)
    from .registry_etcd import DEFAULT_PREFIX, EtcdRegistry

    return EtcdRegistry(endpoint, prefix=prefix or DEFAULT_PREFIX, host_id=host_id)
