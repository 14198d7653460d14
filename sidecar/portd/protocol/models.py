"""The wire contract: every type that crosses stdio, as pydantic models.

snake_case is canonical on the wire; camelCase is accepted on input because Tauri's `invoke`
sends it. Unknown fields are rejected so that a misspelt param is an error, not a silent
default. The TypeScript types are generated from these models (`portd schema`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)
from pydantic.alias_generators import to_camel

from .defaults import ALLOCATION_DEFAULTS as DEFAULTS

Port = Annotated[StrictInt, Field(ge=1, le=65535, description="A TCP port, 1-65535.")]
Pid = Annotated[StrictInt, Field(ge=1)]
ServiceName = Annotated[str, Field(min_length=1, max_length=200, strict=True)]
Millis = Annotated[int, Field(description="Unix time in milliseconds.")]


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        loc_by_alias=False,  # errors name fields as the wire does: snake_case
        extra="forbid",
        defer_build=True,
        frozen=True,
    )


class FrontendConfig(WireModel):
    """Where the app's frontend dev server is, for the `frontend_server` health check."""

    port: Port | None = None
    service: ServiceName | None = None
    path: str | None = Field(None, description="HTTP path to GET; TCP connect when absent.")


class ResourceThresholds(WireModel):
    """Above these, `system_resources` reports unhealthy."""

    cpu_percent: float = Field(95.0, gt=0, le=100)
    memory_percent: float = Field(90.0, gt=0, le=100)
    disk_percent: float = Field(95.0, gt=0, le=100)


class PortConfig(WireModel):
    """The port manager's configuration; the defaults are the original system's."""

    preferred_port: Port = DEFAULTS.preferred_port
    port_range: tuple[Port, Port] = DEFAULTS.port_range
    max_retries: Annotated[StrictInt, Field(ge=0, le=1000)] = DEFAULTS.max_retries
    health_check_interval: float = Field(30.0, gt=0, description="Seconds.")
    conflict_scan_interval: float = Field(2.0, gt=0, description="Seconds.")
    health_check_timeout: float = Field(5.0, gt=0, description="Seconds one check may take.")
    auto_resolve: StrictBool = True
    app_id: ServiceName = DEFAULTS.app_id
    frontend: FrontendConfig | None = None
    thresholds: ResourceThresholds = ResourceThresholds()

    @model_validator(mode="after")
    def _range_is_ordered(self) -> PortConfig:
        low, high = self.port_range
        if low > high:
            raise ValueError(f"port_range is backwards: {low} > {high}")
        return self


class PortConfigUpdate(WireModel):
    """The fields of `PortConfig` to change; the rest stay as they are."""

    preferred_port: Port | None = None
    port_range: tuple[Port, Port] | None = None
    max_retries: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    health_check_interval: float | None = Field(None, gt=0)
    conflict_scan_interval: float | None = Field(None, gt=0)
    health_check_timeout: float | None = Field(None, gt=0)
    auto_resolve: StrictBool | None = None
    app_id: ServiceName | None = None
    frontend: FrontendConfig | None = None
    thresholds: ResourceThresholds | None = None


LeaseState = Literal["leased", "listening", "conflict", "orphan"]


class PortInfo(WireModel):
    """A service's lease as this app sees it."""

    service: str
    port: Port
    app_id: str
    owner_pid: int
    holder_pids: list[int]
    state: LeaseState
    allocated_at: Millis


class PortOwner(WireModel):
    """Who holds a port: the listening process, and the lease naming the port, if any."""

    port: Port
    pid: int | None = None
    name: str | None = None
    user: str | None = None
    cmdline: list[str] = []
    started_at: Millis | None = None
    lease: PortInfo | None = None
    orphan: bool = False


PortEventType = Literal[
    "PortChanged",
    "PortConflict",
    "PortAvailable",
    "HealthCheckFailed",
    "HealthCheckSuccess",
    "ServiceUp",
    "ServiceMoved",
    "ServiceDown",
]


class PortEvent(WireModel):
    """The payload of the `port_event` notification. The `Service*` types are about a
    service this sidecar watches (`watch_service`): they name its `app_id`, and `host` and
    `address` say where it is now (for `ServiceDown`: where it was)."""

    type: PortEventType
    old_port: int | None = None
    new_port: int | None = None
    port: int | None = None
    service: str | None = None
    app_id: str | None = None
    host: str | None = None
    address: str | None = None
    error: str | None = None
    timestamp: Millis


ServiceState = Literal["live", "remote", "orphan"]


class ServiceLocation(WireModel):
    """Where one lease of another app's service is, as `resolve_service` finds it."""

    app_id: str
    service: str
    port: Port
    host: str = Field(description="The host id of the lease's owner (for SQLite: this machine).")
    address: str = Field(description="What to connect to: 127.0.0.1 on this host, else `host`.")
    local: bool = Field(description="The owner runs on this host.")
    state: ServiceState = Field(
        description="live: its owner runs; remote: another host's (only that host can tell); "
        "orphan: its owner is gone but a server it started still runs."
    )
    pid: int = Field(description="The owner's pid, on `host`.")
    holder_pids: list[int]
    allocated_at: Millis


HealthStatus = Literal["healthy", "unhealthy", "unknown"]


class HealthCheckResult(WireModel):
    component: str
    status: HealthStatus
    message: str
    timestamp: Millis
    latency: float | None = Field(None, description="Milliseconds the check took.")
    details: dict[str, Any] | None = None


class SystemHealthStatus(WireModel):
    status: HealthStatus
    components: list[HealthCheckResult]
    timestamp: Millis


class Stats(WireModel):
    """Counters since this sidecar started."""

    allocations: int
    releases: int
    conflicts: int
    resolutions: int
    health_checks: int
    uptime: float = Field(description="Seconds.")


class Ready(WireModel):
    """The `ready` notification, always the first message the sidecar sends."""

    version: str
    protocol: Literal[1]
    pid: int
    framing: Literal["ndjson", "lsp"]
    registry: str
    owner_pid: int
    app_id: str


class PlanFinding(WireModel):
    """One thing `check_port_plan` found, located in the plan file."""

    severity: Literal["error", "warning"]
    code: str
    message: str
    path: str
    line: int | None = None
    services: list[str] = []


class PortPlanSummary(WireModel):
    """A port plan as loaded: its categories, each service's ports, and what checking found."""

    path: str
    categories: dict[str, tuple[int, int]]
    services: dict[str, dict[str, int]]
    errors: int
    warnings: int
    findings: list[PlanFinding]


# Params of each method, by name.


class NoParams(WireModel):
    pass


class InitPortManagerParams(WireModel):
    config: PortConfigUpdate | None = None


class FindAvailablePortParams(WireModel):
    preferred: Port | None = None
    range: tuple[Port, Port] | None = None


class AllocatePortParams(WireModel):
    service_name: ServiceName
    preferred_port: Port | None = None


class ServiceParams(WireModel):
    service_name: ServiceName


class IsPortAvailableParams(WireModel):
    port: Port
    host: str | None = Field(None, description="Check this address only; default all of them.")


class PortParams(WireModel):
    port: Port


class AttachProcessParams(WireModel):
    service_name: ServiceName
    pid: Pid


class PlanPathParams(WireModel):
    path: str = Field(min_length=1)


class CheckPortPlanParams(WireModel):
    path: str | None = None


class NextPlanPortParams(WireModel):
    category: str = Field(min_length=1)


class ServiceRefParams(WireModel):
    """Another app's service, named by the app's id and the service's name."""

    app_id: ServiceName
    service_name: ServiceName
