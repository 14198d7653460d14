"""`portd resolve APP/SERVICE`: where another app's service is, as `resolve_service` says."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .common import OK, Names, open_registry, out, print_json, when
from .table import render

if TYPE_CHECKING:
    from ..protocol.models import ServiceLocation


def resolve(args: argparse.Namespace) -> int:
    from ..discovery import resolve as locate

    app_id, service = args.target
    # Reading only: no file means no leases, and so UnknownService (exit 1), not a new file.
    registry = open_registry(args.registry, create=False, host_id=args.host_id)
    try:
        locations = locate(registry, app_id, service)  # UnknownService: `commands.run`
    finally:
        registry.close()
    if args.json:
        print_json([location.model_dump(mode="json") for location in locations])
    else:
        names = Names()
        out(
            render(
                ["PORT", "ADDRESS", "HOST", "STATE", "OWNER", "SINCE"],
                (_row(location, names) for location in locations),
                right=[0],
            )
        )
    return OK


def _row(location: ServiceLocation, names: Names) -> tuple[object, ...]:
    # Another host's pid names no process here: looking it up would name a stranger.
    owner = names.label(location.pid) if location.local else f"{location.pid} on {location.host}"
    return (
        location.port,
        location.address,
        location.host,
        location.state,
        owner,
        when(location.allocated_at, short=True),
    )
