"""Health checks of the components an app depends on, each bounded by a time-out.

Events go out only when a component's status changes, so a dead frontend produces one
`HealthCheckFailed`, not one every 30 seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import psutil

from .manager import PortManager
from .process import ProcessIdentity, describe, is_alive
from .protocol.errors import RegistryUnavailable
from .protocol.models import (
    HealthCheckResult,
    HealthStatus,
    PortEvent,
    PortEventType,
    SystemHealthStatus,
)
from .registry import MEMORY, now_ms

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0  # seconds for one TCP connect or HTTP exchange

Outcome = tuple[HealthStatus, str, dict[str, Any]]


class HealthChecker:
    def __init__(self, manager: PortManager, app: ProcessIdentity) -> None:
        self.manager = manager
        self.app = app
        self._last: dict[str, HealthStatus] = {}
        self._lock = threading.Lock()
        # Checks run at once (the periodic one and a client's) may finish out of order; only
        # a check that started after the last one announced may change what was announced.
        self._started = 0
        self._announced = 0
        self.checks: dict[str, Callable[[], Outcome]] = {
            "port_manager": self._port_manager,
            "registry": self._registry,
            "frontend_server": self._frontend_server,
            "app": self._app,
            "system_resources": self._system_resources,
            "network": self._network,
        }

    def perform_health_check(self) -> SystemHealthStatus:
        with self._lock:
            self._started += 1
            seq = self._started
        timeout = self.manager.config.health_check_timeout
        started = {
            name: (time.perf_counter(), _start(name, check)) for name, check in self.checks.items()
        }
        deadline = time.monotonic() + timeout
        results = []
        for name, (t0, future) in started.items():
            try:
                status, message, details = future.result(max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                status, message, details = "unhealthy", f"no answer within {timeout:g} s", {}
            except Exception as exc:
                log.exception("health check %s failed", name)
                status, message, details = "unhealthy", f"check failed: {type(exc).__name__}", {}
            results.append(
                HealthCheckResult(
                    component=name,
                    status=status,
                    message=message,
                    timestamp=now_ms(),
                    latency=round((time.perf_counter() - t0) * 1000, 3),
                    details=details,
                )
            )
        self.manager.counters["health_checks"] += 1
        self._announce_changes(seq, results)
        overall: HealthStatus = (
            "unhealthy" if any(r.status == "unhealthy" for r in results) else "healthy"
        )
        return SystemHealthStatus(status=overall, components=results, timestamp=now_ms())

    def _announce_changes(self, seq: int, results: list[HealthCheckResult]) -> None:
        with self._lock:
            if seq < self._announced:
                return  # a later check has already spoken; this one's news is stale
            self._announced = seq
            for r in results:
                before = self._last.get(r.component)
                self._last[r.component] = r.status
                kind: PortEventType
                if r.status == "unhealthy" and before != "unhealthy":
                    kind = "HealthCheckFailed"
                elif r.status == "healthy" and before == "unhealthy":
                    kind = "HealthCheckSuccess"
                else:
                    continue
                self.manager.emit(
                    PortEvent(
                        type=kind,
                        service=r.component,
                        error=None if r.status == "healthy" else r.message,
                        port=(r.details or {}).get("port"),
                        timestamp=r.timestamp,
                    )
                )

    def port_health_check(self, service: str) -> bool:
        """The service's port accepts connections, and whoever listens there is its
        rightful holder (a squatter answering does not make the service healthy)."""
        info = self.manager.get_port_info(service)
        return info.state == "listening" and _connects(info.port, self._io_timeout())

    def _io_timeout(self) -> float:
        """One connect or HTTP exchange never outlives the check's own time-out, so a
        hanging server does not pile up worker threads behind the cut-off results."""
        return min(CONNECT_TIMEOUT, self.manager.config.health_check_timeout)

    # --- components ----------------------------------------------------------------------

    def _port_manager(self) -> Outcome:
        stats = self.manager.get_stats()
        leases = self.manager.get_port_stats()
        conflicts = sorted(s for s, info in leases.items() if info.state == "conflict")
        details = {"leases": len(leases), "conflicts": conflicts, **stats.model_dump()}
        if conflicts:
            return "unhealthy", f"{len(conflicts)} service(s) in conflict", details
        return "healthy", f"{len(leases)} lease(s)", details

    def _registry(self) -> Outcome:
        """Unhealthy when the sidecar fell back to memory at open (`fallback`, and why), or
        when the file met a fault since (`fault`: a full disk, an I/O error, ...) that one
        small write shows is not over yet, or when the file was removed or replaced."""
        registry = self.manager.registry
        details: dict[str, Any] = {"path": registry.path}
        if registry.degraded:
            details["fallback"] = "memory"
            details["reason"] = registry.degraded
            return "unhealthy", f"using a private in-memory registry: {registry.degraded}", details
        if registry.path == MEMORY:
            return "healthy", "in-memory registry (asked for)", details
        try:
            problem = registry.recheck()
            if problem is None:
                details["leases"] = len(registry.leases())
        except RegistryUnavailable:
            problem = registry.fault or "it cannot be read"
        if problem is not None:
            details["fault"] = problem
            return "unhealthy", f"{registry.path}: {problem}", details
        return "healthy", f"{registry.path} is readable and writable", details

    def _frontend_server(self) -> Outcome:
        frontend = self.manager.config.frontend
        port = frontend.port if frontend else None
        if frontend and port is None and frontend.service:
            try:
                port = self.manager.lease_of(frontend.service).port
            except Exception:
                return "unhealthy", f"service {frontend.service!r} has no port", {}
        if frontend is None or port is None:
            return "unknown", "no frontend configured", {}
        details: dict[str, Any] = {"port": port}
        timeout = self._io_timeout()
        if frontend.path:
            return _http_get(port, frontend.path, details, timeout)
        if _connects(port, timeout):
            return "healthy", f"port {port} accepts connections", details
        return "unhealthy", f"nothing accepts connections on port {port}", details

    def _app(self) -> Outcome:
        details: dict[str, Any] = {"pid": self.app.pid}
        if not is_alive(self.app):
            return "unhealthy", f"the app (pid {self.app.pid}) is gone", details
        proc = describe(self.app.pid)
        details["name"] = proc.name if proc else None
        return "healthy", f"the app (pid {self.app.pid}) is running", details

    def _system_resources(self) -> Outcome:
        limits = self.manager.config.thresholds
        registry_dir = Path(self.manager.registry.path).parent
        disk_path = str(registry_dir) if registry_dir.is_dir() else os.path.abspath(os.sep)
        used = {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "memory_percent": psutil.virtual_memory().percent,
            "disk_percent": psutil.disk_usage(disk_path).percent,
        }
        over = [
            f"{k} {v:.0f}% > {getattr(limits, k):g}%"
            for k, v in used.items()
            if v > getattr(limits, k)
        ]
        details = {**used, "thresholds": limits.model_dump()}
        if over:
            return "unhealthy", "; ".join(over), details
        return "healthy", "CPU, memory and disk within thresholds", details

    def _network(self) -> Outcome:
        stats = psutil.net_if_stats()
        loopbacks = [
            name
            for name, addrs in psutil.net_if_addrs().items()
            if any(a.address in ("127.0.0.1", "::1") for a in addrs)
        ]
        up = [name for name in loopbacks if name in stats and stats[name].isup]
        try:
            resolved = sorted({str(ai[4][0]) for ai in socket.getaddrinfo("localhost", None)})
        except OSError as exc:
            return "unhealthy", f"localhost does not resolve: {exc}", {"loopback": up}
        details = {"loopback": up, "localhost": resolved}
        if not up:
            return "unhealthy", "no loopback interface is up", details
        if not all(a.startswith("127.") or a == "::1" for a in resolved):
            return "unhealthy", f"localhost resolves off the machine: {resolved}", details
        return "healthy", "loopback up; localhost resolves", details


def _start(name: str, check: Callable[[], Outcome]) -> Future[Outcome]:
    """Run one check on a thread of its own. A pool would queue every later check behind
    one that hangs, and would hold up the sidecar's exit while it hangs (a pool's threads
    are joined at exit); a daemon thread does neither, and a cut-off one just ends later."""
    future: Future[Outcome] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(check())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name=f"health-{name}", daemon=True).start()
    return future


def _connects(port: int, timeout: float = CONNECT_TIMEOUT) -> bool:
    for host in ("127.0.0.1", "::1"):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def _http_get(port: int, path: str, details: dict[str, Any], timeout: float) -> Outcome:
    import http.client  # only frontends with a path are checked over HTTP

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path if path.startswith("/") else "/" + path)
        status = conn.getresponse().status
    except TimeoutError:
        return "unhealthy", f"GET {path} on port {port}: no answer within {timeout:g} s", details
    except (OSError, http.client.HTTPException) as exc:
        return "unhealthy", f"GET {path} on port {port} failed: {exc}", details
    finally:
        conn.close()
    details["http_status"] = status
    if status >= 500:
        return "unhealthy", f"GET {path} answered {status}", details
    return "healthy", f"GET {path} answered {status}", details
