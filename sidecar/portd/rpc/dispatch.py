"""JSON-RPC messages in, responses out: envelope checks, batches, params validation and the
mapping of every failure to its error code.

This layer is our own rather than jsonrpcserver's. Its jsonschema check of every request
(about 60 us) was already replaced by the envelope check below, its batch handling by ours
(it rejects a batch whole), and its params checks by pydantic; what was left, a method
lookup, still cost about 15 us a request through its signature binding and result monads,
and importing it costs about 35 ms of start-up, because it imports jsonschema
unconditionally. Both sit between the app's first request and its answer.

Nor does answering a quick call import pydantic: its params are checked by pydantic-core
against the schema pydantic built for them (`protocol/table.py`, generated from the models),
and only the methods with nested params (`init_port_manager`) load the models themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic_core import SchemaValidator, ValidationError

from ..protocol.errors import (
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    PortdError,
    wire_errors,
)
from ..protocol.table import FLAT_PARAMS, METHOD_NAMES, SLOW_METHODS
from .framing import encode_json
from .parse import parse_message

log = logging.getLogger(__name__)

Handler = Callable[[Any], Any]
Gate = Callable[[str], None]  # raises (e.g. ShuttingDown) to refuse a call
_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})


def error_response(error: PortdError, request_id: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.data is not None:
        body["data"] = error.data
    return {"jsonrpc": "2.0", "error": body, "id": request_id}


def to_wire(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value.model_dump(mode="json", exclude_none=True)  # a WireModel


class Params:
    """Flat params as validated by pydantic-core: the fields, read like a model's."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)


class Call:
    """A request that passed the envelope check, with its params validated."""

    __slots__ = ("method", "params")

    def __init__(self, method: str, params: Any) -> None:
        self.method = method
        self.params = params  # a `Params` or, for nested params, the method's model


class Dispatcher:
    """Answers one decoded message (a request, a notification or a batch).

    Quick calls (`is_quick`) can be answered on the spot with `answer_now`; anything that
    may wait (slow methods run in a worker thread, batches) goes through `answer`."""

    def __init__(self, handlers: dict[str, Handler], gate: Gate | None = None) -> None:
        missing = set(METHOD_NAMES) - set(handlers)
        if missing:
            raise ValueError(f"no handler for {sorted(missing)}")
        self._gate = gate
        self._handlers = {name: handlers[name] for name in METHOD_NAMES}
        self._flat = {name: SchemaValidator(*schema) for name, schema in FLAT_PARAMS.items()}

    async def handle(self, payload: bytes) -> bytes | None:
        """One frame's body to its answer, as the session gives it (without its threads)."""
        try:
            message = parse_message(payload)
        except PortdError as exc:  # not JSON, or not a message
            return encode_json(error_response(exc))
        return self.answer_now(message) if self.is_quick(message) else await self.answer(message)

    @staticmethod
    def is_quick(message: Any) -> bool:
        """A single message that never waits: anything but a batch or a slow method."""
        if not isinstance(message, dict):
            return False
        method = message.get("method")
        return method not in SLOW_METHODS if isinstance(method, str) else True

    def answer_now(self, message: Any) -> bytes | None:
        """The answer to a quick message (see `is_quick`), on the calling thread."""
        try:
            call = self._accept(message)
            reply = self._success(message, self._handlers[call.method](call.params))
        except Exception as exc:
            reply = self._failure(message, exc)
        return None if reply is None else _encode(reply)

    async def answer(self, message: Any) -> bytes | None:
        if not isinstance(message, list):
            reply = await self.answer_one(message)
            return None if reply is None else _encode(reply)
        if not message:
            return encode_json(error_response(InvalidRequest("Invalid request: empty batch")))
        import anyio  # batches and slow calls only: not on the way to the first answer

        answers: list[Any] = [None] * len(message)

        async def answer_member(index: int, member: Any) -> None:
            answers[index] = await self.answer_one(member)

        # Each member on its own: one bad member does not spoil the others.
        async with anyio.create_task_group() as group:
            for index, member in enumerate(message):
                group.start_soon(answer_member, index, member)
        replies = [a for a in answers if a is not None]
        return _encode(replies) if replies else None

    async def answer_one(self, request: Any) -> dict[str, Any] | None:
        try:
            call = self._accept(request)
            handler = self._handlers[call.method]
            if call.method in SLOW_METHODS:
                import anyio

                result = await anyio.to_thread.run_sync(handler, call.params)
            else:
                result = handler(call.params)
            return self._success(request, result)
        except Exception as exc:
            return self._failure(request, exc)

    def _accept(self, request: Any) -> Call:
        problem = _envelope_problem(request)
        if problem is not None:
            raise InvalidRequest(f"Invalid request: {problem}")
        method = request["method"]
        if method not in self._handlers:
            raise MethodNotFound(f"Method not found: {method}")
        if self._gate is not None:
            self._gate(method)
        params = request.get("params", {})
        if isinstance(params, list):
            raise InvalidParams(f"Invalid params for {method}: pass params by name")
        try:
            return Call(method, self._validate(method, params))
        except ValidationError as exc:
            raise InvalidParams(f"Invalid params for {method}", wire_errors(exc)) from None

    def _validate(self, method: str, params: dict[str, Any]) -> Any:
        flat = self._flat.get(method)
        if flat is not None:
            fields, _, _ = flat.validate_python(params)
            return Params(fields)
        from ..protocol.methods import METHODS  # the models, and so pydantic

        return METHODS[method].params.model_validate(params)

    @staticmethod
    def _success(request: dict[str, Any], result: Any) -> dict[str, Any] | None:
        if "id" not in request:
            return None  # a notification
        return {"jsonrpc": "2.0", "result": to_wire(result), "id": request["id"]}

    @staticmethod
    def _failure(request: Any, exc: Exception) -> dict[str, Any] | None:
        if not isinstance(exc, PortdError):
            # The trace is for the log; the client learns only that it was ours.
            log.error("internal error answering %.200r", request, exc_info=exc)
            exc = InternalError()
        if isinstance(exc, InvalidRequest):
            log.warning("refused a request: %s", exc.message)
            # Always answered, with the id if it is a valid one: the sender cannot be trusted
            # to have meant a notification.
            request_id = request.get("id") if isinstance(request, dict) else None
            return error_response(exc, request_id if _is_valid_id(request_id) else None)
        if "id" not in request:
            return None  # a notification: no answer, not even an error
        return error_response(exc, request["id"])


def _encode(reply: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """The reply as a frame body; should a result not encode (a bug of ours), its request
    still gets an answer: -32603 with its id."""
    try:
        return encode_json(reply)
    except (TypeError, ValueError, RecursionError) as exc:
        if isinstance(reply, list):
            return b"[" + b",".join(_encode(member) for member in reply) + b"]"
        log.error("internal error encoding the answer to id %.60r", reply.get("id"), exc_info=exc)
        return encode_json(error_response(InternalError(), reply.get("id")))


_ID_TYPES = frozenset({str, int, float, type(None)})  # exact types: a bool is no id


def _is_valid_id(value: Any) -> bool:
    return type(value) in _ID_TYPES


def _envelope_problem(request: Any) -> str | None:
    if not isinstance(request, dict):
        return "a request must be an object"
    if request.get("jsonrpc") != "2.0":
        return 'jsonrpc must be "2.0"'
    if not isinstance(request.get("method"), str):
        return "method must be a string"
    if "id" in request and not _is_valid_id(request["id"]):
        return "id must be a string, a number or null"
    if not _MEMBERS.issuperset(request):
        return f"unknown members {sorted(set(request) - _MEMBERS)}"
    if "params" in request and not isinstance(request["params"], dict | list):
        return "params must be an object"
    return None
