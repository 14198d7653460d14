"""What the fuzzer sends: JSON-RPC-shaped messages with wrong types and sizes, batches of
them, broken JSON made from good requests, and raw bytes.

A message that carries an id gets a fresh id from the runner when it is sent (`Tagged`),
so every answer can be matched to exactly one request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from portd.protocol.table import METHOD_NAMES

# shutdown would end the run; everything else, slow methods included, is fair game.
METHODS = [name for name in METHOD_NAMES if name != "shutdown"]
PARAM_NAMES = [
    "service_name",
    "serviceName",
    "preferred_port",
    "preferredPort",
    "port",
    "host",
    "range",
    "config",
    "pid",
    "path",
    "category",
]
CONFIG_FIELDS = ["preferred_port", "port_range", "max_retries", "auto_resolve", "app_id"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, 1, 1421, 65535, 65536, 70000, -1, 10**30])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    # Past ServiceName's 200 characters, cheaply: drawing each of them costs hypothesis time.
    | st.builds(
        lambda text, times: (text or "x") * times, st.text(max_size=4), st.integers(50, 120)
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=5,
)
configs = st.dictionaries(
    st.sampled_from(CONFIG_FIELDS) | st.text(max_size=8), json_values, max_size=3
)
params = (
    st.dictionaries(
        st.sampled_from(PARAM_NAMES) | st.text(max_size=12),
        json_values | st.builds(lambda c: c, configs),
        max_size=4,
    )
    | json_values  # not an object: -32600, or -32602 for an array
)


@dataclass(frozen=True)
class Tagged:
    """Stands for an id the runner fills in with a fresh one, of this JSON type."""

    kind: str  # "str", "int" or "float"


valid_ids = st.builds(Tagged, st.sampled_from(["str", "int", "float"]))
invalid_ids = (
    st.booleans()
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(), st.integers(), max_size=1)
)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        message["jsonrpc"] = "2.0"
    else:
        message["jsonrpc"] = draw(st.sampled_from(["1.0", "2", 2.0, None, ""]) | json_values)
    if draw(st.integers(0, 9)):
        message["method"] = draw(st.sampled_from(METHODS))
    else:
        message["method"] = draw(st.text(max_size=20) | json_values)
    if draw(st.booleans()):
        message["params"] = draw(params)
    choice = draw(st.integers(0, 9))
    if choice < 7:
        message["id"] = draw(valid_ids)
    elif choice == 7:
        message["id"] = draw(invalid_ids | st.none())
    # else: a notification
    if not draw(st.integers(0, 14)):
        message[draw(st.text(min_size=1, max_size=8))] = draw(json_values)  # an unknown member
    return message


batches = st.lists(messages(), max_size=5)


def dumps(message: Any, ids: Any) -> bytes:
    """The message as JSON text, each `Tagged` replaced by `ids(kind)`."""

    def fill(value: Any) -> Any:
        if isinstance(value, Tagged):
            return ids(value.kind)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    return json.dumps(fill(message), ensure_ascii=False).encode("utf-8", "surrogatepass")


GOOD = b'{"jsonrpc":"2.0","id":1,"method":"allocate_port","params":{"service_name":"web"}}'


@st.composite
def broken_json(draw: st.DrawFn) -> bytes:
    """A good request with bytes flipped, cut, inserted or doubled: mostly not JSON."""
    data = bytearray(GOOD)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.integers(0, 3))
        if edit == 0 and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif edit == 1:
            del data[at:]
        elif edit == 2:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[at:at] = bytes(data[at : at + draw(st.integers(1, 30))])
    return bytes(data)


hostile_templates = st.sampled_from(
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"jsonrpc":"2.0","id":1,"method":"get_stats","params":{"x":'
        + b"[" * 40
        + b"]" * 40
        + b"}}",
        b'{"jsonrpc":"2.0","id":1,"id":2,"method":"get_stats"}',
        b'{"jsonrpc":"2.0","id":1,"method":"is_port_available","params":{"port":NaN}}',
        b'{"jsonrpc":"2.0","id":1,"method":"is_port_available","params":{"port":1e400}}',
        b'{"jsonrpc":"2.0","id":Infinity,"method":"get_stats"}',
        b'\xef\xbb\xbf{"jsonrpc":"2.0","method":"get_stats"}',
        b'{"jsonrpc":"2.0","id":"\\udfff","method":"nope"}',
        '{"jsonrpc":"2.0","id":1,"method":"get_stats"}'.encode("utf-16"),
        b"\x00" * 16,
    ]
)
raw_bodies = st.binary(max_size=300) | broken_json() | hostile_templates


@dataclass(frozen=True)
class Raw:
    """A frame body sent as it is: no id of ours, so it may draw at most one null-id answer."""

    body: bytes


frames = st.one_of(
    messages(),
    batches,
    st.builds(Raw, raw_bodies),
)
examples = st.lists(frames, min_size=8, max_size=40)
