"""One exception class per JSON-RPC error code the sidecar sends.

The engine raises these; the RPC layer turns them into error responses. Nothing here imports
pydantic, so the engine and the CLI can use them without paying for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic_core import ValidationError


class PortdError(Exception):
    """An error that maps to one JSON-RPC error code."""

    code: ClassVar[int] = -32603
    title: ClassVar[str] = "Internal error"

    def __init__(self, message: str | None = None, data: Any = None) -> None:
        self.message = message or self.title
        self.data = data
        super().__init__(self.message)


def wire_errors(exc: ValidationError) -> list[Any]:
    """pydantic's error list as the `data` of -32602: no input echoed back, no URLs."""
    errors: list[Any] = exc.errors(include_url=False, include_context=False, include_input=False)
    return errors


class ParseError(PortdError):
    code = -32700
    title = "Parse error"


class InvalidRequest(PortdError):
    code = -32600
    title = "Invalid request"


class MethodNotFound(PortdError):
    code = -32601
    title = "Method not found"


class InvalidParams(PortdError):
    code = -32602
    title = "Invalid params"


class InternalError(PortdError):
    code = -32603
    title = "Internal error"


class NoPortAvailable(PortdError):
    code = -32001
    title = "No port available"


class UnknownService(PortdError):
    code = -32002
    title = "Unknown service"


class PermissionDenied(PortdError):
    code = -32003
    title = "Permission denied"


class RegistryUnavailable(PortdError):
    code = -32004
    title = "Registry unavailable"


class InvalidPortPlan(PortdError):
    code = -32005
    title = "Invalid port plan"


class ShuttingDown(PortdError):
    code = -32006
    title = "Shutting down"


ERRORS_BY_CODE: dict[int, type[PortdError]] = {
    cls.code: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        NoPortAvailable,
        UnknownService,
        PermissionDenied,
        RegistryUnavailable,
        InvalidPortPlan,
        ShuttingDown,
    )
}
