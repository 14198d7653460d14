"""Each JSON-RPC method, bound to the engine object that does the work."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .dispatch import Handler

if TYPE_CHECKING:
    from .session import Session


def build_handlers(session: Session) -> dict[str, Handler]:
    # The monitor, health checker and plans exist once the event loop does; only slow
    # methods, which wait for that loop, use them, so they are looked up at call time.
    ports = session.manager
    table: dict[str, Any] = {
        "init_port_manager": lambda p: ports.init_port_manager(p.config),
        "find_available_port": lambda p: ports.find_available_port(p.preferred, p.range),
        "allocate_port": lambda p: ports.allocate_port(p.service_name, p.preferred_port),
        "release_port": lambda p: ports.release_port(p.service_name),
        "is_port_available": lambda p: ports.is_port_available(p.port, p.host),
        "port_health_check": lambda p: session.health.port_health_check(p.service_name),
        "check_port_conflicts": lambda p: session.monitor.check_port_conflicts(),
        "handle_port_conflict": lambda p: session.monitor.handle_port_conflict(p.service_name),
        "get_port_info": lambda p: ports.get_port_info(p.service_name),
        "get_port_stats": lambda p: ports.get_port_stats(),
        "perform_health_check": lambda p: session.health.perform_health_check(),
        "get_port_owner": lambda p: ports.get_port_owner(p.port),
        "attach_process": lambda p: session.monitor.attach_process(p.service_name, p.pid),
        "reclaim_orphan": lambda p: session.monitor.reclaim_orphan(p.port),
        "get_stats": lambda p: ports.get_stats(),
        "shutdown": lambda p: session.shutdown(),
        "load_port_plan": lambda p: session.plans.load_port_plan(p.path),
        "check_port_plan": lambda p: session.plans.check_port_plan(p.path),
        "next_plan_port": lambda p: session.plans.next_plan_port(p.category),
        "resolve_service": lambda p: session.monitor.resolve_service(p.app_id, p.service_name),
        "watch_service": lambda p: session.monitor.watch_service(p.app_id, p.service_name),
        "unwatch_service": lambda p: session.monitor.unwatch_service(p.app_id, p.service_name),
    }
    return table
