"""The end-to-end tier watches the sidecars' own sockets (DESIGN, Security: "the sidecar
opens no network listener of its own").

For as long as tests/e2e runs, tests.support.socket_guard samples every sidecar the tests
start, every 50 ms in a thread of its own and once more at the end of each test that spawns
one. When the package is done the run fails (an error at the teardown of its last test) if
a sidecar was ever seen with a listening TCP or unix socket or a bound UDP one, if the
sampler broke, or if sidecar tests ran and it saw not a single sidecar: a blind guard must
not pass. What it saw goes to the terminal summary. (Linux only: it reads /proc.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest

from tests.support.monitoring import configure
from tests.support.processes import FakeApp
from tests.support.sidecar import Sidecar
from tests.support.socket_guard import Guard

_guard: Guard | None = None
_reports: list[str] = []
_seen_before = pytest.StashKey[int]()


@pytest.fixture(scope="package", autouse=True)
def sidecar_socket_guard() -> Iterator[Guard]:
    global _guard
    guard = Guard()
    if not sys.platform.startswith("linux"):
        yield guard  # it reads /proc: elsewhere there is nothing to watch with
        return
    guard.start()
    _guard = guard
    try:
        yield guard
    finally:
        guard.stop()
        _guard = None
        _reports.append(guard.report())
    problems = guard.problems()
    if problems:
        pytest.fail("\n".join([guard.report(), *problems]), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    if _guard is not None:
        item.stash[_seen_before] = len(_guard.sidecars)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        guard = _guard
        if guard is not None and item.get_closest_marker("sidecar") is not None:
            # The test's sidecars are still running (its fixtures end them later): look.
            guard.sample_now()
            guard.sidecar_tests += 1
            guard.tests_seen += len(guard.sidecars) > item.stash.get(_seen_before, 0)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for report in _reports:
        terminalreporter.write_line(report)


# The monitoring tests' app and its sidecar, scanning often (tests.support.monitoring).
@pytest.fixture
def app(start_app: Callable[[], FakeApp]) -> FakeApp:
    return start_app()


@pytest.fixture
def sidecar(spawn_sidecar: Callable[..., Sidecar], app: FakeApp) -> Sidecar:
    sidecar = spawn_sidecar(parent_pid=app.pid)
    configure(sidecar)
    return sidecar
