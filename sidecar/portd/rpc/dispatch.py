"""JSON-RPC messages in, responses out: envelope checks, batches, params validation and the
mapping of every failure to its error code.

jsonrpcserver does the method dispatch, through its per-request pipeline (method lookup, call,
result to response). Its batch handling and its jsonschema check of every request are left
out: we split batches ourselves, the envelope check below is what that schema checks (at a
fraction of the cost), and params are validated once, by pydantic.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio
from jsonrpcserver.async_dispatcher import dispatch_request
from jsonrpcserver.dispatcher import create_request, to_response
from jsonrpcserver.response import to_serializable_one
from jsonrpcserver.result import Error, Success
from jsonrpcserver.sentinels import NOCONTEXT, NOID
from pydantic import BaseModel, ValidationError

from ..protocol.errors import InternalError, InvalidParams, InvalidRequest, ParseError, PortdError
from ..protocol.methods import METHODS
from ..protocol.models import wire_errors
from .framing import encode_json

log = logging.getLogger(__name__)

Handler = Callable[[Any], Any]
Gate = Callable[[str], None]  # raises (e.g. ShuttingDown) to refuse a call


def error_response(error: PortdError, request_id: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.data is not None:
        body["data"] = error.data
    return {"jsonrpc": "2.0", "error": body, "id": request_id}


def to_wire(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value


class Dispatcher:
    """Answers one decoded message (a request, a notification or a batch)."""

    def __init__(self, handlers: dict[str, Handler], gate: Gate | None = None) -> None:
        missing = set(METHODS) - set(handlers)
        if missing:
            raise ValueError(f"no handler for {sorted(missing)}")
        self._gate = gate
        self._methods = {name: self._method(name, handlers[name]) for name in METHODS}

    async def handle(self, payload: bytes) -> bytes | None:
        message = self.parse(payload)
        return message if isinstance(message, bytes) else await self.answer(message)

    @staticmethod
    def parse(payload: bytes) -> Any:
        """The decoded message, or the ready-made error reply (bytes) if it is not JSON."""
        try:
            return json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return encode_json(error_response(ParseError("Parse error: the message is not JSON")))

    @staticmethod
    def is_quick(message: Any) -> bool:
        """A single call that never waits: it can be answered inline, without a task."""
        if not isinstance(message, dict):
            return False
        spec = METHODS.get(message.get("method"))  # type: ignore[arg-type]
        return spec is not None and not spec.slow

    async def answer(self, message: Any) -> bytes | None:
        if isinstance(message, list):
            if not message:
                return encode_json(error_response(InvalidRequest("Invalid request: empty batch")))
            answers: list[Any] = [None] * len(message)

            async def answer(index: int, member: Any) -> None:
                answers[index] = await self.handle_one(member)

            # Each member on its own: one bad member does not spoil the others.
            async with anyio.create_task_group() as group:
                for index, member in enumerate(message):
                    group.start_soon(answer, index, member)
            replies = [a for a in answers if a is not None]
            return encode_json(replies) if replies else None
        reply = await self.handle_one(message)
        return None if reply is None else encode_json(reply)

    async def handle_one(self, request: Any) -> dict[str, Any] | None:
        problem = _envelope_problem(request)
        if problem is not None:
            request_id = request.get("id") if isinstance(request, dict) else None
            valid_id = request_id if _is_valid_id(request_id) else None
            return error_response(InvalidRequest(f"Invalid request: {problem}"), valid_id)
        # jsonrpcserver's pipeline for one request (method lookup, call, result to response);
        # its batch and deserialising layers are ours, since we split batches ourselves.
        call = create_request(request)
        call, result = await dispatch_request(self._methods, NOCONTEXT, call)
        if call.id is NOID:
            return None
        return cast("dict[str, Any]", to_serializable_one(to_response(call, result)))

    def _method(self, name: str, handler: Handler) -> Callable[..., Awaitable[Any]]:
        spec = METHODS[name]

        async def call(*positional: Any, **params: Any) -> Any:
            try:
                if self._gate is not None:
                    self._gate(name)
                if positional:
                    raise InvalidParams(f"Invalid params for {name}: pass params by name")
                try:
                    parsed = spec.params.model_validate(params)
                except ValidationError as exc:
                    raise InvalidParams(f"Invalid params for {name}", wire_errors(exc)) from None
                if spec.slow:
                    result = await anyio.to_thread.run_sync(handler, parsed)
                else:
                    result = handler(parsed)
                return Success(to_wire(result))
            except PortdError as exc:
                return (
                    Error(exc.code, exc.message, exc.data)
                    if exc.data is not None
                    else Error(exc.code, exc.message)
                )
            except Exception:
                # The trace is for the log; the client learns only that it was ours.
                log.exception("internal error in %s", name)
                return Error(InternalError.code, InternalError.title)

        call.__signature__ = _ANY_ARGUMENTS  # type: ignore[attr-defined]
        return call


# jsonrpcserver checks each call's arguments against the method's signature; ours takes any
# (pydantic validates them), and a ready-made signature spares it introspecting every call.
_ANY_ARGUMENTS = inspect.Signature(
    [
        inspect.Parameter("positional", inspect.Parameter.VAR_POSITIONAL),
        inspect.Parameter("params", inspect.Parameter.VAR_KEYWORD),
    ]
)


def _is_valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def _envelope_problem(request: Any) -> str | None:
    if not isinstance(request, dict):
        return "a request must be an object"
    if request.get("jsonrpc") != "2.0":
        return 'jsonrpc must be "2.0"'
    if not isinstance(request.get("method"), str):
        return "method must be a string"
    if "id" in request and not _is_valid_id(request["id"]):
        return "id must be a string, a number or null"
    if set(request) - {"jsonrpc", "method", "params", "id"}:
        return f"unknown members {sorted(set(request) - {'jsonrpc', 'method', 'params', 'id'})}"
    if "params" in request and not isinstance(request["params"], dict | list):
        return "params must be an object"
    return None
