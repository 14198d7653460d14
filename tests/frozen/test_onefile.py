"""The one-file build is a bootloader with a child: the app holds the bootloader, so the
child must follow it, and leave nothing behind."""

from __future__ import annotations

import signal
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.support.processes import FakeApp
from tests.support.sidecar import Sidecar, wait_until

pytestmark = [
    pytest.mark.frozen,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX"),
]


def mei_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("_MEI*"))


def leases(registry: Path) -> list[tuple[int, str, int]]:
    with sqlite3.connect(f"file:{registry}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT port, service, owner_pid FROM leases ORDER BY port").fetchall()


def test_ready_names_the_app_not_the_bootloader_as_owner(
    onefile: Path, spawn_sidecar: Callable[..., Sidecar], start_app: Callable[[], FakeApp]
) -> None:
    sidecar = spawn_sidecar(command=[str(onefile)])
    (child,) = psutil.Process(sidecar.pid).children()
    assert sidecar.ready["pid"] == sidecar.pid, "ready names the process the app spawned"
    assert child.exe() == psutil.Process(sidecar.pid).exe(), "it runs as its bootloader's child"
    assert sidecar.ready["owner_pid"] == psutil.Process(sidecar.pid).ppid()


def test_a_killed_bootloader_takes_its_child_along_and_leaves_the_leases(
    onefile: Path,
    spawn_sidecar: Callable[..., Sidecar],
    start_app: Callable[[], FakeApp],
    registry_path: Path,
) -> None:
    before = mei_folders()
    app = start_app()
    sidecar = spawn_sidecar(command=[str(onefile)], parent_pid=app.pid)
    (child,) = psutil.Process(sidecar.pid).children()
    port = sidecar.call("allocate_port", service_name="vite")
    assert mei_folders() - before, "the child should be running from an _MEI folder"

    sidecar.signal(signal.SIGKILL)  # what the app's child.kill() does
    wait_until(
        lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE,
        timeout=10,
        what="the child to exit after its bootloader died",
    )
    wait_until(lambda: not (mei_folders() - before), timeout=10, what="the _MEI folder to go")
    assert leases(registry_path) == [(port, "vite", app.pid)]

    respawned = spawn_sidecar(command=[str(onefile)], parent_pid=app.pid)
    assert respawned.call("allocate_port", service_name="vite") == port


def test_sigterm_to_the_bootloader_is_a_clean_exit_that_releases(
    onefile: Path, spawn_sidecar: Callable[..., Sidecar], registry_path: Path
) -> None:
    before = mei_folders()
    sidecar = spawn_sidecar(command=[str(onefile)])
    sidecar.call("allocate_port", service_name="vite")
    sidecar.signal(signal.SIGTERM)
    assert sidecar.wait_exit(10) == 0
    assert leases(registry_path) == []
    wait_until(lambda: not (mei_folders() - before), timeout=10, what="the _MEI folder to go")
