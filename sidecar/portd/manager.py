"""PortManager: hands out ports to named services and keeps the registry honest.

The allocation order is the mission's: the call's preferred port, the plan's port, the port
the service had last time (sticky), the configured preferred port, the range, then one the OS
assigns. A port is usable only if it binds on every interface and no live lease holds it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Literal

from pydantic import ValidationError

from . import probe
from ._known_ports import BROWSER_RESTRICTED_PORTS
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
    wire_errors,
)
from .registry import Lease, LeaseKey, Registry, Transaction

log = logging.getLogger(__name__)

# Where a candidate came from: the call, the config/plan/history, our range walk, the OS.
Origin = Literal["asked", "named", "picked", "os"]

EventListener = Callable[[PortEvent], None]
PlanLookup = Callable[[str], int | None]


class Liveness:
    """Is a lease's owner alive? Asked for every lease a claim walks past, so answers are
    remembered: "dead" for good (a pid with that start time never comes back), "alive" for
    a second (an owner that just died costs at most a skipped port, never a double lease)."""

    TRUST_ALIVE = 1.0

    def __init__(self) -> None:
        self._dead: set[ProcessIdentity] = set()
        self._alive_until: dict[ProcessIdentity, float] = {}

    def __call__(self, ident: ProcessIdentity, fresh: bool = False) -> bool:
        if ident in self._dead:
            return False
        now = time.monotonic()
        if not fresh and self._alive_until.get(ident, 0.0) > now:
            return True
        if is_alive(ident):
            if len(self._alive_until) > 4096:
                self._alive_until.clear()
            self._alive_until[ident] = now + self.TRUST_ALIVE
            return True
        self._dead.add(ident)
        self._alive_until.pop(ident, None)
        return False


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
        self.alive = Liveness()

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
                errors = wire_errors(exc)
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
        port, _, _ = self._pick(self.registry, None, preferred, port_range)
        return port

    def allocate_port(self, service: str, preferred: int | None = None) -> int:
        key = self.key(service)
        with self._lock:
            held = self.registry.find(key)  # a read: only a new claim takes the write lock
            lease = (held and self.registry.renew(key)) or self._claim(key, preferred)
        self._taken.add(key)
        self.counters["allocations"] += 1
        log.info("allocated %s -> %d", service, lease.port)
        return lease.port

    def move(self, service: str) -> tuple[int, int]:
        """Give the service a new port, never its current one: (old, new)."""
        key = self.key(service)
        with self._lock:
            old = self.registry.find(key)
            if old is None:
                raise UnknownService(f"no lease for service {service!r}")
            new = self._claim(key, None, replacing=old)
        self._taken.add(key)
        return old.port, new.port

    def _claim(self, key: LeaseKey, preferred: int | None, replacing: Lease | None = None) -> Lease:
        """Pick a port outside the write lock (the bind probe and the owner checks are the
        slow part) and take it in a short transaction if nobody took it meanwhile. Having
        lost that race once, pick again inside the lock: under contention every sidecar
        eyes the same lowest free port, and retrying optimistically only repeats the race."""
        passed_over = {replacing.port} if replacing else set()
        port, seen, origin = self._pick(self.registry, key.service, preferred, None, passed_over)
        if origin == "picked" and replacing is None:
            walked = self._claim_from_range(key, port)
            if walked is not None:
                self._remember_wanted(preferred, walked.port)
                return walked
        try:
            with self.registry.transaction() as tx:
                if tx.lease_on(port) != seen:
                    passed_over.add(port)  # another process got there first
                    port, seen, _ = self._pick(tx, key.service, preferred, None, passed_over)
                if seen is not None:
                    log.info("reclaiming port %d from dead owner pid %d", port, seen.owner.pid)
                    tx.delete(port)
                if replacing is not None:
                    tx.delete(replacing.port)
                lease = tx.insert(port, key)
        except sqlite3.IntegrityError:
            # Another sidecar of this same app claimed the service a moment ago: share it.
            shared = self.registry.renew(key)
            if shared is None:
                raise
            return shared
        self._remember_wanted(preferred, lease.port)
        return lease

    def _claim_from_range(self, key: LeaseKey, start: int) -> Lease | None:
        """Take the first unleased port of the range from `start` in one atomic statement,
        then make sure it binds: a port some other program holds is given back and the walk
        goes on. None when the range has nothing left from `start` on."""
        low, high = self.config.port_range
        skip = (
            [p for p in range(low, high + 1) if _never_picked(p)]
            if high - low < 4096
            else [p for p in BROWSER_RESTRICTED_PORTS if low <= p <= high]
        )
        while start <= high:
            try:
                lease = self.registry.claim_first_unleased(key, start, high, skip)
            except sqlite3.IntegrityError:
                return self.registry.renew(key)  # this same app took the service meanwhile
            if lease is None:
                return None
            if probe.check_port(lease.port) == "free":
                return lease
            self.registry.release(key)  # a stranger listens there: give it back
            skip.append(lease.port)
            start = lease.port + 1
        return None

    def _remember_wanted(self, preferred: int | None, got: int) -> None:
        """Ports asked for but taken by someone else: announce them when they free up."""
        for port in {preferred, self.config.preferred_port} - {None, got, *self.wanted}:
            other = self.registry.lease_on(port)  # type: ignore[arg-type]
            if other is None or other.owner != self.owner:
                self.wanted.add(port)  # type: ignore[arg-type]

    def _pick(
        self,
        source: Registry | Transaction,
        service: str | None,
        preferred: int | None,
        port_range: tuple[int, int] | None,
        passed_over: set[int] | frozenset[int] = frozenset(),
    ) -> tuple[int, Lease | None, Origin]:
        """The first usable candidate, the (dead) lease it still carries, if any, and where
        it came from: read
        from the registry as it is, or inside a claim's transaction. Ports found unusable
        join a mutable `passed_over`, so that a second pick, inside the lock after a lost
        race, walks only what is left and holds the lock as briefly as it can."""
        if isinstance(source, Registry):
            with source.reading() as tx:
                return self._pick(tx, service, preferred, port_range, passed_over)
        for port, origin in self._candidates(source, service, preferred, port_range):
            if port not in passed_over:
                usable, seen = self._usable(source, port, origin)
                if usable:
                    return port, seen, origin
                if isinstance(passed_over, set) and origin != "os":
                    passed_over.add(port)
        raise self._exhausted(preferred, port_range)

    def _candidates(
        self,
        tx: Transaction,
        service: str | None,
        preferred: int | None,
        port_range: tuple[int, int] | None,
    ) -> Iterator[tuple[int, Origin]]:
        """Each candidate port and where it came from, in the mission's order."""
        if preferred is not None:
            yield preferred, "asked"
        if service is not None:
            if self.plan_port is not None and (planned := self.plan_port(service)):
                yield planned, "named"
            if (sticky := tx.last_port(self.config.app_id, service)) is not None:
                yield sticky, "named"
        if port_range is None:
            yield self.config.preferred_port, "named"
        low, high = port_range or self.config.port_range
        port = low
        while port <= high and (port := tx.next_unleased(port, high) or high + 1) <= high:
            yield port, "picked"
            port += 1
        for _ in range(self.config.max_retries):  # 0: never leave the range
            yield probe.os_assigned_port(), "os"

    def _usable(self, tx: Transaction, port: int, origin: Origin) -> tuple[bool, Lease | None]:
        # Ports named by number (asked for, planned, sticky, configured) may be ones browsers
        # refuse; ports we pick ourselves never are.
        if origin in ("picked", "os") and (
            probe.is_browser_restricted(port) or probe.excluded_range_of(port)
        ):
            return False, None
        # The range walk yields only ports it found unleased in this same snapshot.
        lease = None if origin == "picked" else tx.lease_on(port)
        if lease is not None:
            if lease.owner == self.owner:
                return False, None  # another service of this very app
            # The port the caller asked for deserves a fresh look at its owner.
            alive, fresh = self.alive, origin == "asked"
            if alive(lease.owner, fresh) or any(alive(h, fresh) for h in lease.holders):
                return False, None
        status = probe.check_port(port)
        if status == "denied":
            log.warning("port %d skipped: permission denied (EACCES)%s", port, _excluded_note(port))
        return status == "free", lease

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
        with self.registry.reading() as tx:
            lease = tx.find(self.key(service))
        if lease is None:
            raise UnknownService(f"no lease for service {service!r}")
        return lease

    def get_port_info(self, service: str) -> PortInfo:
        lease = self.lease_of(service)
        return self.port_info(lease, probe.listening_pids({lease.port}))

    def get_port_stats(self) -> dict[str, PortInfo]:
        leases = self.registry.leases(self.owner, self.config.app_id)
        pids = probe.listening_pids({lease.port for lease in leases})
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


def _never_picked(port: int) -> bool:
    return probe.is_browser_restricted(port) or probe.excluded_range_of(port) is not None


def _excluded_note(port: int) -> str:
    excluded = probe.excluded_range_of(port)
    return f" (in the Windows excluded range {excluded[0]}-{excluded[1]})" if excluded else ""
