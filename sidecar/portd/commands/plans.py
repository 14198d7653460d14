"""`portd plan check|next|status|export|init`: port plans (ports.toml) for people."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from ..cli import DEFAULT_PLAN
from ..probe import listening_pids
from .common import NO, OK, CliError, Names, open_registry, out, print_json
from .progress import Progress
from .table import render

if TYPE_CHECKING:
    from ..plan import Finding, Plan, PlannedPort
    from ..registry import Lease
    from ..registry_backend import RegistryBackend


def plan_command(args: argparse.Namespace) -> int:
    actions = {"check": check, "next": next_port, "status": status, "export": export, "init": init}
    return actions[args.plan_command](args)


def load(path: str) -> Plan:
    """The plan, or one line saying why there is none (exit 2)."""
    from ..plan import PlanError, load_plan

    if not os.path.exists(path):
        raise CliError(
            f"{path}: no such plan file; `portd plan init` writes a starter plan, "
            "or pass --plan FILE"
        )
    try:
        return load_plan(path)
    except PlanError as err:
        raise CliError(_located(err.path, err.line, "error", err.message), located=True) from None


def _located(path: str, line: int | None, severity: str, message: str) -> str:
    where = f"{path}:{line}" if line is not None else path
    return f"{where}: {severity}: {message}"


# --- check ---------------------------------------------------------------------------------


def check(args: argparse.Namespace) -> int:
    from .. import probe
    from ..plan import check_plan

    plan = load(args.plan)
    ephemeral = args.ephemeral_range or probe.ephemeral_port_range()
    findings = check_plan(plan, ephemeral_range=ephemeral)
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    failed = errors > 0 or (args.strict and warnings > 0)
    if args.json:
        print_json(
            {
                "path": plan.path,
                "ok": not failed,
                "errors": errors,
                "warnings": warnings,
                "ephemeral_range": list(ephemeral) if ephemeral else None,
                "findings": [_finding_json(f) for f in findings],
            }
        )
    else:
        out("".join(_located(f.path, f.line, f.severity, f.message) + "\n" for f in findings))
        out(
            f"{plan.path}: {_count(errors, 'error')}, {_count(warnings, 'warning')} "
            f"in {_count(len(plan.ports), 'port')} of {_count(len(plan.services()), 'service')}"
            f"{' (--strict)' if args.strict else ''}\n"
        )
    return NO if failed else OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _finding_json(f: Finding) -> dict[str, Any]:
    return {
        "severity": f.severity,
        "code": f.code,
        "message": f.message,
        "path": f.path,
        "line": f.line,
        "services": list(f.services),
    }


# --- next ----------------------------------------------------------------------------------


def next_port(args: argparse.Namespace) -> int:
    from .. import probe
    from ..plan import PlanError
    from ..plan import next_port as plan_next_port

    plan = load(args.plan)
    category: str = args.category
    if category not in plan.categories:
        known = ", ".join(plan.categories) or "none"
        raise CliError(f"{plan.path}: no category {category!r} (categories: {known})")
    leased = _live_leases(open_registry(args.registry, create=False, host_id=args.host_id))

    def is_free(port: int) -> bool:
        return port not in leased and probe.check_port(port) == "free"

    try:
        port = plan_next_port(plan, category, is_free)
    except PlanError as err:
        raise CliError(
            _located(err.path, err.line, "error", err.message), NO, located=True
        ) from None
    if args.json:
        print_json({"category": category, "port": port})
    else:
        out(f"{port}\n")
    return OK


def _live_leases(registry: RegistryBackend) -> dict[int, Lease]:
    from ..lease_state import is_live
    from ..process import Liveness

    alive = Liveness()
    return {
        lease.port: lease
        for lease in registry.leases()
        if is_live(lease, registry.is_local(lease), alive)
    }


# --- status --------------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    from .. import probe

    plan = load(args.plan)
    leased = _live_leases(open_registry(args.registry, create=False, host_id=args.host_id))
    listening = listening_pids({p.port for p in plan.ports})
    names = Names()
    rows: list[dict[str, Any]] = []
    with Progress("portd plan status", len(plan.ports)) as progress:
        for p in plan.ports:
            bind = probe.check_port(p.port)
            rows.append(_status_row(p, bind, listening.get(p.port, []), leased.get(p.port), names))
            progress.advance()
    if args.json:
        print_json({"path": plan.path, "ports": rows})
        return OK
    out(
        render(
            ["SERVICE", "PORT", "NAME", "CATEGORY", "STATE", "PID", "PROCESS", "LEASE"],
            (
                (
                    r["service"],
                    r["port"],
                    r["name"],
                    r["category"],
                    r["state"],
                    ", ".join(str(pid or "?") for pid in r["pids"]),
                    ", ".join(n or "?" for n in r["processes"]),
                    r["lease"] and f"{r['lease']['service']} ({r['lease']['app_id']})",
                )
                for r in rows
            ),
            right=[1],
        )
    )
    states = [r["state"] for r in rows]
    summary = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(sorted(states)))
    out(f"\n{plan.path}: {_count(len(rows), 'planned port')}: {summary}\n")
    return OK


def _status_row(
    p: PlannedPort, bind: str, pids: list[int], lease: Lease | None, names: Names
) -> dict[str, Any]:
    if bind == "denied":
        state = "denied"
    elif bind == "in_use" or pids:
        state = "taken"
    elif lease is not None:
        state = "leased"
    else:
        state = "free"
    return {
        "service": p.service,
        "name": p.name,
        "port": p.port,
        "category": p.category,
        "line": p.line,
        "state": state,
        "pids": [pid or None for pid in pids],
        "processes": [names(pid) for pid in pids],
        "lease": None
        if lease is None
        else {"service": lease.service, "app_id": lease.key.app_id, "owner_pid": lease.owner.pid},
    }


# --- export and init -----------------------------------------------------------------------


def export(args: argparse.Namespace) -> int:
    from ..plan_export import export_plan

    job: str | None = args.job
    if job is not None and args.format != "nomad":
        raise CliError(f"--job names the Nomad job: use it with --format nomad, not {args.format}")
    plan = load(args.plan)
    try:
        text = export_plan(plan, args.format, job=job)
    except ValueError as err:  # a --job that Nomad would not take
        raise CliError(f"--job: {err}") from None
    out(text)
    return OK


def init(args: argparse.Namespace) -> int:
    from ..plan import starter_plan

    path: str = args.plan
    try:
        with open(path, "w" if args.force else "x", encoding="utf-8") as f:
            f.write(starter_plan())
    except FileExistsError:
        raise CliError(f"{path} already exists; pass --force to overwrite it") from None
    except OSError as err:
        raise CliError(f"{path}: cannot write the plan: {err.strerror or err}") from None
    option = "" if path == DEFAULT_PLAN else f" --plan {path}"
    out(f"wrote {path}: a starter plan; edit it, then run `portd plan check{option}`\n")
    return OK
