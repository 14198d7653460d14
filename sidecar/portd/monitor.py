"""The watch on what portd hands out: conflicts, orphans, and ports that free up.

One pass reads the listening sockets once and compares them with this app's leases. A
socket is mapped to its pid only when the listener on a leased port changed since the last
pass, because that mapping (a walk of /proc) costs more than the whole rest of the pass.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import anyio
import psutil

from . import probe
from .health import HealthChecker
from .manager import PortManager
from .process import ProcessIdentity, identify, is_alive, is_same_user
from .protocol.errors import InvalidParams, PermissionDenied
from .protocol.models import PortEvent, PortOwner
from .registry import Lease, now_ms

log = logging.getLogger(__name__)

ORPHAN_GRACE = 3.0  # seconds between SIGTERM and SIGKILL when reclaiming an orphan


@dataclass
class _PortView:
    """What was listening on a leased port at the last pass, and what we made of it."""

    sockets: frozenset[tuple[str, int | None]]
    foreign: tuple[int, ...] = ()


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

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(self._every, "conflict_scan_interval", self.scan)
            group.start_soon(self._every, "health_check_interval", self.health.perform_health_check)

    async def _every(self, interval_name: str, work: object) -> None:
        while True:
            await anyio.sleep(getattr(self.manager.config, interval_name))
            try:
                await anyio.to_thread.run_sync(work)  # type: ignore[arg-type]
            except Exception:
                log.exception("periodic %s failed", interval_name)

    # --- conflicts -----------------------------------------------------------------------

    def scan(self) -> list[str]:
        """One pass; returns the services left in conflict (with auto_resolve, none)."""
        with self._lock:
            return self._scan()

    def _scan(self) -> list[str]:
        leases = self._current_leases()
        ports = {lease.port for lease in leases}
        by_port: dict[int, set[tuple[str, int | None]]] = {}
        for sock in probe.listening_sockets():
            if (
                sock.port in ports
                or sock.port in self.state.watched
                or sock.port in self.manager.wanted
            ):
                by_port.setdefault(sock.port, set()).add((sock.address, sock.inode))
        self.state.watched |= self.manager.wanted
        self.manager.wanted.clear()
        self._announce_freed(by_port)
        in_conflict = []
        for lease in leases:
            foreign = self._foreign_pids(lease, frozenset(by_port.get(lease.port, ())))
            if not foreign:
                self.state.reported.discard((lease.service, lease.port))
            elif not self._on_conflict(lease, foreign):
                in_conflict.append(lease.service)
        return in_conflict

    def _current_leases(self) -> list[Lease]:
        version = self.manager.registry.version()
        if version != self._leases_version:
            self._leases = self.manager.registry.leases(
                self.manager.owner, self.manager.config.app_id
            )
            self._leases_version = version
        return self._leases

    def _foreign_pids(
        self, lease: Lease, sockets: frozenset[tuple[str, int | None]]
    ) -> tuple[int, ...]:
        view = self.state.views.get(lease.port)
        if view is not None and view.sockets == sockets:
            return view.foreign
        foreign: list[int] = []
        if sockets:
            listeners = probe.with_pids(
                probe.Listener(lease.port, addr, None, inode, None) for addr, inode in sockets
            )
            for pid in sorted({s.pid or 0 for s in listeners}):
                if self.manager.is_rightful(lease, pid):
                    self._record_holder(lease, pid)
                else:
                    foreign.append(pid)
        self.state.views[lease.port] = _PortView(sockets, tuple(foreign))
        return tuple(foreign)

    def _record_holder(self, lease: Lease, pid: int) -> None:
        """Remember a rightful listener, so that if the app dies while it keeps the port we
        can tell an orphan (yesterday's dev server) from a stranger."""
        ident = identify(pid)
        if ident is None or any(h.pid == pid for h in lease.holders):
            return
        self.manager.add_holder(lease, ident)

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
            self._move(lease.service)
            return True
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
        self.state.reported = {r for r in self.state.reported if r[0] != service}
        self.state.watched.add(old)
        self.manager.counters["resolutions"] += 1
        self.manager.emit(
            PortEvent(
                type="PortChanged", old_port=old, new_port=new, service=service, timestamp=now_ms()
            )
        )
        return new

    def _announce_freed(self, by_port: dict[int, set[tuple[str, int | None]]]) -> None:
        for port in sorted(self.state.watched):
            if port not in by_port and self.manager.registry.lease_on(port) is None:
                self.state.watched.discard(port)
                self.manager.emit(PortEvent(type="PortAvailable", port=port, timestamp=now_ms()))

    def watch(self, port: int) -> None:
        with self._lock:
            self.state.watched.add(port)

    def check_port_conflicts(self) -> list[str]:
        return self.scan()

    def handle_port_conflict(self, service: str) -> int:
        with self._lock:
            return self._move(service)

    # --- holders and orphans -------------------------------------------------------------

    def attach_process(self, service: str, pid: int) -> None:
        ident = identify(pid)
        if ident is None:
            raise InvalidParams(f"no process with pid {pid}")
        if not is_same_user(pid):
            raise PermissionDenied(f"pid {pid} belongs to another user")
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
            raise PermissionDenied(f"pid {target.pid} on port {port} belongs to another user")
        owner = self.manager.get_port_owner(port) or PortOwner(port=port, pid=target.pid)
        _terminate(target)
        self.manager.forget(lease)
        log.info("reclaimed orphan pid %d on port %d", target.pid, port)
        return owner


def _terminate(target: ProcessIdentity) -> None:
    try:
        proc = psutil.Process(target.pid)
        if abs(proc.create_time() - target.started) > 0.01:
            raise PermissionDenied(f"pid {target.pid} is no longer the recorded process")
        proc.terminate()  # psutil re-checks the identity before it signals
        _, alive = psutil.wait_procs([proc], timeout=ORPHAN_GRACE)
        for straggler in alive:
            straggler.kill()
        psutil.wait_procs(alive, timeout=ORPHAN_GRACE)
    except psutil.NoSuchProcess:
        pass
