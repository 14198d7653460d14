"""Service discovery: where another app's service is, read from whichever registry is in use.

One app finds another's API by name (app id and service) instead of a hard-coded port. Only
`registry.leases()` is read, which the SQLite and the etcd back ends both have: a lease is
the registry's word on where a service is, whether or not something listens there yet.

A service can have several leases (two copies of an app, each with its own owner). All that
can answer are given, best first: live on this host, then other hosts' (whose owners only
their own host can check: etcd drops a dead host's leases after its TTL), then orphans (the
app is gone, a server it started still runs); the newest first within each, by when the
lease was made, not renewed, so that two copies renewing in turn do not swap places. A lease
of this host whose owner and holders are all gone is left out: nothing of it can answer.

`ServiceWatch` is what `watch_service` keeps: the location last told for each watched
service, compared on every monitor pass with the best one now.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from .process import is_alive
from .protocol.errors import UnknownService
from .protocol.models import PortEvent, PortEventType, ServiceLocation, ServiceState
from .registry import Lease, now_ms

LOOPBACK = "127.0.0.1"  # what a client on this host connects to; the allocator keeps v4 free
_RANK: dict[ServiceState, int] = {"live": 0, "remote": 1, "orphan": 2}
_NAMES_SHOWN = 10  # services of the app named when the one asked for is not among them

ServiceRef = tuple[str, str]  # (app id, service)
Emit = Callable[[PortEvent], None]


class LeaseSource(Protocol):
    """What discovery needs of a registry (both back ends have it)."""

    def leases(self) -> Sequence[Lease]: ...

    def version(self) -> object: ...


def this_host(registry: object) -> str:
    """The registry's host id (the etcd back end has one), else this machine's name."""
    return str(getattr(registry, "host_id", None) or socket.gethostname())


def locate(
    registry: LeaseSource, app_id: str, service: str, leases: Iterable[Lease] | None = None
) -> list[ServiceLocation]:
    """Every lease of the app's service that can answer, best first (see the module's
    docstring); `leases`: what the registry holds, if already read."""
    here = this_host(registry)
    # A registry without it is one machine's (SQLite): every lease is this host's.
    is_local: Callable[[Lease], bool] = getattr(registry, "is_local", lambda lease: True)
    found: list[tuple[Lease, ServiceLocation]] = []
    for lease in registry.leases() if leases is None else leases:
        if lease.service != service or lease.key.app_id != app_id:
            continue
        location = _location(lease, is_local(lease), here)
        if location is not None:
            found.append((lease, location))
    found.sort(key=lambda pair: (_RANK[pair[1].state], -pair[0].created_at, pair[0].port))
    return [location for _, location in found]


def _location(lease: Lease, local: bool, here: str) -> ServiceLocation | None:
    state: ServiceState
    if not local:
        state = "remote"
    elif is_alive(lease.owner):
        state = "live"
    elif any(is_alive(h) for h in lease.holders):
        state = "orphan"
    else:
        return None  # stale: the next claim of its port reclaims it
    host = str(getattr(lease, "host", None) or here)  # an etcd lease names its host
    return ServiceLocation(
        app_id=lease.key.app_id,
        service=lease.service,
        port=lease.port,
        host=host,
        address=LOOPBACK if local else host,
        local=local,
        state=state,
        pid=lease.owner.pid,
        holder_pids=[h.pid for h in lease.holders],
        allocated_at=lease.created_at,
    )


def resolve(registry: LeaseSource, app_id: str, service: str) -> list[ServiceLocation]:
    """`resolve_service`: the service's locations, best first; UnknownService if none can
    answer, saying what the registry does hold of that app."""
    leases = registry.leases()
    found = locate(registry, app_id, service, leases)
    if not found:
        raise UnknownService(_not_found(app_id, service, leases))
    return found


def _not_found(app_id: str, service: str, leases: Sequence[Lease]) -> str:
    # Names come from other apps' calls: repr keeps the message on one line, whatever they hold.
    wanted = repr(f"{app_id}/{service}")
    of_app = [lease for lease in leases if lease.key.app_id == app_id]
    stale = next((lease for lease in of_app if lease.service == service), None)
    if stale is not None:
        return (
            f"{wanted} cannot answer: its lease on port {stale.port} is of pid "
            f"{stale.owner.pid}, which is gone, and nothing it started runs"
        )
    if not of_app:
        return f"no lease for {wanted}: app {app_id!r} holds no lease"
    names = sorted({lease.service for lease in of_app})
    shown = ", ".join(map(repr, names[:_NAMES_SHOWN]))
    more = f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else ""
    return f"no lease for {wanted}; app {app_id!r} has {shown}{more}"


def change(
    ref: ServiceRef, told: ServiceLocation | None, now: ServiceLocation | None
) -> PortEvent | None:
    """The event that tells a watcher who was told `told` that the service is at `now`, or
    None if what to connect to (host and port) is the same. `port` is where the service is
    (for ServiceDown: where it was); a move also gives `old_port` and `new_port`."""
    if _place(told) == _place(now):
        return None
    app_id, service = ref
    kind: PortEventType
    old_port = new_port = None
    if now is None:
        kind, where = "ServiceDown", told
    elif told is None:
        kind, where = "ServiceUp", now
    else:
        kind, where, old_port, new_port = "ServiceMoved", now, told.port, now.port
    assert where is not None  # both None have the same place
    return PortEvent(
        type=kind,
        app_id=app_id,
        service=service,
        port=where.port,
        old_port=old_port,
        new_port=new_port,
        host=where.host,
        address=where.address,
        timestamp=now_ms(),
    )


def _place(location: ServiceLocation | None) -> tuple[str, int] | None:
    return None if location is None else (location.host, location.port)


class ServiceWatch:
    """The services one sidecar watches, each with the location it was last told."""

    def __init__(self, registry: LeaseSource, emit: Emit) -> None:
        self.registry = registry
        self._emit = emit
        self._lock = threading.Lock()
        self._told: dict[ServiceRef, ServiceLocation | None] = {}
        self._leases: list[Lease] = []  # the watched services' leases, as of `_version`
        self._version: object = None

    @property
    def watching(self) -> bool:
        return bool(self._told)

    def watch(self, app_id: str, service: str) -> list[ServiceLocation]:
        """Where the service is now (maybe nowhere yet); from now on `poll` tells of changes
        to the first of these, which is taken as told."""
        with self._lock:
            found = locate(self.registry, app_id, service)
            self._told[app_id, service] = found[0] if found else None
            self._version = None  # the cache lacks this service's leases: read on next poll
        return found

    def unwatch(self, app_id: str, service: str) -> None:
        with self._lock:
            self._told.pop((app_id, service), None)

    def poll(self, version: object = None) -> None:
        """One look, on each monitor pass: an event for each watched service whose best
        location is no longer the one told. The registry is read again only when its
        `version` (read now if not given) has changed; liveness is checked every time,
        because an owner that dies without a word changes nothing in the registry."""
        if not self._told:
            return  # nothing watched: no read, no lock (every pass of every sidecar)
        events: list[PortEvent] = []
        with self._lock:
            if version is None:
                version = self.registry.version()
            if version != self._version:
                watched = set(self._told)
                self._leases = [
                    lease
                    for lease in self.registry.leases()
                    if (lease.key.app_id, lease.service) in watched
                ]
                self._version = version
            for ref, told in self._told.items():
                found = locate(self.registry, *ref, self._leases)
                now = found[0] if found else None
                event = change(ref, told, now)
                if event is not None:
                    events.append(event)
                self._told[ref] = now  # a new state at the same place is told with the next
        for event in events:  # outside the lock: a listener may call back into us
            self._emit(event)
