"""Hostile frames over real pipes: each gets its JSON-RPC error, with the id the spec asks
for, within a second; stdout holds frames only; stderr one line, never a traceback; and the
next request is served."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.test_protocol import assert_stdout_is_protocol_only, still_serving
from tests.support.sidecar import Sidecar

# The parser is the same in both builds: the one-dir tier proves it frozen.
pytestmark = pytest.mark.engine

ANSWER_WITHIN = 1.0  # seconds, as the issue promises; a sound sidecar answers in ms
MIB = 1 << 20


def request(params: bytes, request_id: bytes = b"7", method: bytes = b"allocate_port") -> bytes:
    return b'{"jsonrpc":"2.0","id":%s,"method":"%s","params":%s}' % (request_id, method, params)


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


# body -> (code, id of the answer)
HOSTILE = {
    "params nested 5000 deep": (request(b'{"service_name":' + nested(5000) + b"}"), -32700, None),
    "100,000 [ then as many ]": (nested(100_000), -32700, None),
    "a port of 1e400": (request(b'{"port":1e400}', method=b"is_port_available"), -32700, None),
    "a port of 10**30": (
        request(b'{"port":%d}' % 10**30, method=b"is_port_available"),
        -32602,
        7,
    ),
    "a port of 5000 digits": (
        request(b'{"port":' + b"9" * 5000 + b"}", method=b"is_port_available"),
        -32700,
        None,
    ),
    "NaN": (request(b'{"port":NaN}', method=b"is_port_available"), -32700, None),
    "Infinity": (request(b'{"port":Infinity}', method=b"is_port_available"), -32700, None),
    "-Infinity as the id": (request(b"{}", b"-Infinity", b"get_stats"), -32700, None),
    "invalid UTF-8 in a string": (request(b'{"service_name":"\xc3\x28"}'), -32700, None),
    "UTF-16": ('{"jsonrpc":"2.0","id":7,"method":"get_stats"}'.encode("utf-16"), -32700, None),
    "duplicate id": (b'{"jsonrpc":"2.0","id":7,"id":8,"method":"get_stats"}', -32600, None),
    "duplicate param": (request(b'{"service_name":"a","service_name":"b"}'), -32600, None),
    "params a number": (request(b"5"), -32600, 7),
    "params null": (request(b"null"), -32600, 7),
    "params an array": (request(b'["web"]'), -32602, 7),
    "id an object": (request(b"{}", b'{"a":1}', b"get_stats"), -32600, None),
    "id true": (request(b"{}", b"true", b"get_stats"), -32600, None),
    "a lone surrogate as the id": (request(b"{}", b'"\\ud800"', b"no_such"), -32601, "\ud800"),
    "1 MiB + 1 byte": (request(b'{"service_name":"' + b"x" * MIB + b'"}'), -32600, None),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_frame_gets_its_error_within_a_second_and_serving_goes_on(
    spawn_sidecar: Callable[..., Sidecar], framing: str, case: str
) -> None:
    body, code, answer_id = HOSTILE[case]
    sidecar = spawn_sidecar(framing=framing)
    still_serving(sidecar)  # started: the second counts from here
    sidecar.write_raw(sidecar.frame(body))
    answer = sidecar.wait_response(answer_id, timeout=ANSWER_WITHIN)
    assert answer["error"]["code"] == code, answer
    assert sidecar.call("allocate_port", service_name="web") >= 1
    assert_stdout_is_protocol_only(sidecar)
    assert_one_quiet_line(sidecar, refused=code in (-32700, -32600))


def test_a_bom_before_a_request_is_tolerated(spawn_sidecar: Callable[..., Sidecar]) -> None:
    sidecar = spawn_sidecar()
    sidecar.write_raw(b"\xef\xbb\xbf" + request(b'{"service_name":"web"}') + b"\n")
    assert sidecar.wait_response(7, timeout=5)["result"] >= 1


LSP_HEADERS = {
    "negative": b"Content-Length: -5\r\n\r\n",
    "huge": b"Content-Length: 99999999999999999999999999\r\n\r\n",
    "missing": b"Content-Type: application/json\r\n\r\n",
    "not a number": b"Content-Length: 1e3\r\n\r\n",
}


@pytest.mark.parametrize("case", list(LSP_HEADERS))
def test_an_lsp_header_with_a_bad_length_is_refused_and_the_next_frame_served(
    spawn_sidecar: Callable[..., Sidecar], case: str
) -> None:
    sidecar = spawn_sidecar(framing="lsp")
    still_serving(sidecar)
    sidecar.write_raw(LSP_HEADERS[case] + sidecar.frame(request(b'{"service_name":"web"}')))
    refusal = sidecar.wait_response(None, timeout=ANSWER_WITHIN)
    assert refusal["error"]["code"] == -32700
    assert sidecar.wait_response(7, timeout=ANSWER_WITHIN)["result"] >= 1
    assert_stdout_is_protocol_only(sidecar)
    assert_one_quiet_line(sidecar, refused=True)


def test_an_oversized_lsp_body_is_refused_before_it_has_arrived(
    spawn_sidecar: Callable[..., Sidecar],
) -> None:
    sidecar = spawn_sidecar(framing="lsp")
    still_serving(sidecar)
    sidecar.write_raw(b"Content-Length: %d\r\n\r\n{" % (MIB + 1))
    assert sidecar.wait_response(None, timeout=ANSWER_WITHIN)["error"]["code"] == -32600
    sidecar.write_raw(b" " * MIB + sidecar.frame(request(b'{"service_name":"web"}')))
    assert sidecar.wait_response(7, timeout=5)["result"] >= 1


def assert_one_quiet_line(sidecar: Sidecar, refused: bool) -> None:
    """Bad input is logged as one warning line naming the refusal, never with a trace."""
    log = sidecar.stderr_text()
    assert "Traceback" not in log and "RecursionError" not in log, log[-2000:]
    if refused:
        assert sum("refused a " in line for line in log.splitlines()) == 1, log[-2000:]


@pytest.fixture(params=["ndjson", "lsp"])
def framing(request: pytest.FixtureRequest) -> Any:
    return request.param
