"""`portd health`: one health check of every component, as a table."""

from __future__ import annotations

import argparse

from .common import NO, OK, CliError, open_registry_or_memory, out, owner_identity, print_json
from .table import render


def health(args: argparse.Namespace) -> int:
    from ..health import HealthChecker
    from ..manager import PortManager
    from ..protocol.models import FrontendConfig, PortConfig

    if args.frontend_path is not None and args.frontend_port is None:
        raise CliError("--frontend-path needs --frontend-port")
    app = owner_identity(args.owner_pid)
    frontend = None
    if args.frontend_port is not None:
        frontend = FrontendConfig(port=args.frontend_port, path=args.frontend_path)
    manager = PortManager(
        open_registry_or_memory(args.registry, args.host_id),
        app,
        PortConfig(app_id=args.app_id, frontend=frontend),
    )
    report = HealthChecker(manager, app).perform_health_check()
    if args.json:
        print_json(report.model_dump(mode="json"))
    else:
        out(
            render(
                ["COMPONENT", "STATUS", "LATENCY", "MESSAGE"],
                (
                    (r.component, r.status, f"{r.latency:.1f} ms", r.message)
                    for r in report.components
                ),
                right=[2],
            )
        )
        out(f"\noverall: {report.status}\n")
    return OK if report.status == "healthy" else NO
