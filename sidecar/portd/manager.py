"""PortManager: hands out ports to named services and keeps the registry honest.

The allocation order is the mission's: the call's preferred port, the plan's port, the port
the service had last time (sticky), the configured preferred port, the range, then one the OS
assigns. A port is usable only if it binds on every interface and no live lease holds it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

from pydantic import ValidationError

from . import probe
from .process import ProcessIdentity, descends_from, describe, is_alive
from .protocol.errors import InvalidParams, NoPortAvailable, PermissionDenied, UnknownService
from .protocol.models import (
    LeaseState,
    PortConfig,
    PortConfigUpdate,
    PortEvent,
    PortInfo,
    PortOwner,
    Stats,
)
from .registry import Lease, LeaseKey, Registry, Transaction

log = logging.getLogger(__name__)

EventListener = Callable[[PortEvent], None]
PlanLookup = Callable[[str], int | None]


class Liveness:
    """Is a process alive, asked at most once per pid within one pass."""

    def __init__(self) -> None:
        self._seen: dict[ProcessIdentity, bool] = {}

    def __call__(self, ident: ProcessIdentity) -> bool:
        if ident not in self._seen:
            self._seen[ident] = is_alive(ident)
        return self._seen[ident]


class PortManager:
    def __init__(
        self,
        registry: Registry,
        owner: ProcessIdentity,
        config: PortConfig | None = None,
        plan_port: PlanLookup | None = None,
    ) -> None:
        self.registry = registry
        self.owner = owner
        self.config = config or PortConfig()
        self.plan_port = plan_port
        self.counters: Counter[str] = Counter()
        self._taken: set[LeaseKey] = set()  # what this sidecar must release on a clean exit
        self.wanted: set[int] = set()  # preferred ports that were taken: announce when free
        self._listeners: list[EventListener] = []
        self._lock = threading.RLock()
        self._started = time.monotonic()

    # --- events ----------------------------------------------------------------------

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, event: PortEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    # --- configuration ---------------------------------------------------------------

    def init_port_manager(self, update: PortConfigUpdate | None = None) -> PortConfig:
        if update is not None:
            merged = self.config.model_dump() | update.model_dump(exclude_unset=True)
            try:
                self.config = PortConfig.model_validate(merged)
            except ValidationError as exc:  # e.g. a backwards range: the caller's mistake
                errors = exc.errors(include_url=False, include_context=False, include_input=False)
                for error in errors:
                    error["loc"] = ("config", *error["loc"])
                raise InvalidParams("Invalid params for init_port_manager", errors) from None
        return self.config

    def key(self, service: str) -> LeaseKey:
        return LeaseKey(self.owner, self.config.app_id, service)

    # --- allocation ------------------------------------------------------------------

    def find_available_port(
        self, preferred: int | None = None, port_range: tuple[int, int] | None = None
    ) -> int:
        """A port that is usable now; nothing is leased, so it may be gone by the time the
        caller binds it. `allocate_port` is the race-free way."""
        with self.registry.snapshot() as tx:
            alive = Liveness()
            for port, by_number in self._candidates(tx, None, preferred, port_range):
                if self._usable(tx, port, by_number, alive, reclaim=False):
                    return port
        raise self._exhausted(preferred, port_range)

    def allocate_port(self, service: str, preferred: int | None = None) -> int:
        key = self.key(service)
        with self._lock, self.registry.transaction() as tx:
            lease = tx.find(key)
            if lease is not None:
                tx.renew(lease)
            else:
                lease = self._claim(tx, key, preferred)
                for port in {preferred, self.config.preferred_port} - {None, lease.port}:
                    if (other := tx.lease_on(port)) is None or other.owner != self.owner:  # type: ignore[arg-type]
                        self.wanted.add(port)  # type: ignore[arg-type]
        self._taken.add(key)
        self.counters["allocations"] += 1
        log.info("allocated %s -> %d", service, lease.port)
        return lease.port

    def move(self, service: str) -> tuple[int, int]:
        """Give the service a new port, never its current one: (old, new)."""
        key = self.key(service)
        with self._lock, self.registry.transaction() as tx:
            old = tx.find(key)
            if old is None:
                raise UnknownService(f"no lease for service {service!r}")
            tx.delete(old.port)
            new = self._claim(tx, key, None, avoid=old.port)
        self._taken.add(key)
        return old.port, new.port

    def _claim(
        self, tx: Transaction, key: LeaseKey, preferred: int | None, avoid: int = 0
    ) -> Lease:
        alive = Liveness()
        for port, by_number in self._candidates(tx, key.service, preferred, None):
            if port != avoid and self._usable(tx, port, by_number, alive, reclaim=True):
                return tx.insert(port, key)
        raise self._exhausted(preferred, None)

    def _candidates(
        self,
        tx: Transaction,
        service: str | None,
        preferred: int | None,
        port_range: tuple[int, int] | None,
    ) -> Iterator[tuple[int, bool]]:
        """(port, asked for by number). Ports asked for by number may be ones browsers
        refuse; ports we pick ourselves never are."""
        if preferred is not None:
            yield preferred, True
        if service is not None:
            if self.plan_port is not None and (planned := self.plan_port(service)):
                yield planned, True
            if (sticky := tx.last_port(self.config.app_id, service)) is not None:
                yield sticky, True
        if port_range is None:
            yield self.config.preferred_port, True
        low, high = port_range or self.config.port_range
        port = low
        while port <= high and (port := tx.next_unleased(port, high) or high + 1) <= high:
            yield port, False
            port += 1
        for _ in range(self.config.max_retries):  # 0: never leave the range
            yield probe.os_assigned_port(), False

    def _usable(
        self, tx: Transaction, port: int, by_number: bool, alive: Liveness, *, reclaim: bool
    ) -> bool:
        if not by_number and (probe.is_browser_restricted(port) or probe.excluded_range_of(port)):
            return False
        lease = tx.lease_on(port)
        if lease is not None:
            if alive(lease.owner) or any(alive(h) for h in lease.holders):
                return False
            if reclaim:
                log.info("reclaiming port %d from dead owner pid %d", port, lease.owner.pid)
                tx.delete(port)
        status = probe.check_port(port)
        if status == "denied":
            log.warning("port %d skipped: permission denied (EACCES)%s", port, _excluded_note(port))
        return status == "free"

    def _exhausted(
        self, preferred: int | None, port_range: tuple[int, int] | None
    ) -> NoPortAvailable:
        low, high = port_range or self.config.port_range
        asked = f"port {preferred}, " if preferred else ""
        return NoPortAvailable(
            f"no free port: tried {asked}the range {low}-{high} and "
            f"{self.config.max_retries} OS-assigned ports"
        )

    # --- release ---------------------------------------------------------------------

    def release_port(self, service: str) -> None:
        key = self.key(service)
        self._taken.discard(key)
        if self.registry.release(key) is not None:
            self.counters["releases"] += 1
            log.info("released %s", service)

    def add_holder(self, lease: Lease, holder: ProcessIdentity) -> None:
        with self.registry.transaction() as tx:
            current = tx.lease_on(lease.port)
            if current is not None and current.key == lease.key and holder not in current.holders:
                tx.set_holders(lease.port, (*current.holders, holder))

    def forget(self, lease: Lease) -> None:
        """Drop a lease whatever its owner: the orphan it recorded has been ended."""
        with self.registry.transaction() as tx:
            current = tx.lease_on(lease.port)
            if current is not None and current.key == lease.key:
                tx.delete(lease.port)

    def release_taken(self) -> None:
        """On exit: end the leases this sidecar took, except those that are becoming orphans
        (the app is gone but a server it started still listens): those stay on record so
        that `portd who` can name them and `reclaim_orphan` can end them."""
        owner_alive = is_alive(self.owner)
        for key in list(self._taken):
            with self.registry.transaction() as tx:
                lease = tx.find(key)
                if lease is None:
                    continue
                if not owner_alive and any(is_alive(h) for h in lease.holders):
                    log.info("keeping %s on port %d as an orphan", key.service, lease.port)
                    continue
                tx.delete(lease.port)
            self._taken.discard(key)

    # --- queries ---------------------------------------------------------------------

    def is_port_available(self, port: int, host: str | None = None) -> bool:
        status = probe.check_port(port, host)
        if status == "denied":
            raise PermissionDenied(f"port {port}: permission denied (EACCES){_excluded_note(port)}")
        if status != "free":
            return False
        lease = self.registry.lease_on(port)
        return lease is None or not (is_alive(lease.owner) or any(map(is_alive, lease.holders)))

    def lease_of(self, service: str) -> Lease:
        with self.registry.snapshot() as tx:
            lease = tx.find(self.key(service))
        if lease is None:
            raise UnknownService(f"no lease for service {service!r}")
        return lease

    def get_port_info(self, service: str) -> PortInfo:
        lease = self.lease_of(service)
        return self.port_info(lease, self._pids_on({lease.port}))

    def get_port_stats(self) -> dict[str, PortInfo]:
        leases = self.registry.leases(self.owner, self.config.app_id)
        pids = self._pids_on({lease.port for lease in leases})
        return {lease.service: self.port_info(lease, pids) for lease in leases}

    def get_port_owner(self, port: int) -> PortOwner | None:
        pids = sorted({s.pid or 0 for s in probe.listeners_on(port)})
        lease = self.registry.lease_on(port)
        if not pids and lease is None:
            return None
        info = self.port_info(lease, {port: pids}) if lease else None
        proc = next((p for p in map(describe, pids) if p is not None), None)
        if proc is None:
            return PortOwner(
                port=port, lease=info, orphan=info is not None and info.state == "orphan"
            )
        return PortOwner(
            port=port,
            pid=proc.pid,
            name=proc.name,
            user=proc.user,
            cmdline=proc.cmdline,
            started_at=int(proc.started * 1000),
            lease=info,
            orphan=info is not None and info.state == "orphan",
        )

    def get_stats(self) -> Stats:
        c = self.counters
        return Stats(
            allocations=c["allocations"],
            releases=c["releases"],
            conflicts=c["conflicts"],
            resolutions=c["resolutions"],
            health_checks=c["health_checks"],
            uptime=round(time.monotonic() - self._started, 3),
        )

    # --- lease state -----------------------------------------------------------------

    def _pids_on(self, ports: set[int]) -> dict[int, list[int]]:
        listeners = probe.with_pids(s for s in probe.listening_sockets() if s.port in ports)
        found: dict[int, list[int]] = {}
        for s in listeners:
            # A socket whose pid we cannot see (another user's) is nobody's rightful holder.
            pid = s.pid or 0
            if pid not in found.setdefault(s.port, []):
                found[s.port].append(pid)
        return found

    def is_rightful(self, lease: Lease, pid: int) -> bool:
        if any(h.pid == pid and is_alive(h) for h in lease.holders):
            return True
        return is_alive(lease.owner) and descends_from(pid, lease.owner.pid)

    def state_of(self, lease: Lease, pids: list[int] | None) -> LeaseState:
        if not is_alive(lease.owner):
            return "orphan" if any(is_alive(h) for h in lease.holders) else "leased"
        if not pids:  # nobody listens (None: not looked, []: looked and found no one)
            return "leased"
        if all(self.is_rightful(lease, pid) for pid in pids):
            return "listening"
        return "conflict"

    def port_info(self, lease: Lease, pids_by_port: dict[int, list[int]]) -> PortInfo:
        return PortInfo(
            service=lease.service,
            port=lease.port,
            app_id=lease.key.app_id,
            owner_pid=lease.owner.pid,
            holder_pids=[h.pid for h in lease.holders],
            state=self.state_of(lease, pids_by_port.get(lease.port)),
            allocated_at=lease.created_at,
        )


def _excluded_note(port: int) -> str:
    excluded = probe.excluded_range_of(port)
    return f" (in the Windows excluded range {excluded[0]}-{excluded[1]})" if excluded else ""
