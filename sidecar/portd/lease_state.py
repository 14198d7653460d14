"""What a lease is now, and who may hold its port: the owner, its descendants, and the
processes recorded as its holders. Anyone else listening there is a conflict."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .process import ProcessIdentity, descends_from, describe, is_alive
from .registry import Lease

if TYPE_CHECKING:  # the models load on first use, not on the way to a sidecar's first answer
    from .protocol.models import LeaseState, PortInfo, PortOwner


def is_live(
    lease: Lease, local: bool = True, alive: Callable[[ProcessIdentity], bool] = is_alive
) -> bool:
    """Whether the lease still holds its port: its owner or a holder runs; or it is another
    host's (`local` False), which lives as long as its host keeps it in the registry."""
    return not local or alive(lease.owner) or any(map(alive, lease.holders))


def host_of(lease: Lease) -> str | None:
    """The host a shared registry (etcd) says the lease's owner runs on."""
    host = getattr(lease, "host", None)
    return host if isinstance(host, str) and host else None


def is_rightful(lease: Lease, pid: int) -> bool:
    if any(h.pid == pid and is_alive(h) for h in lease.holders):
        return True
    return is_alive(lease.owner) and descends_from(pid, lease.owner.pid)


def state_of(lease: Lease, pids: list[int] | None) -> LeaseState:
    if not is_alive(lease.owner):
        return "orphan" if any(is_alive(h) for h in lease.holders) else "leased"
    if not pids:  # nobody listens (None: not looked, []: looked and found no one)
        return "leased"
    if all(is_rightful(lease, pid) for pid in pids):
        return "listening"
    return "conflict"


def port_info(lease: Lease, pids_by_port: dict[int, list[int]], local: bool = True) -> PortInfo:
    """What a lease is now. Another host's lease (`local` False) is "leased": this host can
    see neither its owner nor who listens on its port there."""
    from .protocol.models import PortInfo

    return PortInfo(
        service=lease.service,
        port=lease.port,
        app_id=lease.key.app_id,
        owner_pid=lease.owner.pid,
        holder_pids=[h.pid for h in lease.holders],
        state=state_of(lease, pids_by_port.get(lease.port)) if local else "leased",
        allocated_at=lease.created_at,
    )


def port_owner(port: int, lease: Lease | None, pids: list[int], local: bool = True) -> PortOwner:
    """Who listens on `port` here (the first of `pids` still running) and the lease on it
    (of this host, or of another when not `local`)."""
    from .protocol.models import PortOwner

    info = port_info(lease, {port: pids}, local) if lease else None
    orphan = info is not None and info.state == "orphan"
    proc = next((p for p in map(describe, pids) if p is not None), None)
    if proc is None:
        return PortOwner(port=port, lease=info, orphan=orphan)
    return PortOwner(
        port=port,
        pid=proc.pid,
        name=proc.name,
        user=proc.user,
        cmdline=proc.cmdline,
        started_at=int(proc.started * 1000),
        lease=info,
        orphan=orphan,
    )
