"""portd's own dispatcher against jsonrpcserver's, for the same request in the same run.

The product's dependency list names jsonrpcserver; the sidecar dispatches with its own code
because of what this measures: what jsonrpcserver would add to each request (its pipeline,
with our envelope check as its validator and the same params validation inside the method),
and what importing it would add before the first answer, which it would have to precede if
it were the one dispatch path.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any

REQUEST = {"jsonrpc": "2.0", "id": 7, "method": "allocate_port", "params": {"service_name": "web"}}
CALLS = 20_000


def _per_call_us(call: Any) -> float:
    for _ in range(1000):
        call()
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(CALLS // 5):
            call()
        samples.append((time.perf_counter() - t0) / (CALLS // 5))
    return statistics.median(samples) * 1e6


def _ours() -> Any:
    from portd.protocol.table import METHOD_NAMES
    from portd.rpc.dispatch import Dispatcher

    dispatcher = Dispatcher({name: lambda params: 1421 for name in METHOD_NAMES})
    return lambda: dispatcher.answer_now(REQUEST)


def _jsonrpcserver() -> Any:
    from jsonrpcserver import Success
    from jsonrpcserver.dispatcher import dispatch_to_response_pure
    from jsonrpcserver.response import to_serializable_one
    from jsonrpcserver.sentinels import NOCONTEXT
    from pydantic_core import SchemaValidator

    from portd.protocol.errors import InvalidRequest
    from portd.protocol.table import FLAT_PARAMS
    from portd.rpc.dispatch import _envelope_problem
    from portd.rpc.framing import encode_json

    validator = SchemaValidator(*FLAT_PARAMS["allocate_port"])

    def allocate_port(**params: Any) -> Any:
        validator.validate_python(params)
        return Success(1421)

    def envelope(request: Any) -> Any:
        if (problem := _envelope_problem(request)) is not None:
            raise InvalidRequest(problem)
        return request

    def call() -> bytes:
        response = dispatch_to_response_pure(
            deserializer=lambda _: REQUEST,
            validator=envelope,
            methods={"allocate_port": allocate_port},
            context=NOCONTEXT,
            post_process=to_serializable_one,
            request="",
        )
        return encode_json(response)

    assert json.loads(call())["result"] == 1421
    return call


def _spawn_ms(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def bench_dispatchers(runs: int) -> dict[str, float]:
    ours = _per_call_us(_ours())
    theirs = _per_call_us(_jsonrpcserver())
    bare = _spawn_ms("pass", runs)
    imported = _spawn_ms("import jsonrpcserver", runs)
    return {
        "dispatch_us": round(ours, 2),
        "jsonrpcserver_dispatch_us": round(theirs, 2),
        "jsonrpcserver_dispatch_ratio": round(theirs / ours, 2),
        "jsonrpcserver_import_ms": round(imported - bare, 1),
    }


def with_jsonrpcserver(results: dict[str, Any]) -> dict[str, float]:
    """The goals' ratios as they would be with jsonrpcserver as the one dispatch path: two
    requests a round trip each pay its extra cost, and the first answer waits for its import."""
    derived: dict[str, float] = {}
    extra_us = results["jsonrpcserver_dispatch_us"] - results["dispatch_us"]
    if "roundtrip_pair_us" in results:
        pair = results["roundtrip_pair_us"] + 2 * extra_us
        derived["roundtrip_ratio_with_jsonrpcserver"] = round(
            pair / results["echo_roundtrip_us"], 2
        )
    for build in ("onedir", "dev"):  # the goal is the frozen one-dir's; dev when not built
        if f"{build}_first_answer_ms" in results:
            first = results[f"{build}_first_answer_ms"] + results["jsonrpcserver_import_ms"]
            ratio = round(first / results[f"{build}_hello_ms"], 2)
            derived["first_answer_ratio_with_jsonrpcserver"] = ratio
            break
    return derived
