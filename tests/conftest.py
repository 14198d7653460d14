from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import FakeApp, Listener
from tests.support.sidecar import Sidecar


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that spawns a sidecar, so the frozen tier can run exactly those
    again against the built binary (PORTD_SIDECAR) without copying them."""
    for item in items:
        if "spawn_sidecar" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.sidecar)


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    return tmp_path / "registry.sqlite3"


@pytest.fixture
def spawn_sidecar(tmp_path: Path, registry_path: Path) -> Iterator[Callable[..., Sidecar]]:
    """Start real sidecars (on the test's private registry unless told otherwise); every one
    is ended by its pid when the test finishes."""
    started: list[Sidecar] = []

    def spawn(**kwargs: Any) -> Sidecar:
        kwargs.setdefault("registry", registry_path)
        kwargs.setdefault("stderr_path", tmp_path / f"sidecar-{len(started)}.log")
        sidecar = Sidecar(**kwargs)
        started.append(sidecar)
        return sidecar

    yield spawn
    for sidecar in started:
        sidecar.stop()


@pytest.fixture
def start_app() -> Iterator[Callable[[], FakeApp]]:
    apps: list[FakeApp] = []

    def start() -> FakeApp:
        apps.append(FakeApp())
        return apps[-1]

    yield start
    for app in apps:
        app.cleanup()


@pytest.fixture
def start_listener() -> Iterator[Callable[..., Listener]]:
    listeners: list[Listener] = []

    def start(port: int = 0, **kwargs: Any) -> Listener:
        listeners.append(Listener(port, **kwargs))
        return listeners[-1]

    yield start
    for listener in listeners:
        listener.stop()


@pytest.fixture
def foreign_user() -> Iterator[Any]:
    """Another user, for real: a throwaway system account (`portd-foreign-*`, a
    tests.support.users.ForeignUser) that the test starts listeners as
    (`foreign_user.listen(port)`). They are ended by pid and the account is deleted
    afterwards, even on failure. Skips unless root on Linux with useradd."""
    from tests.support import users

    reason = users.skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with users.foreign_user() as user:
        if user.python is None:
            pytest.skip(f"no Python that user {user.name} may run (the test's is root's only)")
        yield user
