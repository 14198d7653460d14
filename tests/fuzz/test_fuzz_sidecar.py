"""The fuzzing tier: hypothesis writes at least FRAMES generated frames per framing to one
real sidecar over its pipes (structured JSON-RPC messages with wrong types and sizes,
batches, broken JSON, raw bytes) and the runner checks the protocol's promises after each
example. A failing example is saved to `corpus/` (the shrunk one), and every saved example
is replayed first on each run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.runner import CORPUS, Runner, Sent
from tests.fuzz.strategies import examples
from tests.support.sidecar import Sidecar

FRAMES = int(os.environ.get("PORTD_FUZZ_FRAMES", "10000"))  # per framing, per run
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(params=["ndjson", "lsp"])
def framing(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def runner(tmp_path: Path, framing: str) -> Iterator[Runner]:
    started: list[Sidecar] = []

    def spawn() -> Sidecar:
        started.append(
            Sidecar(
                tmp_path / "registry.sqlite3",
                framing=framing,
                stderr_path=tmp_path / f"sidecar-{len(started)}.log",
                env={"PORTD_LOG": "warning"},
            )
        )
        return started[-1]

    yield Runner(spawn(), spawn)
    for sidecar in started:
        sidecar.stop()


def test_generated_frames_always_get_exactly_their_answers_and_never_break_the_sidecar(
    runner: Runner, capsys: pytest.CaptureFixture[str]
) -> None:
    @settings(
        max_examples=200,
        deadline=None,
        database=None,  # failing examples go to corpus/, as bytes, not hypothesis's choices
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(examples)
    def one_example(example: list[Any]) -> None:
        runner.run(example)

    try:
        while runner.frames < FRAMES:
            one_example()
    except BaseException:
        if runner.last is not None:
            print(f"the shrunk failing example is saved as {runner.last.save()}")
        raise
    with capsys.disabled():
        print(
            f"\nfuzz[{runner.sidecar.framing}]: {runner.frames} frames in {runner.examples} "
            f"examples, {runner.answers} answers, {runner.seconds:.1f} s on the wire"
        )
    assert runner.frames >= FRAMES


def saved_examples() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))


@pytest.mark.parametrize("path", saved_examples(), ids=lambda p: p.stem)
def test_each_saved_example_replays_cleanly(
    spawn_sidecar: Callable[..., Sidecar], path: Path
) -> None:
    sent = Sent.load(path)
    sidecar = spawn_sidecar(framing=sent.framing, env={"PORTD_LOG": "warning"})
    Runner(sidecar, lambda: pytest.fail("the sidecar died")).send(sent)
