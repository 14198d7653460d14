"""The wire contract, the single source of truth for every message that crosses stdio."""

from .. import PROTOCOL_VERSION
from .errors import (
    ERRORS_BY_CODE,
    InternalError,
    InvalidParams,
    InvalidPortPlan,
    InvalidRequest,
    MethodNotFound,
    NoPortAvailable,
    ParseError,
    PermissionDenied,
    PortdError,
    RegistryUnavailable,
    ShuttingDown,
    UnknownService,
)

__all__ = [
    "ERRORS_BY_CODE",
    "PROTOCOL_VERSION",
    "InternalError",
    "InvalidParams",
    "InvalidPortPlan",
    "InvalidRequest",
    "MethodNotFound",
    "NoPortAvailable",
    "ParseError",
    "PermissionDenied",
    "PortdError",
    "RegistryUnavailable",
    "ShuttingDown",
    "UnknownService",
]
