"""The wire contract of `portd serve`, spoken over real pipes in both framings: `ready` first,
every bad input answered with its JSON-RPC error while the sidecar keeps serving, batches
answered member by member, and stdout carrying protocol frames only."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import FakeApp, reap
from tests.support.regfile import leases, leases_when_readable
from tests.support.sidecar import RpcError, Sidecar, sidecar_command, wait_until

MIB = 1 << 20


@pytest.fixture(params=["ndjson", "lsp"])
def framing(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sidecar(spawn_sidecar: Callable[..., Sidecar], framing: str) -> Sidecar:
    return spawn_sidecar(framing=framing)


def frame(body: bytes, framing: str) -> bytes:
    if framing == "lsp":
        return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    return body + b"\n"


def parse_frames(raw: bytes, framing: str) -> list[Any]:
    """Every frame of a stdout capture; fails on any byte that is not part of a frame."""
    messages = []
    if framing == "ndjson":
        assert raw.endswith(b"\n"), raw[-200:]
        return [json.loads(line) for line in raw.split(b"\n")[:-1]]
    rest = raw
    while rest:
        header = re.match(rb"Content-Length: (\d+)\r\n\r\n", rest)
        assert header is not None, rest[:200]
        end = header.end() + int(header.group(1))
        messages.append(json.loads(rest[header.end() : end]))
        rest = rest[end:]
    return messages


def assert_stdout_is_protocol_only(sidecar: Sidecar) -> None:
    raw = bytes(sidecar.raw)
    assert b"Traceback" not in raw
    assert b'File "' not in raw  # no stack frames, no exception text
    messages = parse_frames(raw, sidecar.framing)
    assert messages[0]["method"] == "ready"
    assert all(isinstance(m, dict | list) for m in messages)


def still_serving(sidecar: Sidecar) -> None:
    assert sidecar.proc.poll() is None
    assert sidecar.call("get_stats")["uptime"] >= 0


def answer_to(sidecar: Sidecar, body: bytes, answer_id: Any = None) -> dict[str, Any]:
    sidecar.write_raw(sidecar.frame(body))
    return sidecar.wait_response(answer_id)


def drain(sidecar: Sidecar) -> None:
    while True:
        try:
            sidecar.messages.get_nowait()
        except queue.Empty:
            return


def next_answer(sidecar: Sidecar) -> Any:
    """The next response or batch answer on the wire, skipping the sidecar's notifications."""
    while True:
        message = sidecar.next_message()
        assert message is not None, "stdout closed"
        if not (isinstance(message, dict) and "method" in message):
            return message


# --- ready -----------------------------------------------------------------------------


def test_ready_is_the_first_message_and_describes_the_sidecar(
    spawn_sidecar: Callable[..., Sidecar],
    framing: str,
    registry_path: Path,
    start_app: Callable[[], FakeApp],
) -> None:
    app = start_app()
    sidecar = spawn_sidecar(framing=framing, parent_pid=app.pid, app_id="anychat")
    first = sidecar.next_message()
    assert first == {"jsonrpc": "2.0", "method": "ready", "params": sidecar.ready}
    assert isinstance(sidecar.ready.pop("version"), str)
    assert sidecar.ready == {
        "protocol": 1,
        "pid": sidecar.pid,
        "framing": framing,
        "registry": str(registry_path),
        "owner_pid": app.pid,
        "app_id": "anychat",
    }


def test_without_parent_pid_the_owner_is_the_spawning_process(sidecar: Sidecar) -> None:
    assert sidecar.ready["owner_pid"] == os.getpid()
    assert sidecar.ready["app_id"] == "default"


def test_requests_written_before_ready_are_answered_after_it(
    spawn_sidecar: Callable[..., Sidecar], framing: str
) -> None:
    early = json.dumps({"jsonrpc": "2.0", "id": "early", "method": "get_stats"}).encode()
    sidecar = spawn_sidecar(framing=framing, send_first=frame(early, framing))
    assert sidecar.next_message()["method"] == "ready"
    assert sidecar.wait_response("early")["result"]["allocations"] == 0


@pytest.mark.parametrize("leading", [b"", b"\r\n\r\n"], ids=["bare", "after-blank-lines"])
def test_auto_framing_answers_in_the_framing_the_client_speaks(
    spawn_sidecar: Callable[..., Sidecar], framing: str, leading: bytes
) -> None:
    first = json.dumps({"jsonrpc": "2.0", "id": "first", "method": "get_stats"}).encode()
    # The last --framing wins, so the client reads `framing` while the sidecar is told `auto`.
    sidecar = spawn_sidecar(
        framing=framing,
        extra_args=["--framing", "auto"],
        send_first=leading + frame(first, framing),
    )
    assert sidecar.next_message()["method"] == "ready"
    assert sidecar.ready["framing"] == framing
    assert sidecar.wait_response("first")["result"]["allocations"] == 0
    assert sidecar.call("allocate_port", service_name="web") >= 1
    assert_stdout_is_protocol_only(sidecar)


# --- bad input -------------------------------------------------------------------------

BAD_MESSAGES = {
    "truncated JSON": (b'{"jsonrpc": "2.0", "id": 1, "method": "get_stats"', -32700, None),
    "not JSON at all": (b"hello, portd", -32700, None),
    "invalid UTF-8": (b'{"jsonrpc": "2.0", "id": 1, "method": "\xff\xfe"}', -32700, None),
    "a number": (b"5", -32600, None),
    "a string": (b'"x"', -32600, None),
    "null": (b"null", -32600, None),
    "no jsonrpc member": (b'{"id": 3, "method": "get_stats"}', -32600, 3),
    "jsonrpc 1.0": (b'{"jsonrpc": "1.0", "id": 4, "method": "get_stats"}', -32600, 4),
    "method not a string": (b'{"jsonrpc": "2.0", "id": 5, "method": 12}', -32600, 5),
    "params a string": (
        b'{"jsonrpc": "2.0", "id": 6, "method": "get_stats", "params": "x"}',
        -32600,
        6,
    ),
}


@pytest.mark.parametrize("case", list(BAD_MESSAGES))
def test_a_bad_message_gets_its_error_and_the_sidecar_keeps_serving(
    sidecar: Sidecar, case: str
) -> None:
    body, code, answer_id = BAD_MESSAGES[case]
    answer = answer_to(sidecar, body, answer_id)
    assert answer["jsonrpc"] == "2.0"
    assert answer["id"] == answer_id
    assert answer["error"]["code"] == code
    assert "result" not in answer
    still_serving(sidecar)
    assert_stdout_is_protocol_only(sidecar)


BAD_PARAMS = {
    "port as a string": ("is_port_available", {"port": "80"}, ("port",), "int_type"),
    "port as a boolean": ("is_port_available", {"port": True}, ("port",), "int_type"),
    "port 0": ("is_port_available", {"port": 0}, ("port",), "greater_than_equal"),
    "port -1": ("get_port_owner", {"port": -1}, ("port",), "greater_than_equal"),
    "port 70000": ("is_port_available", {"port": 70000}, ("port",), "less_than_equal"),
    "preferred port 0": (
        "allocate_port",
        {"service_name": "web", "preferred_port": 0},
        ("preferred_port",),
        "greater_than_equal",
    ),
    "preferred port 70000": (
        "allocate_port",
        {"service_name": "web", "preferred_port": 70000},
        ("preferred_port",),
        "less_than_equal",
    ),
    "missing service_name": ("allocate_port", {}, ("service_name",), "missing"),
    "unknown param": (
        "allocate_port",
        {"service_name": "web", "colour": "red"},
        ("colour",),
        "extra_forbidden",
    ),
    "param of a method that takes none": (
        "get_stats",
        {"verbose": True},
        ("verbose",),
        "extra_forbidden",
    ),
    "empty service name": (
        "release_port",
        {"service_name": ""},
        ("service_name",),
        "string_too_short",
    ),
    "backwards range": ("init_port_manager", {"config": {"port_range": [1500, 1421]}}, None, None),
}


@pytest.mark.parametrize("case", list(BAD_PARAMS))
def test_invalid_params_get_minus_32602_with_the_pydantic_errors(
    sidecar: Sidecar, case: str
) -> None:
    method, params, loc, kind = BAD_PARAMS[case]
    answer = sidecar.request(method, params)
    assert "result" not in answer
    error = answer["error"]
    assert error["code"] == -32602
    assert isinstance(error["data"], list) and error["data"]
    assert all({"type", "loc", "msg"} <= set(item) for item in error["data"])
    if loc is not None:
        assert [(tuple(e["loc"]), e["type"]) for e in error["data"]] == [(loc, kind)]
    assert "Traceback" not in sidecar.stderr_text()  # the caller's mistake, not an internal error
    still_serving(sidecar)
    assert_stdout_is_protocol_only(sidecar)


def test_params_as_an_array_are_refused_with_minus_32602(sidecar: Sidecar) -> None:
    answer = answer_to(
        sidecar,
        json.dumps(
            {"jsonrpc": "2.0", "id": 8, "method": "allocate_port", "params": ["web"]}
        ).encode(),
        8,
    )
    assert answer["error"]["code"] == -32602
    assert "web" not in {s for _, s in leases(sidecar.ready["registry"])}
    still_serving(sidecar)


def test_an_unknown_method_gets_minus_32601(sidecar: Sidecar) -> None:
    with pytest.raises(RpcError) as caught:
        sidecar.call("allocate_ports", service_name="web")
    assert caught.value.code == -32601
    still_serving(sidecar)
    assert_stdout_is_protocol_only(sidecar)


def test_camel_case_params_are_accepted_as_tauri_sends_them(sidecar: Sidecar) -> None:
    port = sidecar.call("allocate_port", serviceName="web")
    assert sidecar.call("allocate_port", service_name="web") == port
    assert sidecar.call("get_port_info", serviceName="web")["port"] == port
    config = sidecar.call("init_port_manager", config={"maxRetries": 3, "autoResolve": False})
    assert (config["max_retries"], config["auto_resolve"]) == (3, False)


def test_a_message_over_1_mib_is_refused_and_the_sidecar_keeps_serving(sidecar: Sidecar) -> None:
    padding = "x" * (2 * MIB)
    huge = json.dumps(
        {"jsonrpc": "2.0", "id": 99, "method": "allocate_port", "params": {"service_name": padding}}
    ).encode()
    answer = answer_to(sidecar, huge, None)
    assert answer["error"]["code"] == -32600
    assert answer["id"] is None
    still_serving(sidecar)
    assert sidecar.call("allocate_port", service_name="after-the-big-one") >= 1
    with pytest.raises(AssertionError, match="no response"):
        sidecar.wait_response(99, timeout=0.2)  # the skipped message itself is never answered
    assert_stdout_is_protocol_only(sidecar)


def test_a_message_just_under_1_mib_is_served(sidecar: Sidecar) -> None:
    request = {
        "jsonrpc": "2.0",
        "id": "big",
        "method": "allocate_port",
        "params": {"service_name": ""},
    }
    room = MIB - len(json.dumps(request)) - 64
    request["params"]["service_name"] = "x" * room  # type: ignore[index]
    answer = answer_to(sidecar, json.dumps(request).encode(), "big")
    assert answer["error"]["code"] == -32602  # read and validated: too long a name, not a frame
    assert answer["error"]["data"][0]["type"] == "string_too_long"


# --- framing details -------------------------------------------------------------------

TOLERATED = {
    "ndjson": lambda body: b"\r\n\n" + body + b"\r\n\n\n",
    "lsp": lambda body: (
        b"content-length: %d\r\nContent-Type: application/vscode-jsonrpc; "
        b"charset=utf-8\r\n\r\n%s" % (len(body), body)
    ),
}


def test_readers_tolerate_crlf_blank_lines_headers_and_messages_split_byte_by_byte(
    sidecar: Sidecar,
) -> None:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": "split",
            "method": "allocate_port",
            "params": {"service_name": "wéb-服务"},
        },
        ensure_ascii=False,
    ).encode()
    for byte in TOLERATED[sidecar.framing](body):
        sidecar.write_raw(bytes([byte]))
    port = sidecar.wait_response("split")["result"]
    assert sidecar.call("get_port_info", service_name="wéb-服务")["port"] == port
    assert (port, "wéb-服务") in leases(sidecar.ready["registry"])
    assert_stdout_is_protocol_only(sidecar)


@pytest.mark.parametrize("header", [b"Content-Type: text/plain", b"Content-Length: abc"])
def test_an_lsp_header_without_a_usable_length_is_a_parse_error(
    spawn_sidecar: Callable[..., Sidecar], header: bytes
) -> None:
    sidecar = spawn_sidecar(framing="lsp")
    sidecar.write_raw(header + b"\r\n\r\n")
    answer = sidecar.wait_response(None)
    assert (answer["id"], answer["error"]["code"]) == (None, -32700)
    still_serving(sidecar)
    assert_stdout_is_protocol_only(sidecar)


def test_any_valid_id_is_echoed_and_an_invalid_one_is_refused(sidecar: Sidecar) -> None:
    for request_id in (None, 1.5, -7, "", "ключ"):
        answer = answer_to(
            sidecar,
            json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "get_stats"}).encode(),
            request_id,
        )
        assert answer["id"] == request_id and "result" in answer, answer
    for bad_id in ("true", "[1]", '{"a": 1}'):
        answer = answer_to(
            sidecar, b'{"jsonrpc": "2.0", "id": %s, "method": "get_stats"}' % bad_id.encode(), None
        )
        assert answer["error"]["code"] == -32600, bad_id
    still_serving(sidecar)


# --- batches ---------------------------------------------------------------------------


def test_an_empty_batch_is_one_invalid_request(sidecar: Sidecar) -> None:
    drain(sidecar)
    sidecar.write_raw(sidecar.frame(b"[]"))
    answer = next_answer(sidecar)
    assert isinstance(answer, dict)
    assert (answer["id"], answer["error"]["code"]) == (None, -32600)
    still_serving(sidecar)


def test_a_batch_of_1000_members_gets_1000_answers_in_one_array(sidecar: Sidecar) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "is_port_available", "params": {"port": 1 + i}}
        if i % 2
        else {"jsonrpc": "2.0", "id": i, "method": "get_stats"}
        for i in range(1000)
    ]
    drain(sidecar)
    sidecar.send(batch)
    answer = next_answer(sidecar)
    assert isinstance(answer, list)
    assert sorted(a["id"] for a in answer) == list(range(1000))
    assert all("result" in a for a in answer), [a for a in answer if "result" not in a][:3]
    still_serving(sidecar)
    assert_stdout_is_protocol_only(sidecar)


def test_a_mixed_batch_answers_each_member_on_its_own(sidecar: Sidecar) -> None:
    batch = [
        {
            "jsonrpc": "2.0",
            "id": "good",
            "method": "allocate_port",
            "params": {"service_name": "web"},
        },
        5,
        {"jsonrpc": "2.0", "id": "unknown", "method": "no_such_method"},
        {"jsonrpc": "2.0", "method": "allocate_port", "params": {"service_name": "notified"}},
        {
            "jsonrpc": "2.0",
            "id": "bad-port",
            "method": "is_port_available",
            "params": {"port": 70000},
        },
        {"jsonrpc": "1.0", "id": "old", "method": "get_stats"},
        {
            "jsonrpc": "2.0",
            "id": "no-service",
            "method": "get_port_info",
            "params": {"service_name": "nobody"},
        },
    ]
    drain(sidecar)
    sidecar.send(batch)
    answer = next_answer(sidecar)
    assert isinstance(answer, list)
    by_id = {a["id"]: a for a in answer if a["id"] is not None}
    assert len(answer) == 6  # every member but the notification
    assert isinstance(by_id["good"]["result"], int)
    assert [a["error"]["code"] for a in answer if a["id"] is None] == [-32600]
    assert by_id["unknown"]["error"]["code"] == -32601
    assert by_id["bad-port"]["error"]["code"] == -32602
    assert by_id["old"]["error"]["code"] == -32600
    assert by_id["no-service"]["error"]["code"] == -32002
    # The notification was served, just not answered.
    wait_until(
        lambda: "notified" in {s for _, s in leases(sidecar.ready["registry"])},
        what="the notified allocation in the registry",
    )
    assert sidecar.call("allocate_port", service_name="web") == by_id["good"]["result"]
    assert_stdout_is_protocol_only(sidecar)


def test_notifications_get_no_answer_alone_or_in_a_batch(sidecar: Sidecar) -> None:
    drain(sidecar)
    sidecar.send({"jsonrpc": "2.0", "method": "get_stats"})
    sidecar.send(
        [
            {"jsonrpc": "2.0", "method": "get_stats"},
            {"jsonrpc": "2.0", "method": "allocate_port", "params": {"service_name": "n"}},
            {"jsonrpc": "2.0", "method": "no_such_method"},
        ]
    )
    sidecar.send({"jsonrpc": "2.0", "id": "after", "method": "get_stats"})
    assert next_answer(sidecar)["id"] == "after"
    sidecar.send({"jsonrpc": "2.0", "id": "later", "method": "get_stats"})
    assert next_answer(sidecar)["id"] == "later"
    assert_stdout_is_protocol_only(sidecar)


# --- a closed stdout -------------------------------------------------------------------


def read_frame(stream: Any, framing: str) -> Any:
    if framing == "ndjson":
        return json.loads(stream.readline())
    header = b""
    while not header.endswith(b"\r\n\r\n"):
        byte = stream.read(1)
        assert byte, "stdout closed before a frame"
        header += byte
    length = int(re.search(rb"Content-Length: (\d+)", header).group(1))  # type: ignore[union-attr]
    return json.loads(stream.read(length))


def test_a_closed_stdout_does_not_stop_the_sidecar(
    tmp_path: Path, registry_path: Path, framing: str, start_app: Callable[[], FakeApp]
) -> None:
    app = start_app()
    command = [
        *sidecar_command(),
        "serve",
        "--registry",
        str(registry_path),
        "--framing",
        framing,
        "--parent-pid",
        str(app.pid),
    ]
    with open(tmp_path / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert read_frame(proc.stdout, framing)["method"] == "ready"
        proc.stdout.close()  # the app stops reading: every answer now meets a closed pipe

        def allocate(service: str) -> None:
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": service,
                    "method": "allocate_port",
                    "params": {"service_name": service},
                }
            ).encode()
            proc.stdin.write(frame(body, framing))  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]

        def services() -> set[str]:
            return {s for _, s in leases_when_readable(registry_path) or []}

        allocate("web")
        allocate("api")
        wait_until(lambda: services() == {"web", "api"}, what="leases for web and api")
        allocate("db")  # after the sidecar has met the closed pipe
        wait_until(lambda: services() == {"web", "api", "db"}, what="a lease for db")
        assert proc.poll() is None
        proc.stdin.close()
        assert proc.wait(15) == 0
        assert leases(registry_path) == []
        assert "Traceback" not in (tmp_path / "stderr.log").read_text()
    finally:
        reap(proc)
