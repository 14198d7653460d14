"""PortManager: hands out ports to named services and keeps the registry honest.

It tries ports in the mission's order (`candidates`); a port is usable only if it binds on
every interface and no live lease holds it. What it answers about leases is `LeaseQueries`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from . import probe
from .candidates import Origin, PlanLookup, candidates
from .lease_queries import LeaseQueries
from .process import Liveness, ProcessIdentity, is_alive
from .protocol.defaults import AllocationConfig
from .protocol.errors import (
    InvalidParams,
    NoPortAvailable,
    RegistryUnavailable,
    UnknownService,
    wire_errors,
)
from .registry import Lease, LeaseKey
from .registry_backend import RegistryBackend, RegistryTransaction

# The models (pydantic) load on first use: allocation needs none of them, and a sidecar's
# first answers are allocations.
if TYPE_CHECKING:
    from .protocol.models import PortConfig, PortConfigUpdate, PortEvent

log = logging.getLogger(__name__)

EventListener = Callable[["PortEvent"], None]


class PortManager(LeaseQueries):
    def __init__(
        self,
        registry: RegistryBackend,
        owner: ProcessIdentity,
        config: PortConfig | AllocationConfig | None = None,
        plan_port: PlanLookup | None = None,
    ) -> None:
        self.registry = registry
        self.owner = owner
        if isinstance(config, AllocationConfig):
            self.allocation, self._config = config, None
        else:
            self.allocation = AllocationConfig.of(config) if config else AllocationConfig()
            self._config = config
        self.plan_port = plan_port
        self.counters: Counter[str] = Counter()
        self._taken: dict[LeaseKey, int] = {}  # leased here, to release on a clean exit
        self._given_back: dict[LeaseKey, int] = {}  # released here: their port of last time
        self._keys: dict[tuple[str, str], LeaseKey] = {}  # (app id, service): built once
        self.wanted: set[int] = set()  # preferred ports that were taken: announce when free
        self._listeners: list[EventListener] = []
        self._lock = threading.RLock()
        self._started = time.monotonic()
        self.alive = Liveness()
        # Where the next range walk starts: after the last port this sidecar took from the
        # range, or at a lower one it gave back. Walking from the bottom every time costs
        # a step per lease below (a full range of 1000 made every claim ~130 us of SQLite);
        # the walk wraps around, so a port freed lower down is still found when needed.
        self._range_resume = 0

    # --- events ----------------------------------------------------------------------

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, event: PortEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    # --- configuration ---------------------------------------------------------------

    @property
    def config(self) -> PortConfig:
        """The whole configuration, built on first use from `allocation`, which is all that
        allocating reads."""
        with self._lock:
            if self._config is None:
                from .protocol.models import PortConfig

                self._config = PortConfig(**self.allocation.as_fields())
            return self._config

    def init_port_manager(self, update: PortConfigUpdate | None = None) -> PortConfig:
        if update is None:
            return self.config
        from pydantic import ValidationError

        from .protocol.models import PortConfig

        with self._lock:
            merged = self.config.model_dump() | update.model_dump(exclude_unset=True)
            try:
                config = PortConfig.model_validate(merged)
            except ValidationError as exc:  # e.g. a backwards range: the caller's mistake
                errors = wire_errors(exc)
                for error in errors:
                    error["loc"] = ("config", *error["loc"])
                raise InvalidParams("Invalid params for init_port_manager", errors) from None
            self._config, self.allocation = config, AllocationConfig.of(config)
            return config

    def key(self, service: str) -> LeaseKey:
        app_id = self.allocation.app_id
        key = self._keys.get((app_id, service))
        if key is None:
            if len(self._keys) >= 1024:  # any name a client sends: keep the cache bounded
                self._keys.clear()
            key = self._keys[app_id, service] = LeaseKey(self.owner, app_id, service)
        return key

    # --- allocation ------------------------------------------------------------------

    def find_available_port(
        self, preferred: int | None = None, port_range: tuple[int, int] | None = None
    ) -> int:
        """A port that is usable now; nothing is leased, so it may be gone by the time the
        caller binds it. `allocate_port` is the race-free way."""
        with self.registry.reading() as tx:
            port, _, _ = self._pick(tx, None, preferred, port_range)
        return port

    def allocate_port(self, service: str, preferred: int | None = None) -> int:
        key = self.key(service)
        with self._lock:
            # A lease this sidecar took is renewed. Any other service is most likely new, so
            # it is claimed at once; if another sidecar of this app holds it after all, the
            # claim breaks the registry's one-lease-per-key rule and the lease is shared.
            held = key in self._taken and self.registry.find(key)
            lease = (
                (held and self.registry.renew(key))
                or self._claim_given_back(key, preferred)
                or self._claim(key, preferred)
            )
            self._taken[key] = lease.port
        self.counters["allocations"] += 1
        log.info("allocated %s -> %d", service, lease.port)
        return lease.port

    def _claim_given_back(self, key: LeaseKey, preferred: int | None) -> Lease | None:
        """A service that this sidecar released and now allocates again, asking for no port
        in particular and planned on none, gets its port of last time back in one statement
        if nobody leases it. Anything else (None) walks the allocation order in `_claim`."""
        port = self._given_back.pop(key, None)
        if port is None or preferred is not None:
            return None
        if self.plan_port is not None and self.plan_port(key.service):
            return None
        try:
            lease = self.registry.claim(key, port)
        except sqlite3.IntegrityError:
            return None  # another sidecar of this app holds the service
        if lease is None:
            return None
        if probe.check_port(lease.port) != "free":
            self.registry.release(key)  # someone else listens there now
            return None
        self._remember_wanted(preferred, lease.port)
        return lease

    def move(self, service: str) -> tuple[int, int]:
        """Give the service a new port, never its current one: (old, new)."""
        key = self.key(service)
        with self._lock:
            old = self.registry.find(key)
            if old is None:
                raise UnknownService(f"no lease for service {service!r}")
            new = self._claim(key, None, replacing=old)
            self._taken[key] = new.port
        return old.port, new.port

    def _claim(self, key: LeaseKey, preferred: int | None, replacing: Lease | None = None) -> Lease:
        """Pick a port outside the write lock (the bind probe and the owner checks are the
        slow part) and take it in one statement if it is still unleased. A port that needs
        more (a dead owner's lease to clear, the old port to give up) or that someone took
        meanwhile goes through a short transaction, which picks again inside the lock:
        under contention every sidecar eyes the same lowest free port, and retrying
        optimistically only repeats the race."""
        passed_over = {replacing.port} if replacing else set()
        with self.registry.reading() as tx:
            port, seen, origin = self._pick(
                tx, key.service, preferred, None, passed_over, claiming=replacing is None
            )
        if replacing is None and seen is None:
            try:
                taken = (
                    self._claim_from_range(key, port, passed_over)
                    if origin == "range"
                    else self.registry.claim(key, port)
                )
            except sqlite3.IntegrityError:
                # Another sidecar of this same app claimed the service a moment ago: share
                # it (or, if it is gone again already, claim it the careful way below).
                taken = self.registry.renew(key)
            if taken is not None:
                self._remember_wanted(preferred, taken.port)
                return taken

        def take(tx: RegistryTransaction) -> tuple[Lease, Lease | None]:
            # Run again from the start if etcd finds that someone wrote what it read.
            nonlocal port, seen
            # The range is full (or all strangers'), or someone got there first.
            if origin == "range" or port in passed_over or tx.lease_on(port) != seen:
                passed_over.add(port)
                port, seen, _ = self._pick(tx, key.service, preferred, None, passed_over)
            if seen is not None:
                tx.delete(port)
            if replacing is not None:
                tx.delete(replacing.port)
            return tx.insert(port, key), seen

        try:
            lease, reclaimed = self.registry.run_transaction(take)
        except sqlite3.IntegrityError:
            shared = self.registry.renew(key)
            if shared is None:
                raise
            return shared
        if reclaimed is not None:
            log.info("reclaimed port %d from dead owner pid %d", lease.port, reclaimed.owner.pid)
        self._remember_wanted(preferred, lease.port)
        return lease

    def _claim_from_range(self, key: LeaseKey, resume: int, strangers: set[int]) -> Lease | None:
        """Take the first unleased port of the range from `resume` (then, wrapping around,
        from its start) in one atomic statement, and make sure it binds: a port some
        other program holds is given back, added to `strangers`, and the walk goes on.
        None when the range has nothing left."""
        low, high = self.allocation.port_range
        skip = [*probe.never_picked_in(low, high)]
        for start, last in ((resume, high), (low, resume - 1)):
            while start <= last:
                lease = self.registry.claim_first_unleased(key, start, last, skip)
                if lease is None:
                    break
                if probe.check_port(lease.port) == "free":
                    self._range_resume = lease.port + 1
                    return lease
                self.registry.release(key)  # a stranger listens there: give it back
                skip.append(lease.port)
                strangers.add(lease.port)
                start = lease.port + 1
        return None

    def _remember_wanted(self, preferred: int | None, got: int) -> None:
        """Ports asked for but taken by someone else: announce them when they free up."""
        configured = self.allocation.preferred_port
        if preferred is None and (got == configured or configured in self.wanted):
            return  # the common case, on every claim: nothing to look up
        for port in {preferred, configured} - {None, got, *self.wanted}:
            other = self.registry.lease_on(port)  # type: ignore[arg-type]
            if other is None or other.owner != self.owner:
                self.wanted.add(port)  # type: ignore[arg-type]

    def _pick(
        self,
        tx: RegistryTransaction,
        service: str | None,
        preferred: int | None,
        port_range: tuple[int, int] | None,
        passed_over: set[int] | frozenset[int] = frozenset(),
        claiming: bool = False,
    ) -> tuple[int, Lease | None, Origin]:
        """The first usable candidate, the (dead) lease it still carries, if any, and where
        it came from: read from a snapshot of the registry, or inside a claim's transaction.
        Ports found unusable join a mutable `passed_over`, so that a second pick, inside
        the lock after a lost race, walks only what is left and holds the lock as briefly
        as it can. When `claiming`, the range comes as one candidate that the claim
        searches itself (and bind-checks what it gets)."""
        resume = self._range_resume if port_range is None else None
        found = candidates(
            tx, self.allocation, self.owner, self.plan_port, resume, service, preferred,
            port_range, claiming,
        )  # fmt: skip
        for port, origin in found:
            if port not in passed_over or origin == "range":
                usable, seen = self._usable(tx, port, origin)
                if usable:
                    return port, seen, origin
                if isinstance(passed_over, set) and origin != "os":
                    passed_over.add(port)
        raise self._exhausted(preferred, port_range)

    def _usable(
        self, tx: RegistryTransaction, port: int, origin: Origin
    ) -> tuple[bool, Lease | None]:
        if origin == "range":
            return True, None
        # Ports named by number (asked for, planned, sticky, configured) may be ones browsers
        # refuse; ports we pick ourselves never are.
        if origin in ("picked", "stale", "os") and (
            probe.is_browser_restricted(port) or probe.excluded_range_of(port)
        ):
            return False, None
        # The range walk yields only ports it found unleased in this same snapshot.
        lease = None if origin == "picked" else tx.lease_on(port)
        if lease is not None:
            if lease.owner == self.owner or not self.registry.is_local(lease):
                return False, None  # another service of this app, or another host's lease
            # The port the caller asked for deserves a fresh look at its owner.
            alive, fresh = self.alive, origin == "asked"
            if alive(lease.owner, fresh) or any(alive(h, fresh) for h in lease.holders):
                return False, None
        status = probe.check_port(port)
        if status == "denied":
            log.warning(
                "port %d skipped: permission denied (EACCES)%s", port, probe.excluded_note(port)
            )
        return status == "free", lease

    def _exhausted(
        self, preferred: int | None, port_range: tuple[int, int] | None
    ) -> NoPortAvailable:
        low, high = port_range or self.allocation.port_range
        asked = f"port {preferred}, " if preferred else ""
        return NoPortAvailable(
            f"no free port: tried {asked}the range {low}-{high} and "
            f"{self.allocation.max_retries} OS-assigned ports"
        )

    # --- release ---------------------------------------------------------------------

    def release_port(self, service: str) -> None:
        key = self.key(service)
        port = self._taken.pop(key, None)
        if self.registry.release(key):
            if port is not None:  # ours (it may be another sidecar's lease of this app)
                self._given_back[key] = port
                self._range_resume = min(self._range_resume, port)
            self.counters["releases"] += 1
            log.info("released %s", service)

    def add_holder(self, lease: Lease, holder: ProcessIdentity) -> None:
        def add(tx: RegistryTransaction) -> None:
            current = tx.lease_on(lease.port)
            if current is not None and current.key == lease.key and holder not in current.holders:
                tx.set_holders(lease.port, (*current.holders, holder))

        self.registry.run_transaction(add)

    def forget(self, lease: Lease) -> None:
        """Drop a lease whatever its owner: the orphan it recorded has been ended."""

        def drop(tx: RegistryTransaction) -> None:
            current = tx.lease_on(lease.port)
            if current is not None and current.key == lease.key:
                tx.delete(lease.port)

        self.registry.run_transaction(drop)

    def release_taken(self) -> None:
        """On exit: end the leases this sidecar took, except those that are becoming orphans
        (the app is gone but a server it started still listens): those stay on record so
        that `portd who` can name them and `reclaim_orphan` can end them."""
        owner_alive = is_alive(self.owner)
        with self._lock:  # a call still being answered finishes first, or finds us done
            self._release_taken(owner_alive)

    def _release_taken(self, owner_alive: bool) -> None:
        def release(tx: RegistryTransaction, *, key: LeaseKey) -> Lease | None:
            """The lease kept as an orphan, if it is one."""
            lease = tx.find(key)
            if lease is None:
                return None
            if not owner_alive and any(is_alive(h) for h in lease.holders):
                return lease
            tx.delete(lease.port)
            return None

        for key in list(self._taken):
            try:
                orphan = self.registry.run_transaction(partial(release, key=key))
                if orphan is not None:
                    log.info("keeping %s on port %d as an orphan", key.service, orphan.port)
                    continue
            except RegistryUnavailable:
                # Logged by the registry. The leases stay on record, owned by the app: the
                # next claim after the app is gone reclaims them.
                log.warning("%d lease(s) not released: the registry fails", len(self._taken))
                return
            del self._taken[key]
