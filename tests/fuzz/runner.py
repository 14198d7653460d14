"""Drives one real sidecar with generated frames and checks, after each example, what the
protocol promises: stdout holds only valid frames, each request got exactly one answer (and
no answer came for an id never sent), no bug of ours (-32603, a traceback) showed, and the
sidecar still allocates."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import queue
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fuzz.strategies import Raw, Tagged, dumps
from tests.support.sidecar import Sidecar

CORPUS = Path(__file__).parent / "corpus"
ANSWER_DEADLINE = 60.0  # seconds for one example's answers: slow checks run in it
KNOWN_CODES = {-32700, -32600, -32601, -32602, -32001, -32002, -32003, -32004, -32005, -32006}
_HEADER = re.compile(rb"Content-Length: (\d+)\r\n\r\n")


@dataclass
class Sent:
    """One example as written: its bytes, the ids that must each get one answer, and how
    many frames carry no id of ours (each may draw one answer we cannot match)."""

    framing: str
    data: bytes
    ids: list[Any]
    untagged: int

    def save(self) -> Path:
        CORPUS.mkdir(exist_ok=True)
        text = json.dumps(
            {
                "framing": self.framing,
                "data": base64.b64encode(self.data).decode(),
                "ids": self.ids,
                "untagged": self.untagged,
            },
            indent=1,
        )
        path = CORPUS / f"{self.framing}-{hashlib.sha256(self.data).hexdigest()[:16]}.json"
        path.write_text(text + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Sent:
        saved = json.loads(path.read_text())
        return cls(
            saved["framing"], base64.b64decode(saved["data"]), saved["ids"], saved["untagged"]
        )


def strict_json(body: bytes) -> Any:
    """What JSON parsers of every language agree on: UTF-8, no NaN, no duplicate keys."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        assert len({k for k, _ in pairs}) == len(pairs), f"duplicate keys in {body[:200]!r}"
        return dict(pairs)

    def no_constants(name: str) -> Any:
        raise AssertionError(f"{name} on stdout: {body[:200]!r}")

    return json.loads(body.decode("utf-8"), object_pairs_hook=unique, parse_constant=no_constants)


@dataclass
class Runner:
    sidecar: Sidecar
    spawn: Any  # () -> Sidecar, for a fresh one when a failing example ended the last
    frames: int = 0
    examples: int = 0
    answers: int = 0
    seconds: float = 0.0
    last: Sent | None = None
    _counts: dict[Any, int] = field(default_factory=dict)
    _untagged_frames: int = 0
    _untagged_answers: int = 0
    _raw_seen: int = 0
    _log_seen: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(10**9))

    def _fresh_id(self, kind: str) -> Any:
        n = next(self._ids)
        return {"str": f"fz-{n}", "int": n, "float": n + 0.5}[kind]

    def run(self, example: list[Any]) -> None:
        ids: list[Any] = []
        untagged = 0

        def tag(kind: str) -> Any:
            ids.append(self._fresh_id(kind))
            return ids[-1]

        chunks = []
        for frame in example:
            if isinstance(frame, Raw):
                body = frame.body
                if self.sidecar.framing == "ndjson":
                    body = body.replace(b"\n", b" ")  # one frame, as counted
                untagged += 1
            else:
                body = dumps(frame, tag)
                members = frame if isinstance(frame, list) else [frame]
                untagged += (
                    max(1, len(members))
                    if not members
                    else sum(not isinstance(m.get("id"), Tagged) for m in members)
                )
            # Hypothesis also draws the code's own string literals: "shutdown" would end
            # the run as it should. The same length keeps an LSP frame's length right.
            chunks.append(self.sidecar.frame(body.replace(b'"shutdown"', b'"shutdowm"')))
        self.frames += len(example)
        self.examples += 1
        self.send(Sent(self.sidecar.framing, b"".join(chunks), ids, untagged))

    def send(self, sent: Sent) -> None:
        self.last = sent
        if self.sidecar.proc.poll() is not None:
            self.sidecar = self.spawn()  # so that each example is judged on its own
            self._raw_seen = self._log_seen = 0
        started = time.monotonic()
        sentinel = f"sentinel-{next(self._ids)}"
        request = {"jsonrpc": "2.0", "id": sentinel, "method": "allocate_port"}
        request["params"] = {"service_name": "fuzz-sentinel"}  # type: ignore[assignment]
        self._untagged_frames += sent.untagged
        for request_id in [*sent.ids, sentinel]:
            self._counts.setdefault(request_id, 0)
        self.sidecar.write_raw(sent.data + self.sidecar.frame(json.dumps(request).encode()))
        reply = self._collect([*sent.ids, sentinel], sentinel)
        self.seconds += time.monotonic() - started
        assert isinstance(reply.get("result"), int) and 1 <= reply["result"] <= 65535, reply
        for request_id in sent.ids:
            assert self._counts[request_id] == 1, (request_id, self._counts[request_id])
        assert self._untagged_answers <= self._untagged_frames
        self._check_stdout()
        self._check_log()

    def _collect(self, ids: list[Any], sentinel: str) -> dict[str, Any]:
        deadline = time.monotonic() + ANSWER_DEADLINE
        sentinel_reply: dict[str, Any] | None = None
        while sentinel_reply is None or any(self._counts[i] == 0 for i in ids):
            left = deadline - time.monotonic()
            assert left > 0, f"unanswered: {[i for i in ids if self._counts[i] == 0]}"
            try:
                message = self.sidecar.messages.get(timeout=left)
            except queue.Empty:
                continue
            assert message is not None, f"the sidecar's stdout closed: {self._log_tail()}"
            for reply in self._replies(message):
                if reply.get("id") == sentinel:
                    sentinel_reply = reply
        return sentinel_reply

    def _replies(self, message: Any) -> list[dict[str, Any]]:
        if isinstance(message, dict) and "method" in message:
            assert message["method"] in ("ready", "port_event"), message
            return []
        members = message if isinstance(message, list) else [message]
        assert members, "an empty array was sent"
        for reply in members:
            assert isinstance(reply, dict) and reply.get("jsonrpc") == "2.0", reply
            assert ("result" in reply) != ("error" in reply), reply
            if "error" in reply:
                error = reply["error"]
                assert error["code"] in KNOWN_CODES, f"{reply} ({self._log_tail()})"
                assert isinstance(error["message"], str)
            request_id = reply.get("id")
            if _hashable(request_id) and request_id in self._counts:
                self._counts[request_id] += 1
                assert self._counts[request_id] == 1, f"id {request_id!r} answered twice"
            else:
                self._untagged_answers += 1
        self.answers += len(members)
        return members

    def _check_stdout(self) -> None:
        """Every byte written since the last check belongs to a strict JSON frame."""
        raw = bytes(self.sidecar.raw[self._raw_seen :])
        if self.sidecar.framing == "ndjson":
            done = raw.rfind(b"\n") + 1
            for line in raw[:done].split(b"\n")[:-1]:
                assert isinstance(strict_json(line), dict | list), line[:200]
        else:
            done = 0
            while header := _HEADER.match(raw, done):
                end = header.end() + int(header.group(1))
                if end > len(raw):
                    break
                assert isinstance(strict_json(raw[header.end() : end]), dict | list)
                done = end
            assert done == len(raw) or raw[done:].startswith(b"Content-Length"), raw[done:][:80]
        self._raw_seen += done

    def _check_log(self) -> None:
        log = self.sidecar.stderr_text()
        fresh, self._log_seen = log[self._log_seen :], len(log)
        assert "Traceback" not in fresh, fresh[-3000:]

    def _log_tail(self) -> str:
        return self.sidecar.stderr_text()[-2000:]


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float) or value is None
