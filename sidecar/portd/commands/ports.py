"""`portd who`, `portd ls`, `portd free`: who holds ports, what the registry leases, what is
free."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..lease_state import host_of, is_live, port_info
from ..probe import listening_pids
from .common import (
    NO,
    OK,
    CliError,
    Names,
    manager_for,
    note,
    open_registry,
    out,
    print_json,
    record_holders,
    registry_path,
    when,
)
from .progress import Progress
from .table import render, render_pairs

if TYPE_CHECKING:
    from ..manager import PortManager
    from ..protocol.models import PortInfo, PortOwner
    from ..registry import Lease

# --- who -----------------------------------------------------------------------------------


def who(args: argparse.Namespace) -> int:

    registry = open_registry(args.registry, create=False, host_id=args.host_id)
    manager = manager_for(registry)
    port: int = args.port
    lease = registry.lease_on(port)
    if lease is not None and record_holders(manager, [lease], listening_pids({port})):
        lease = registry.lease_on(port)
    local = lease is None or registry.is_local(lease)
    owner = manager.get_port_owner(port)
    leased = lease is not None and is_live(lease, local)
    held = owner is not None and (owner.pid is not None or leased)
    if args.json:
        print_json(owner.model_dump(mode="json") | _host(lease) if owner is not None else None)
    elif owner is None:
        out(f"port {port} is free: nothing listens and no lease names it\n")
    else:
        out(render_pairs(_who_rows(owner, lease, Names(), local)))
    return OK if held else NO


def _host(lease: Lease | None) -> dict[str, str]:
    """The lease's host, for --json, where the registry names hosts (etcd)."""
    host = host_of(lease) if lease is not None else None
    return {"host": host} if host else {}


COMMAND_WIDTH = 160  # characters of a command line in the table; --json has all of it


def _one_line(cmdline: list[str]) -> str | None:
    """The command line as a shell would take it, on one line, cut to COMMAND_WIDTH."""
    import shlex

    text = shlex.join(cmdline).replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= COMMAND_WIDTH else text[: COMMAND_WIDTH - 1] + "…"


def _who_rows(
    owner: PortOwner, lease: Lease | None, names: Names, local: bool
) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [("port", owner.port)]
    if owner.pid is not None:
        rows += [
            ("pid", owner.pid),
            ("name", owner.name),
            ("user", owner.user),
            ("command", _one_line(owner.cmdline)),
            ("since", when(owner.started_at)),
        ]
    elif owner.lease is None or owner.lease.state != "leased":
        rows.append(("pid", "? (a process this user cannot see)"))
    else:
        rows.append(("pid", "- (nothing listens)"))
    info = owner.lease
    if info is None:
        rows.append(("lease", "none: no lease names this port"))
        return rows
    host = host_of(lease) if lease is not None else None
    if not local:
        return [
            *rows,
            ("lease", f"{info.service} (app {info.app_id}), since {when(info.allocated_at)}"),
            ("host", host),
            ("owner", f"pid {info.owner_pid} on {host}"),
            ("state", f"leased on host {host}, for as long as that host's sidecars keep it"),
        ]
    rows += [
        ("lease", f"{info.service} (app {info.app_id}), since {when(info.allocated_at)}"),
        *([("host", host)] if host else []),
        ("owner", names.label(info.owner_pid)),
        ("holders", ", ".join(map(names.label, info.holder_pids)) or None),
        ("state", _state_text(owner, info, lease)),
    ]
    return rows


def _state_text(owner: PortOwner, info: PortInfo, lease: Lease | None) -> str:
    from ..process import is_alive, is_same_user, user_of

    listener = f"pid {owner.pid}" if owner.pid is not None else "its listener"
    if owner.orphan:
        if owner.pid is None:
            return f"orphan: the lease's owner (pid {info.owner_pid}) is gone; a holder listens"
        gone = (
            f"orphan: the lease's owner (pid {info.owner_pid}) is gone, but {listener}, "
            "which it started, still listens\n"
        )
        if not is_same_user(owner.pid):
            return gone + f"it runs as {user_of(owner.pid)}: portd will not end it"
        return gone + f"`kill {owner.pid}` ends it and frees the port"
    if info.state == "conflict":
        return (
            f"conflict: {listener} is neither the lease's owner nor started by it; "
            "the owner's sidecar moves the service when it notices"
        )
    if info.state == "listening":
        return f"listening: {listener} holds the port for {info.service}"
    if lease is not None and not is_alive(lease.owner):
        return (
            f"stale: the lease's owner (pid {info.owner_pid}) is gone and nothing of it "
            "listens; the next allocation reclaims the port"
        )
    return "leased: reserved for the owner; nothing listens yet"


# --- ls ------------------------------------------------------------------------------------


def ls(args: argparse.Namespace) -> int:
    from ..process import is_alive

    registry = open_registry(args.registry, create=False, host_id=args.host_id)
    manager = manager_for(registry)
    leases = registry.leases()
    pids = listening_pids(None if args.all else {lease.port for lease in leases})
    if record_holders(manager, leases, pids):
        leases = registry.leases()
    names = Names()
    local = {lease.port: registry.is_local(lease) for lease in leases}
    hosts = {lease.port: host_of(lease) for lease in leases}
    infos = [port_info(lease, pids, local[lease.port]) for lease in leases]
    alive = {lease.port: not local[lease.port] or is_alive(lease.owner) for lease in leases}
    here = {port: found for port, found in pids.items() if local.get(port, True)}
    leased = {lease.port for lease in leases}
    unleased = (
        sorted((port, pid) for port, found in pids.items() if port not in leased for pid in found)
        if args.all
        else []
    )
    if args.json:
        listing = _ls_json(registry_path(args.registry), infos, alive, here, unleased, names)
        if any(hosts.values()):
            for entry in listing["leases"]:
                entry["host"] = hosts[entry["port"]]
        print_json(listing)
        return OK
    if not infos:
        out(f"no leases in {registry_path(args.registry)}\n")
    else:
        shared = any(hosts.values())  # etcd: say whose host each lease is on
        out(
            render(
                ["PORT", "SERVICE", "APP", *(["HOST"] if shared else []), "OWNER", "STATE",
                 "LISTENER", "SINCE"],
                (
                    (
                        i.port,
                        i.service,
                        i.app_id,
                        *([hosts[i.port]] if shared else []),
                        names.label(i.owner_pid) if local[i.port] else str(i.owner_pid),
                        "stale" if i.state == "leased" and not alive[i.port] else i.state,
                        ", ".join(map(names.label, here.get(i.port, []))),
                        when(i.allocated_at, short=True),
                    )
                    for i in infos
                ),
                right=[0],
            )
        )  # fmt: skip
    if args.all:
        out("\nlistening, no lease:\n" if infos else "listening, no lease:\n")
        out(
            render(
                ["PORT", "LISTENER"],
                ((port, names.label(pid)) for port, pid in unleased),
                right=[0],
            )
            if unleased
            else "none\n"
        )
    return OK


def _ls_json(
    path: str,
    infos: list[PortInfo],
    alive: dict[int, bool],
    pids: dict[int, list[int]],
    unleased: list[tuple[int, int]],
    names: Names,
) -> dict[str, Any]:
    def listener(pid: int) -> dict[str, Any]:
        return {"pid": pid or None, "name": names(pid)}

    return {
        "registry": path,
        "leases": [
            {
                **i.model_dump(mode="json"),
                "owner_alive": alive[i.port],
                "listeners": [listener(p) for p in pids.get(i.port, [])],
            }
            for i in infos
        ],
        "unleased": [{"port": port, **listener(pid)} for port, pid in unleased],
    }


# --- free ----------------------------------------------------------------------------------


def free(args: argparse.Namespace) -> int:
    from .. import probe
    from ..protocol.models import PortConfig

    # Unless told, look where the allocator does (PortConfig's range, 1421-1500).
    low, high = args.port_range or PortConfig().port_range
    wanted: int = args.count
    size = high - low + 1
    if wanted > size:
        raise CliError(f"--count {wanted} is more than the {size} port(s) in {low}-{high}")
    registry = open_registry(args.registry, create=False, host_id=args.host_id)
    manager = manager_for(registry)
    taken = _live_leased(manager, low, high)
    found: list[int] = []
    denied = 0
    with Progress("portd free", size, final_count=False) as progress:
        for port in range(low, high + 1):
            if len(found) >= wanted:
                break
            progress.advance()
            if port in taken or probe.is_browser_restricted(port) or probe.excluded_range_of(port):
                continue
            status = probe.check_port(port)
            denied += status == "denied"
            if status == "free":
                found.append(port)
    if args.json:
        print_json({"range": [low, high], "ports": found})
    else:
        out("".join(f"{port}\n" for port in found))
    if denied:
        note("free", f"skipped {denied} port(s) that this user may not bind (EACCES)")
    if len(found) < wanted:
        note(
            "free", f"only {len(found)} of the {wanted} port(s) asked for are free in {low}-{high}"
        )
        return NO
    return OK


def _live_leased(manager: PortManager, low: int, high: int) -> set[int]:
    from ..process import Liveness

    alive = Liveness()
    return {
        lease.port
        for lease in manager.registry.leases()
        if low <= lease.port <= high and is_live(lease, manager.registry.is_local(lease), alive)
    }
