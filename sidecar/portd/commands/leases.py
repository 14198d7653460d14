"""`portd allocate` and `portd release`: leases taken by hand, owned by the calling shell."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from .common import NO, OK, CliError, Names, note, open_registry, out, owner_identity, print_json

if TYPE_CHECKING:
    from ..registry import Lease


def allocate(args: argparse.Namespace) -> int:
    from ..manager import PortManager
    from ..protocol.errors import NoPortAvailable, UnknownService
    from ..protocol.models import PortConfig

    plan_port = _plan_lookup(args.plan) if args.plan else None
    owner = owner_identity(args.owner_pid)
    _refuse_foreign_owner(owner.pid, given=args.owner_pid is not None)
    registry = open_registry(args.registry, create=True, host_id=args.host_id)
    config = PortConfig(app_id=args.app_id)
    if args.port_range is not None:
        config = PortConfig(
            app_id=args.app_id, port_range=args.port_range, preferred_port=args.port_range[0]
        )
    manager = PortManager(registry, owner, config, plan_port=plan_port)
    try:
        before: int | None = manager.lease_of(args.service).port
    except UnknownService:
        before = None
    try:
        port = manager.allocate_port(args.service, args.preferred)
    except NoPortAvailable as exc:
        raise CliError(exc.message, NO) from None
    if args.json:
        print_json(
            {
                "service": args.service,
                "port": port,
                "app_id": args.app_id,
                "owner_pid": owner.pid,
                "renewed": before is not None,
            }
        )
    else:
        out(f"{port}\n")
    if before is not None and args.preferred not in (None, port):
        note("allocate", f"{args.service} already holds port {port}; release it to move it")
    elif args.preferred not in (None, port):
        note("allocate", f"port {args.preferred} is not free; leased {port} instead")
    if sys.stdout.isatty() and not args.json:
        who = Names().label(owner.pid)
        note(
            "allocate",
            f"{args.service} holds port {port} while {who} runs; "
            f"`portd release {args.service}` ends it sooner",
        )
    return OK


def _refuse_foreign_owner(pid: int, *, given: bool) -> None:
    """A lease's owner, and so its descendants, are its rightful holders, and what they leave
    listening becomes a recorded orphan: only this user's processes may own one (as
    `attach_process` refuses another user's pid)."""
    from ..process import is_same_user, user_of
    from ..protocol.errors import PermissionDenied

    if not is_same_user(pid):
        who = f"--owner-pid {pid}" if given else f"the calling process (pid {pid})"
        raise PermissionDenied(
            f"{who} runs as {user_of(pid)}: a lease is owned by one of this user's processes"
        )


def _refuse_foreign_lease(lease: Lease) -> None:
    """Never end a lease that a live process of another user owns or holds: its port is that
    user's business. (Releasing never signals anyone; a stranger that merely squats on the
    port of this user's lease does not stop its release.)"""
    from ..process import is_alive, is_same_user, user_of
    from ..protocol.errors import PermissionDenied

    for role, ident in [("owned", lease.owner), *(("held", h) for h in lease.holders)]:
        if is_alive(ident) and not is_same_user(ident.pid):
            raise PermissionDenied(
                f"{lease.service}'s lease on port {lease.port} is {role} by pid {ident.pid}, "
                f"which runs as {user_of(ident.pid)}: portd does not end another user's lease"
            )


def _plan_lookup(path: str) -> Callable[[str], int | None]:
    from ..plan import load_plan

    return load_plan(path).port_for


def release(args: argparse.Namespace) -> int:
    registry = open_registry(args.registry, create=False, host_id=args.host_id)
    owner_pid = args.owner_pid if args.owner_pid is not None else owner_identity(None).pid
    same_service = [lease for lease in registry.leases() if lease.service == args.service]
    lease = _pick([x for x in same_service if x.key.app_id == args.app_id], owner_pid)
    if lease is None:
        raise CliError(_not_found(args.service, args.app_id, owner_pid, same_service), NO)
    _refuse_foreign_lease(lease)
    registry.release(lease.key)
    if args.json:
        print_json({"service": lease.service, "port": lease.port, "released": True})
    else:
        out(f"released {lease.service}: port {lease.port}\n")
    return OK


def _pick(candidates: list[Lease], owner_pid: int) -> Lease | None:
    """The lease of this owner: its live identity first; a lease whose owner has died is
    released by the pid it had."""
    from ..process import identify

    mine = [lease for lease in candidates if lease.owner.pid == owner_pid]
    current = identify(owner_pid)
    exact = [lease for lease in mine if current is not None and lease.owner == current]
    return next(iter(exact or mine), None)


def _not_found(service: str, app_id: str, owner_pid: int, others: list[Lease]) -> str:
    message = f"no lease for {service} (app {app_id}) owned by pid {owner_pid}"
    if others:
        held = ", ".join(
            f"pid {lease.owner.pid} (app {lease.key.app_id}) on port {lease.port}"
            for lease in others
        )
        return f"{message}; {service} is leased to {held}: pass --owner-pid and --app-id"
    return message + "; `portd ls` lists the leases"
