"""METHODS: every JSON-RPC method the sidecar serves, with its params, result and errors.

The dispatcher validates params against `params`, the schema documents `result`, and `slow`
methods run in a worker thread so that they never hold up the fast ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import errors as e
from . import models as m


@dataclass(frozen=True, slots=True)
class MethodSpec:
    params: type[m.WireModel]
    result: Any
    errors: tuple[type[e.PortdError], ...] = ()
    slow: bool = False
    doc: str = ""


_REGISTRY = (e.RegistryUnavailable,)

METHODS: dict[str, MethodSpec] = {
    "init_port_manager": MethodSpec(
        m.InitPortManagerParams, m.PortConfig, doc="Merge the fields given into the config."
    ),
    "find_available_port": MethodSpec(
        m.FindAvailablePortParams,
        int,
        (e.NoPortAvailable, *_REGISTRY),
        doc="A port that is free now; nothing is leased.",
    ),
    "allocate_port": MethodSpec(
        m.AllocatePortParams,
        int,
        (e.NoPortAvailable, *_REGISTRY),
        doc="Lease a port to a service; the same port again while the lease lives.",
    ),
    "release_port": MethodSpec(m.ServiceParams, None, _REGISTRY, doc="End a lease; idempotent."),
    "is_port_available": MethodSpec(
        m.IsPortAvailableParams,
        bool,
        (e.PermissionDenied,),
        doc="Free on IPv4 and IPv6, all interfaces, and not leased.",
    ),
    "port_health_check": MethodSpec(
        m.ServiceParams,
        bool,
        (e.UnknownService,),
        slow=True,
        doc="The service's port accepts connections from its rightful holder.",
    ),
    "check_port_conflicts": MethodSpec(
        m.NoParams, list[str], slow=True, doc="Services whose port is held by someone else."
    ),
    "handle_port_conflict": MethodSpec(
        m.ServiceParams,
        int,
        (e.UnknownService, e.NoPortAvailable),
        slow=True,
        doc="Move the service to a new port; PortChanged is sent.",
    ),
    "get_port_info": MethodSpec(m.ServiceParams, m.PortInfo, (e.UnknownService,), slow=True),
    "get_port_stats": MethodSpec(m.NoParams, dict[str, m.PortInfo], slow=True),
    "perform_health_check": MethodSpec(m.NoParams, m.SystemHealthStatus, slow=True),
    "get_port_owner": MethodSpec(m.PortParams, m.PortOwner | None, slow=True),
    "attach_process": MethodSpec(
        m.AttachProcessParams,
        None,
        (e.UnknownService, e.PermissionDenied),
        slow=True,
        doc="That pid is a rightful holder of the service's port.",
    ),
    "reclaim_orphan": MethodSpec(
        m.PortParams,
        m.PortOwner,
        (e.PermissionDenied,),
        slow=True,
        doc="End the recorded orphan listening on the port.",
    ),
    "get_stats": MethodSpec(m.NoParams, m.Stats),
    "shutdown": MethodSpec(m.NoParams, None, doc="Release this sidecar's leases and exit 0."),
    "load_port_plan": MethodSpec(
        m.PlanPathParams,
        m.PortPlanSummary,
        (e.InvalidPortPlan,),
        slow=True,
        doc="Load a port plan (TOML); allocation then tries each service's planned port first.",
    ),
    "check_port_plan": MethodSpec(
        m.CheckPortPlanParams,
        m.PortPlanSummary,
        (e.InvalidPortPlan,),
        slow=True,
        doc="Check a plan (default: the loaded one) for clashes and risky ports.",
    ),
    "next_plan_port": MethodSpec(
        m.NextPlanPortParams,
        int,
        (e.InvalidPortPlan, e.NoPortAvailable),
        slow=True,
        doc="The next port of a category that the loaded plan leaves unused and is free now.",
    ),
    "resolve_service": MethodSpec(
        m.ServiceRefParams,
        list[m.ServiceLocation],
        (e.UnknownService, *_REGISTRY),
        slow=True,
        doc="Where another app's service is: every lease of it that can answer, the best "
        "first (live on this host, then other hosts', then orphans; the newest first).",
    ),
    "watch_service": MethodSpec(
        m.ServiceRefParams,
        list[m.ServiceLocation],
        _REGISTRY,
        slow=True,
        doc="Where the service is now (maybe nowhere yet), and from now on a port_event "
        "(ServiceUp, ServiceMoved, ServiceDown) whenever its best location changes.",
    ),
    "unwatch_service": MethodSpec(
        m.ServiceRefParams, None, slow=True, doc="Stop watching the service; idempotent."
    ),
}

NOTIFICATIONS: dict[str, type[m.WireModel]] = {
    "ready": m.Ready,
    "port_event": m.PortEvent,
}
