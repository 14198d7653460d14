"""Registry faults made real for the tests: a tiny disk, read-only files, folders and file
systems, and another user who plants links and files.

The tests run as root, and root writes through any mode bits: chmod 0444 or 0555 would not
stop it, so they cannot stand for "read-only" here. What stops root too:

- the immutable attribute (`chattr +i`): no write to the file, or no new entry in the
  folder, for anyone (EPERM), while the rest of the file system stays writable;
- a read-only mount (`mount -o remount,ro`): EROFS for everything on it;
- a full file system: a tmpfs of a few hundred KiB, mounted by the test.

Every helper undoes what it did on the way out, even when the test fails; the fixtures tear
down after the sidecars that used them (request them before `spawn_sidecar`).
"""

from __future__ import annotations

import os
import pwd
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from portd.process import ProcessIdentity
from portd.registry import LeaseKey, Registry
from tests.support import users

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root: mount, chattr and useradd")

# The registry's leases, as an outsider reads them: (port, service), by port.
Leases = list[tuple[int, str]]


def run(*argv: object) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=30)


def unmount(folder: Path) -> None:
    """Unmount, lazily if something still holds a file there: never leave a mount behind."""
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        run("umount", "-l", folder)


@contextmanager
def tmpfs(folder: Path, size: str = "1m") -> Iterator[Path]:
    folder.mkdir(exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", folder)
    try:
        yield folder
    finally:
        unmount(folder)


def remount_read_only(folder: Path) -> None:
    run("mount", "-o", "remount,ro", folder)


@contextmanager
def immutable(path: Path) -> Iterator[Path]:
    run("chattr", "+i", path)
    try:
        yield path
    finally:
        run("chattr", "-i", path)


def fill(folder: Path) -> Path:
    """Fill the file system that holds `folder` to the last byte: the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:  # ENOSPC: on to smaller pieces
                pass
    finally:
        os.close(fd)
    assert os.statvfs(folder).f_bavail == 0
    return filler


def make_registry(path: Path, services: dict[str, int], owner_pid: int = 1) -> Leases:
    """A good registry file with these leases (of a long-gone-looking owner), closed."""
    registry = Registry.open(path)
    try:
        for service, port in services.items():
            registry.claim(LeaseKey(ProcessIdentity(owner_pid, 1.0), "app", service), port)
    finally:
        registry.close()
    return sorted((port, service) for service, port in services.items())


def real_registry_bytes(folder: Path) -> bytes:
    """The bytes of a real registry with a few leases, checkpointed into the main file."""
    path = folder / "source.sqlite3"
    make_registry(path, {f"s{n}": 20000 + n for n in range(40)})
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


def fault_lines(stderr: str) -> list[str]:
    """The log lines that report a problem (warnings and errors)."""
    return [line for line in stderr.splitlines() if " ERROR " in line or " WARNING " in line]


@pytest.fixture
def other_user() -> Iterator[pwd.struct_passwd]:
    """A user of this machine who is not us, made for the test and removed after it."""
    if (reason := users.skip_reason()) is not None:
        pytest.skip(reason)
    with users.foreign_user() as user:
        yield pwd.getpwnam(user.name)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 1 MiB file system of its own, for filling up."""
    if not ROOT:
        pytest.skip("needs root to mount a tmpfs")
    with tmpfs(tmp_path / "disk", "1m") as folder:
        yield folder
