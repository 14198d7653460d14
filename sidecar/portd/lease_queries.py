"""What the manager answers about ports and leases, without changing any: availability, a
service's lease, who holds a port, the counters. Mixed into `PortManager`."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from . import probe
from .lease_state import is_live, port_info, port_owner
from .protocol.errors import PermissionDenied, UnknownService

if TYPE_CHECKING:
    from .process import ProcessIdentity
    from .protocol.defaults import AllocationConfig
    from .protocol.models import PortInfo, PortOwner, Stats
    from .registry import Lease, LeaseKey
    from .registry_backend import RegistryBackend


class LeaseQueries:
    registry: RegistryBackend
    owner: ProcessIdentity
    allocation: AllocationConfig
    counters: Counter[str]
    _started: float

    def key(self, service: str) -> LeaseKey:
        raise NotImplementedError

    def is_port_available(self, port: int, host: str | None = None) -> bool:
        status = probe.check_port(port, host)
        if status == "denied":
            raise PermissionDenied(
                f"port {port}: permission denied (EACCES){probe.excluded_note(port)}"
            )
        if status != "free":
            return False
        lease = self.registry.lease_on(port)
        return lease is None or not is_live(lease, self.registry.is_local(lease))

    def lease_of(self, service: str) -> Lease:
        with self.registry.reading() as tx:
            lease = tx.find(self.key(service))
        if lease is None:
            raise UnknownService(f"no lease for service {service!r}")
        return lease

    def get_port_info(self, service: str) -> PortInfo:
        lease = self.lease_of(service)
        return port_info(lease, probe.listening_pids({lease.port}))

    def get_port_stats(self) -> dict[str, PortInfo]:
        leases = self.registry.leases(self.owner, self.allocation.app_id)
        pids = probe.listening_pids({lease.port for lease in leases})
        return {lease.service: port_info(lease, pids) for lease in leases}

    def get_port_owner(self, port: int) -> PortOwner | None:
        pids = sorted({s.pid or 0 for s in probe.listeners_on(port)})
        lease = self.registry.lease_on(port)
        if not pids and lease is None:
            return None
        return port_owner(port, lease, pids, lease is None or self.registry.is_local(lease))

    def get_stats(self) -> Stats:
        from .protocol.models import Stats

        c = self.counters
        return Stats(
            allocations=c["allocations"],
            releases=c["releases"],
            conflicts=c["conflicts"],
            resolutions=c["resolutions"],
            health_checks=c["health_checks"],
            uptime=round(time.monotonic() - self._started, 3),
        )
