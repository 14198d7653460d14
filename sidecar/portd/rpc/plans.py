"""The sidecar's port-plan methods. `portd.plan` is imported on first use only: a sidecar
that never sees a plan pays nothing for it at start-up."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .. import probe
from ..manager import PortManager
from ..protocol.errors import InvalidPortPlan, NoPortAvailable, PermissionDenied
from ..protocol.models import PlanFinding, PortPlanSummary

if TYPE_CHECKING:
    from ..plan import Plan


class PlanMethods:
    def __init__(self, manager: PortManager) -> None:
        self.manager = manager
        self.plan: Plan | None = None
        self._lock = threading.Lock()

    def load_port_plan(self, path: str) -> PortPlanSummary:
        plan = self._load(path)
        summary = self._summary(plan)
        if summary.errors:
            raise InvalidPortPlan(
                f"{path}: {summary.errors} error(s); not loaded",
                summary.model_dump(mode="json")["findings"],
            )
        with self._lock:
            self.plan = plan
            self.manager.plan_port = plan.port_for
        return summary

    def check_port_plan(self, path: str | None) -> PortPlanSummary:
        if path is not None:
            return self._summary(self._load(path))
        return self._summary(self._loaded())

    def next_plan_port(self, category: str) -> int:
        from ..plan import PlanError, next_port

        plan = self._loaded()
        if category not in plan.categories:
            known = ", ".join(plan.categories) or "none"
            raise InvalidPortPlan(f"unknown category {category!r} (categories: {known})")
        try:
            return next_port(plan, category, self._is_free)
        except PlanError as exc:  # the category has no unused port that is free now
            raise NoPortAvailable(str(exc)) from None

    def _is_free(self, port: int) -> bool:
        try:
            return self.manager.is_port_available(port)
        except PermissionDenied:
            return False

    def _loaded(self) -> Plan:
        if self.plan is None:
            raise InvalidPortPlan("no port plan is loaded: call load_port_plan first")
        return self.plan

    @staticmethod
    def _load(path: str) -> Plan:
        from ..plan import PlanError, load_plan

        try:
            return load_plan(path)
        except PlanError as exc:
            raise InvalidPortPlan(str(exc), {"path": exc.path, "line": exc.line}) from None

    @staticmethod
    def _summary(plan: Plan) -> PortPlanSummary:
        from ..plan import check_plan

        findings = check_plan(plan, ephemeral_range=probe.ephemeral_port_range())
        services: dict[str, dict[str, int]] = {}
        for planned in plan.ports:
            services.setdefault(planned.service, {})[planned.name] = planned.port
        return PortPlanSummary(
            path=plan.path,
            categories={name: (c.low, c.high) for name, c in plan.categories.items()},
            services=services,
            errors=sum(f.severity == "error" for f in findings),
            warnings=sum(f.severity == "warning" for f in findings),
            findings=[
                PlanFinding(
                    severity=f.severity,
                    code=f.code,
                    message=f.message,
                    path=f.path,
                    line=f.line,
                    services=list(f.services),
                )
                for f in findings
            ],
        )
