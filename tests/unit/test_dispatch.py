"""rpc/dispatch: one decoded message in, the right JSON-RPC answer out."""

from __future__ import annotations

import json
import threading
from typing import Any

import anyio
import pytest

from portd.protocol.errors import UnknownService
from portd.protocol.methods import METHODS
from portd.rpc.dispatch import Dispatcher


def boom(_: Any) -> None:
    raise RuntimeError("secret detail /etc/passwd")


def unknown(_: Any) -> None:
    raise UnknownService("no lease for service 'x'")


threads: dict[str, int] = {}


def where(name: str) -> Any:
    def handler(_: Any) -> str:
        threads[name] = threading.get_ident()
        return name

    return handler


HANDLERS: dict[str, Any] = {name: where(name) for name in METHODS}
HANDLERS |= {
    "allocate_port": lambda p: 1421 + len(p.service_name),
    "init_port_manager": boom,
    "get_port_info": unknown,
}


def ask(message: Any) -> Any:
    raw = message if isinstance(message, bytes) else json.dumps(message).encode()
    reply = anyio.run(Dispatcher(HANDLERS).handle, raw)
    return None if reply is None else json.loads(reply)


def request(method: str, params: Any = None, request_id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        message["params"] = params
    return message


def test_a_good_request_gets_its_result_and_id() -> None:
    assert ask(request("allocate_port", {"service_name": "vite"}, "a")) == {
        "jsonrpc": "2.0",
        "result": 1425,
        "id": "a",
    }


@pytest.mark.parametrize(
    ("message", "code", "answer_id"),
    [
        (b"{not json", -32700, None),
        (5, -32600, None),
        ({"jsonrpc": "1.0", "method": "get_stats", "id": 3}, -32600, 3),
        ({"jsonrpc": "2.0", "method": 7, "id": 3}, -32600, 3),
        ({"jsonrpc": "2.0", "method": "x", "id": {"bad": 1}}, -32600, None),
        ({"jsonrpc": "2.0", "method": "release_port", "params": "x", "id": 3}, -32600, 3),
        (request("no_such_method"), -32601, 1),
        (request("allocate_port", {"service_name": 5}), -32602, 1),
        (request("allocate_port", {}), -32602, 1),
        (request("allocate_port", {"service_name": "x", "extra": 1}), -32602, 1),
        (request("allocate_port", ["x"]), -32602, 1),
        (request("is_port_available", {"port": 70000}), -32602, 1),
        (request("get_port_info", {"service_name": "x"}), -32002, 1),
        (request("init_port_manager"), -32603, 1),
    ],
)
def test_each_bad_message_gets_its_error_code(message: Any, code: int, answer_id: Any) -> None:
    reply = ask(message)
    assert reply["error"]["code"] == code and reply["id"] == answer_id


def test_invalid_params_carry_pydantics_error_list() -> None:
    data = ask(request("is_port_available", {"port": "80"}))["error"]["data"]
    assert data[0]["loc"] == ["port"] and data[0]["type"] == "int_type"


def test_an_internal_error_sends_no_exception_text() -> None:
    reply = ask(request("init_port_manager"))
    assert reply["error"] == {"code": -32603, "message": "Internal error"}
    assert "secret" not in json.dumps(reply)


def test_a_notification_gets_no_answer_even_when_it_fails() -> None:
    assert ask({"jsonrpc": "2.0", "method": "get_stats"}) is None
    assert ask({"jsonrpc": "2.0", "method": "nope"}) is None


def test_an_empty_batch_is_one_invalid_request() -> None:
    assert ask([])["error"]["code"] == -32600


def test_a_batch_answers_each_member_on_its_own_in_order() -> None:
    batch = [
        request("allocate_port", {"service_name": "ab"}, 1),
        {"jsonrpc": "2.0", "method": "get_port_stats"},
        request("nope", None, 2),
        7,
        request("allocate_port", {"serviceName": "abc"}, 3),
    ]
    replies = ask(batch)
    assert [r.get("result", r.get("error", {}).get("code")) for r in replies] == [
        1423,
        -32601,
        -32600,
        1424,
    ]
    assert [r["id"] for r in replies] == [1, 2, None, 3]


def test_a_batch_of_notifications_gets_no_answer() -> None:
    assert ask([{"jsonrpc": "2.0", "method": "get_port_stats"}] * 3) is None


def test_slow_methods_run_off_the_event_loop_thread() -> None:
    slow, fast = "perform_health_check", "get_stats"
    assert METHODS[slow].slow and not METHODS[fast].slow

    async def both() -> int:
        dispatcher = Dispatcher(HANDLERS)
        for name in (slow, fast):
            await dispatcher.handle(json.dumps(request(name)).encode())
        return threading.get_ident()

    loop_thread = anyio.run(both)
    assert threads[fast] == loop_thread != threads[slow]


def test_a_gate_refuses_calls_while_shutting_down() -> None:
    from portd.protocol.errors import ShuttingDown

    def closed(_: str) -> None:
        raise ShuttingDown("bye")

    reply = anyio.run(
        Dispatcher(HANDLERS, gate=closed).handle, json.dumps(request("get_port_stats")).encode()
    )
    assert json.loads(reply)["error"]["code"] == -32006  # type: ignore[arg-type]


def test_every_method_needs_a_handler() -> None:
    with pytest.raises(ValueError, match="no handler"):
        Dispatcher({"allocate_port": lambda p: 1})
