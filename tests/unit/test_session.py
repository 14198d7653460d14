"""rpc/session: frames in, answers out, before and without the event loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from portd.manager import PortManager
from portd.process import lineage
from portd.protocol.defaults import AllocationConfig
from portd.registry import Registry
from portd.rpc.server import FrameWriter, Launch, ServeOptions, StopSignal
from portd.rpc.session import Session


class Wire:
    """A session whose answers land in a pipe we can read without waiting."""

    def __init__(self, session: Session, answers: int) -> None:
        self.session = session
        self._answers = answers

    def send(self, *messages: dict[str, Any]) -> None:
        self.session.feed(b"".join(json.dumps(m).encode() + b"\n" for m in messages))

    def replies(self) -> list[dict[str, Any]]:
        try:
            data = os.read(self._answers, 1 << 16)
        except BlockingIOError:
            return []
        return [json.loads(line) for line in data.splitlines()]


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[Wire]:
    answers, stdout = os.pipe()
    os.set_blocking(answers, False)
    writer = FrameWriter(stdout)
    writer.framing = "ndjson"  # `ready` was sent at start-up
    options = ServeOptions(str(tmp_path / "registry.sqlite3"), None, "ndjson", "test", "0")
    apps = lineage(os.getpid())
    registry = Registry.open(Path(options.registry))
    manager = PortManager(registry, apps.owner, AllocationConfig(app_id="test"))
    no_signals = cast(StopSignal, None)  # the event loop's business, not tested here
    yield Wire(Session(options, writer, no_signals, Launch(None), apps, manager), answers)
    registry.close()
    os.close(answers)
    os.close(stdout)


def call(method: str, request_id: int, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def test_a_quick_call_is_answered_as_soon_as_its_frame_is_read(wire: Wire) -> None:
    wire.send(call("allocate_port", 1, service_name="vite"))
    [reply] = wire.replies()
    assert reply["id"] == 1 and isinstance(reply["result"], int)


# A session started as `portd serve` starts it, answering the app's first call.
FIRST_ANSWER = """
import json, os, sys
from portd.rpc.server import FrameWriter, Launch, ServeOptions
from portd.rpc.session import Session

answers, stdout = os.pipe()
writer = FrameWriter(stdout)
writer.framing = "ndjson"
options = ServeOptions(sys.argv[1], None, "ndjson", "test", "0")
session = Session.start(options, writer, None, Launch(None))
call = {"jsonrpc": "2.0", "id": 1, "method": "allocate_port", "params": {"serviceName": "vite"}}
session.feed(json.dumps(call).encode() + b"\\n")
print(json.dumps({
    "reply": json.loads(os.read(answers, 4096)),
    "loaded": sorted({name.split(".")[0] for name in sys.modules}),
}))
session.finish()
"""


def test_the_first_allocation_is_answered_before_pydantic_is_imported(tmp_path: Path) -> None:
    # pydantic (not pydantic-core) is about 40 ms of a frozen start-up: it loads after.
    run = subprocess.run(
        [sys.executable, "-c", FIRST_ANSWER, str(tmp_path / "registry.sqlite3")],
        capture_output=True,
        text=True,
        check=True,
    )
    first = json.loads(run.stdout)
    assert isinstance(first["reply"]["result"], int)
    assert "pydantic_core" in first["loaded"]
    assert not {"pydantic", "anyio", "asyncio"} & set(first["loaded"])


def test_a_call_that_may_wait_is_held_until_the_event_loop_takes_it(wire: Wire) -> None:
    wire.send(call("perform_health_check", 1), call("get_stats", 2))
    assert [r["id"] for r in wire.replies()] == [2]
    handed: list[tuple[Any, bool]] = []
    wire.session.spawn_with(lambda message, after_exit: handed.append((message, after_exit)))
    wire.send(call("get_port_stats", 3))
    assert [(m["id"], after_exit) for m, after_exit in handed] == [(1, False), (3, False)]


def test_calls_read_after_shutdown_are_refused(wire: Wire) -> None:
    wire.send(call("shutdown", 1), call("get_stats", 2))
    first, second = wire.replies()
    assert first == {"jsonrpc": "2.0", "result": None, "id": 1}
    assert second["error"]["code"] == -32006
    assert wire.session.exit_reason == "shutdown requested"


def test_end_of_input_asks_the_session_to_exit_and_the_first_reason_stays(wire: Wire) -> None:
    exits: list[str | None] = []
    wire.session.on_exit = lambda: exits.append(wire.session.exit_reason)
    wire.session.feed(b"")
    wire.session.request_exit("SIGTERM")
    assert exits == ["stdin closed"] and not wire.session.keep_leases
