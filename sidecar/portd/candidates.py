"""The ports an allocation tries, in the mission's order: the call's preferred port, the
plan's port, the port the service had last time (sticky), the configured preferred port, the
range (from where the last range claim ended, wrapping around), the range's leases of other
owners (dead ones are reclaimed), then ports the OS assigns. Whether one is usable is the
manager's call (`PortManager._usable`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal

from . import probe

if TYPE_CHECKING:
    from .process import ProcessIdentity
    from .protocol.defaults import AllocationConfig
    from .registry_backend import RegistryTransaction

# Where a candidate came from: the call, the config/plan/history, our range walk, the OS;
# "range" stands for the whole range, searched by the claim itself (see `_claim_from_range`).
Origin = Literal["asked", "named", "picked", "range", "stale", "os"]
PlanLookup = Callable[[str], int | None]


def candidates(
    tx: RegistryTransaction,
    allocation: AllocationConfig,
    owner: ProcessIdentity,
    plan_port: PlanLookup | None,
    resume: int | None,
    service: str | None,
    preferred: int | None,
    port_range: tuple[int, int] | None,
    claiming: bool = False,
) -> Iterator[tuple[int, Origin]]:
    """Each candidate port and where it came from. `resume`: where the range walk starts
    (None: at the bottom). A claim takes the range as one candidate, which it searches
    itself."""
    if preferred is not None:
        yield preferred, "asked"
    if service is not None:
        if plan_port is not None and (planned := plan_port(service)):
            yield planned, "named"
        if (sticky := tx.last_port(allocation.app_id, service)) is not None:
            yield sticky, "named"
    if port_range is None:
        yield allocation.preferred_port, "named"
    low, high = port_range or allocation.port_range
    if resume is None or not low <= resume <= high:
        resume = low
    if claiming:
        yield resume, "range"
        return
    for first, last in ((resume, high), (low, resume - 1)):
        port = first
        while port <= last and (port := tx.next_unleased(port, last) or last + 1) <= last:
            yield port, "picked"
            port += 1
    # Nothing unleased binds: the range's leases of other owners (dead ones) before the OS.
    for lease in tx.leases_in(low, high):
        if lease.owner != owner:
            yield lease.port, "stale"
    for _ in range(allocation.max_retries):  # 0: never leave the range
        yield probe.os_assigned_port(), "os"
