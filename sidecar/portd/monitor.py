"""The watch on what portd hands out: conflicts, orphans, and ports that free up.

One pass reads the listening sockets once and compares them with this app's leases. A
socket is mapped to its pid only when the listener on a leased port changed since the last
pass, because that mapping (a walk of /proc) costs more than the whole rest of the pass.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import psutil

from . import probe
from .discovery import ServiceWatch, resolve
from .health import HealthChecker
from .lease_state import is_rightful
from .manager import PortManager
from .process import ProcessIdentity, identify, is_alive, is_same_user, user_of
from .protocol.errors import InvalidParams, NoPortAvailable, PermissionDenied, PortdError
from .protocol.models import PortEvent, PortOwner, ServiceLocation
from .registry import Lease, now_ms

log = logging.getLogger(__name__)

ORPHAN_GRACE = 3.0  # seconds between SIGTERM and SIGKILL when reclaiming an orphan
# Longest sleep between looks at the config, so that a shorter interval set by
# `init_port_manager` applies now, not after the old (default 30 s) interval has run out.
RECHECK_INTERVAL = 0.5

# A listening socket as one pass sees it. Over netlink its pid is None (found later, and only
# when needed); psutil gives the pid and no inode.
_Socket = probe.Listener


@dataclass
class _PortView:
    """What was listening on a leased port at the last pass, and what we made of it."""

    sockets: frozenset[_Socket]
    lease: object  # the lease key the verdict was made for
    foreign: tuple[int, ...] = ()
    unresolved: bool = False  # a socket of ours whose process we could not find


@dataclass
class ScanState:
    views: dict[int, _PortView] = field(default_factory=dict)
    reported: set[tuple[str, int]] = field(default_factory=set)  # conflicts already sent
    watched: set[int] = field(default_factory=set)  # taken ports whose freeing we announce


class Monitor:
    def __init__(self, manager: PortManager, health: HealthChecker) -> None:
        self.manager = manager
        self.health = health
        self.state = ScanState()
        self._lock = threading.Lock()
        self._leases: list[Lease] = []
        self._leases_version: object = None
        self._registry_version: object = None  # as the last pass read it
        # The services this sidecar watches (`watch_service`), looked at after each scan.
        self.services = ServiceWatch(manager.registry, manager.emit)

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(self._every, "conflict_scan_interval", self._pass)
            group.start_soon(self._every, "health_check_interval", self.health.perform_health_check)

    async def _every(self, interval_name: str, work: Callable[[], object]) -> None:
        """Run `work` every `interval_name` seconds of the config in force: the interval is
        read again while waiting, so a change applies at once."""
        last = anyio.current_time()
        refused: str | None = None  # the registry's refusal, logged once until it changes
        while True:
            left = last + getattr(self.manager.config, interval_name) - anyio.current_time()
            if left > 0:
                await anyio.sleep(min(left, RECHECK_INTERVAL))
                continue
            try:
                await anyio.to_thread.run_sync(work)
                refused = None
            except PortdError as exc:  # a full disk, say: health reports it, no trace needed
                if exc.message != refused:
                    log.warning("periodic %s skipped: %s", interval_name, exc.message)
                refused = exc.message
            except Exception:
                log.exception("periodic %s failed", interval_name)
            last = anyio.current_time()

    def _pass(self) -> None:
        self.scan()
        if self.services.watching:
            # The scan has just read the registry's version: one read of it a pass (for
            # etcd, a request), not two.
            self.services.poll(self._registry_version)

    # --- conflicts -----------------------------------------------------------------------

    def scan(self) -> list[str]:
        """One pass; returns the services left in conflict (with auto_resolve, none)."""
        with self._lock:
            return self._scan()

    def _scan(self) -> list[str]:
        leases = self._current_leases()
        ports = {lease.port for lease in leases}
        # Take the ports allocate_port wanted but could not have as one set: the loop thread
        # may add more meanwhile, and those wait for the next pass rather than being lost.
        wanted = set(self.manager.wanted)
        self.manager.wanted -= wanted
        self.state.watched |= wanted
        by_port: dict[int, set[_Socket]] = {}
        for sock in probe.listening_sockets():
            if sock.port in ports or sock.port in self.state.watched:
                by_port.setdefault(sock.port, set()).add(sock)
        self._announce_freed(by_port)
        now: list[tuple[Lease, frozenset[_Socket]]] = []
        changed: list[tuple[Lease, frozenset[_Socket]]] = []
        views, nothing = self.state.views, frozenset[_Socket]()
        for lease in leases:  # inline: this loop runs once per lease on every pass
            found = by_port.get(lease.port)
            sockets = frozenset(found) if found else nothing
            now.append((lease, sockets))
            view = views.get(lease.port)
            if (
                view is None
                or view.unresolved
                or view.sockets != sockets
                or (view.lease is not lease.key and view.lease != lease.key)
            ):
                changed.append((lease, sockets))  # judge again: map its sockets to pids
        if changed:
            # One walk of /proc for every socket that changed, not one per lease.
            pids = _pids_of({sock for _, sockets in changed for sock in sockets})
            for lease, sockets in changed:
                self._judge(lease, sockets, pids)
        in_conflict = []
        reported = self.state.reported
        for lease, _ in now:
            foreign = views[lease.port].foreign
            if not foreign:
                if reported and (lease.service, lease.port) in reported:
                    self._on_clear(lease)
            elif not self._on_conflict(lease, foreign):
                in_conflict.append(lease.service)
        return in_conflict

    def _current_leases(self) -> list[Lease]:
        app_id = self.manager.config.app_id
        self._registry_version = self.manager.registry.version()
        version = (self._registry_version, app_id)
        if version != self._leases_version:
            self._leases = self.manager.registry.leases(self.manager.owner, app_id)
            self._leases_version = version
            ports = {lease.port for lease in self._leases}
            for port in set(self.state.views) - ports:
                del self.state.views[port]  # no longer ours: forget what we made of it
        return self._leases

    def _judge(
        self, lease: Lease, sockets: frozenset[_Socket], pids: dict[_Socket, int | None]
    ) -> None:
        """Decide which listeners on the lease are strangers, and record the rightful ones."""
        view = self.state.views.get(lease.port)
        foreign: set[int] = set()
        unresolved = False
        for sock in sockets:
            pid, uid = pids.get(sock), sock.uid
            if pid:
                if is_rightful(lease, pid):
                    self._record_holder(lease, pid)
                else:
                    foreign.add(pid)
            elif uid is None or uid != os.getuid():
                foreign.add(0)  # another user's socket: never a rightful holder
            elif view is not None and view.unresolved and view.sockets == sockets:
                foreign.add(0)  # ours, yet no process of ours holds it, two passes running
            else:
                # Ours but its process was not found: one that is exiting, or forking, as
                # we looked. Decide on the next pass instead of moving a healthy port.
                unresolved = True
        if unresolved and view is not None:
            foreign.update(view.foreign)  # until then, the last verdict stands
        verdict = tuple(sorted(foreign))
        self.state.views[lease.port] = _PortView(sockets, lease.key, verdict, unresolved)

    def _record_holder(self, lease: Lease, pid: int) -> None:
        """Remember a rightful listener, so that if the app dies while it keeps the port we
        can tell an orphan (yesterday's dev server) from a stranger."""
        ident = identify(pid)
        if ident is None or any(h.pid == pid for h in lease.holders):
            return
        self.manager.add_holder(lease, ident)

    def _on_clear(self, lease: Lease) -> None:
        """Nothing foreign listens on the lease: if it was in conflict, its port is free
        for the service again, and the app (told of the conflict) hears so once."""
        key = (lease.service, lease.port)
        if key not in self.state.reported:
            return
        self.state.reported.discard(key)
        self.state.watched.discard(lease.port)
        log.info("conflict over: %s's port %d is free again", lease.service, lease.port)
        self.manager.emit(
            PortEvent(
                type="PortAvailable", port=lease.port, service=lease.service, timestamp=now_ms()
            )
        )

    def _on_conflict(self, lease: Lease, foreign: tuple[int, ...]) -> bool:
        """Handle a foreign listener on a lease; True if it was resolved."""
        key = (lease.service, lease.port)
        if key in self.state.reported:
            return False
        self.manager.counters["conflicts"] += 1
        self.state.watched.add(lease.port)
        log.warning(
            "conflict: %s's port %d is held by pid %s",
            lease.service,
            lease.port,
            ", ".join(map(str, foreign)),
        )
        if self.manager.config.auto_resolve:
            try:
                self._move(lease.service)
                return True
            except NoPortAvailable as exc:
                # Nowhere to go: report the conflict (once) and let the app decide.
                log.warning("cannot move %s: %s", lease.service, exc.message)
        self.state.reported.add(key)
        self.manager.emit(
            PortEvent(
                type="PortConflict",
                port=lease.port,
                service=lease.service,
                error=f"port {lease.port} is held by pid {foreign[0]}",
                timestamp=now_ms(),
            )
        )
        return False

    def _move(self, service: str) -> int:
        old, new = self.manager.move(service)
        self.state.views.pop(old, None)
        self.state.reported -= {r for r in self.state.reported if r[0] == service}
        if _taken(old):
            self.state.watched.add(old)  # say so when it frees (not if it already is free)
        self.manager.counters["resolutions"] += 1
        self.manager.emit(
            PortEvent(
                type="PortChanged", old_port=old, new_port=new, service=service, timestamp=now_ms()
            )
        )
        return new

    def _announce_freed(self, by_port: dict[int, set[_Socket]]) -> None:
        for port in sorted(self.state.watched):
            if port not in by_port and self.manager.registry.lease_on(port) is None:
                self.state.watched.discard(port)
                self.manager.emit(PortEvent(type="PortAvailable", port=port, timestamp=now_ms()))

    def check_port_conflicts(self) -> list[str]:
        return self.scan()

    def handle_port_conflict(self, service: str) -> int:
        with self._lock:
            return self._move(service)

    # --- other apps' services ------------------------------------------------------------

    def resolve_service(self, app_id: str, service: str) -> list[ServiceLocation]:
        return resolve(self.manager.registry, app_id, service)

    def watch_service(self, app_id: str, service: str) -> list[ServiceLocation]:
        return self.services.watch(app_id, service)

    def unwatch_service(self, app_id: str, service: str) -> None:
        self.services.unwatch(app_id, service)

    # --- holders and orphans -------------------------------------------------------------

    def attach_process(self, service: str, pid: int) -> None:
        ident = identify(pid)
        if ident is None:
            raise InvalidParams(f"no process with pid {pid}")
        if not is_same_user(pid):
            # Adopting it would make it a rightful holder, and so, once the app is gone, a
            # recorded orphan: never for a process that is not this user's.
            raise PermissionDenied(f"pid {pid} runs as {user_of(pid)}: it cannot hold a lease")
        lease = self.manager.lease_of(service)
        self.manager.add_holder(lease, ident)
        with self._lock:
            self.state.views.pop(lease.port, None)
            self.state.reported.discard((service, lease.port))

    def reclaim_orphan(self, port: int) -> PortOwner:
        """End the recorded orphan on `port`: only a process that is exactly the one the
        registry recorded (pid and start time), whose app is gone, and that is ours."""
        lease = self.manager.registry.lease_on(port)
        if lease is None or is_alive(lease.owner):
            raise PermissionDenied(f"no orphan is recorded on port {port}")
        listening = {s.pid for s in probe.listeners_on(port)}
        target = next((h for h in lease.holders if h.pid in listening and is_alive(h)), None)
        if target is None:
            raise PermissionDenied(f"the process on port {port} is not the recorded orphan")
        if not is_same_user(target.pid):
            raise PermissionDenied(_not_yours(target.pid, port))
        owner = self.manager.get_port_owner(port) or PortOwner(port=port, pid=target.pid)
        _terminate(target, port)
        self.manager.forget(lease)
        log.info("reclaimed orphan pid %d on port %d", target.pid, port)
        return owner


def _pids_of(sockets: set[_Socket]) -> dict[_Socket, int | None]:
    socks = list(sockets)
    return {s: found.pid for s, found in zip(socks, probe.with_pids(socks), strict=True)}


def _taken(port: int) -> bool:
    try:
        return probe.check_port(port) != "free"
    except OSError:
        return True  # cannot tell: watch it, at worst PortAvailable comes when it is free


def _not_yours(pid: int, port: int) -> str:
    return f"pid {pid} on port {port} runs as {user_of(pid)}: portd never signals it"


def _terminate(target: ProcessIdentity, port: int) -> None:
    """SIGTERM, then SIGKILL after the grace period, to exactly the recorded process, and
    only while it is this user's: each signal is preceded by both checks."""
    try:
        proc = psutil.Process(target.pid)
        if abs(proc.create_time() - target.started) > 0.01:
            raise PermissionDenied(f"pid {target.pid} is no longer the recorded process")
        if not is_same_user(target.pid):
            raise PermissionDenied(_not_yours(target.pid, port))
        proc.terminate()  # psutil re-checks the identity before it signals
        if not _ended(target, ORPHAN_GRACE):
            if not is_same_user(target.pid):
                raise PermissionDenied(_not_yours(target.pid, port))
            log.warning("pid %d ignored SIGTERM for %g s; killing it", target.pid, ORPHAN_GRACE)
            proc.kill()
            _ended(target, ORPHAN_GRACE)
    except psutil.NoSuchProcess:
        pass


def _ended(target: ProcessIdentity, timeout: float) -> bool:
    """Wait for the process to end. It is not our child, so we cannot reap it: a zombie
    (its parent, often init, has not reaped it yet) has ended and holds no port."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while is_alive(target):
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return True
