"""rpc/parse: every frame is a message or a clear refusal, and every answer encodes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portd.protocol.errors import InvalidRequest, ParseError
from portd.rpc.framing import encode_json
from portd.rpc.parse import MAX_DEPTH, parse_message

# JSON values as the parser should return them: finite floats, any text (lone surrogates
# included: `\ud800` is a legal JSON escape), objects with distinct keys.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def nested(levels: int, inner: str = "1") -> bytes:
    return ("[" * levels + inner + "]" * levels).encode()


@settings(max_examples=400)
@given(json_values)
def test_any_json_value_within_the_depth_limit_parses_to_itself(value: Any) -> None:
    payload = json.dumps(value).encode()
    if depth(value) > MAX_DEPTH:
        with pytest.raises(ParseError):
            parse_message(payload)
    else:
        assert parse_message(payload) == value


@settings(max_examples=1000)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_are_a_message_or_a_parse_error_or_an_invalid_request(payload: bytes) -> None:
    try:
        message = parse_message(payload)
    except (ParseError, InvalidRequest):
        return
    # What parses can always be sent back: strict JSON (no NaN), valid UTF-8.
    body = encode_json({"jsonrpc": "2.0", "result": message, "id": 1})
    assert json.loads(body.decode("utf-8"), parse_constant=pytest.fail) is not None


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 1_000, 5_000, 100_000])
def test_deep_nesting_is_a_parse_error_at_any_depth(levels: int) -> None:
    with pytest.raises(ParseError, match="nested deeper"):
        parse_message(nested(levels))
    with pytest.raises(ParseError, match="nested deeper"):
        parse_message(b'{"params":{"service_name":' + nested(levels) + b"}}")


def test_nesting_up_to_the_limit_parses() -> None:
    assert depth(parse_message(nested(MAX_DEPTH))) == MAX_DEPTH


def test_a_wide_shallow_batch_is_not_taken_for_deep_nesting() -> None:
    batch = [{"jsonrpc": "2.0", "id": i, "method": "get_stats", "params": {}} for i in range(500)]
    assert parse_message(json.dumps(batch).encode()) == batch


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"])
def test_numbers_json_cannot_carry_are_parse_errors(token: bytes) -> None:
    with pytest.raises(ParseError):
        parse_message(b'{"port":' + token + b"}")


def test_huge_integers_parse_exactly_until_python_refuses_their_digits() -> None:
    assert parse_message(b'{"port":' + str(10**30).encode() + b"}") == {"port": 10**30}
    with pytest.raises(ParseError, match="too many digits"):
        parse_message(b'{"port":' + b"9" * 5000 + b"}")


def test_finite_floats_survive() -> None:
    assert parse_message(b'{"x":1.5e300}') == {"x": 1.5e300}
    assert math.isfinite(parse_message(b'{"x":-1e-400}')["x"])


@pytest.mark.parametrize("payload", [b'{"a":"\xff"}', b'{"a":"\xc3"}', b"\xed\xa0\x80"])
def test_invalid_utf8_is_a_parse_error(payload: bytes) -> None:
    with pytest.raises(ParseError, match="not UTF-8"):
        parse_message(payload)


def test_utf16_is_not_guessed_from_null_bytes() -> None:
    with pytest.raises(ParseError):
        parse_message('{"a":1}'.encode("utf-16-le"))


def test_a_utf8_bom_is_tolerated() -> None:
    assert parse_message(b'\xef\xbb\xbf{"a":1}') == {"a": 1}


@pytest.mark.parametrize(
    "payload",
    [b'{"id":1,"id":2}', b'{"params":{"service_name":"a","service_name":"b"}}', b'[{"a":1,"a":1}]'],
)
def test_duplicate_keys_anywhere_are_an_invalid_request(payload: bytes) -> None:
    with pytest.raises(InvalidRequest, match="duplicate key"):
        parse_message(payload)


def test_a_lone_surrogate_escape_parses_and_encodes_back_as_an_escape() -> None:
    message = parse_message(b'{"id":"\\ud800"}')
    assert message == {"id": "\ud800"}
    assert encode_json(message) == b'{"id":"\\ud800"}'
