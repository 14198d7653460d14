"""Registry faults met by real sidecars over real pipes, and by the CLI.

A file that cannot serve at open (read-only, in a read-only folder or file system, garbage,
truncated, a directory, a link or a file of another user) gets one clear log line, a
`registry` component that is unhealthy and names the problem, and ports from a private
in-memory registry; the file is left exactly as it was. A fault after open (a full disk)
answers -32004 for the calls it spoils, and they work again once there is room. A good file
never loses or doubles a lease. The CLI says what is wrong and exits 3, never a traceback.

The tests run as root, which writes through mode bits: "read-only" here is `chattr +i` or
a read-only mount (see tests/support/faults.py).
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import regfile
from tests.support.faults import (
    disk,
    fault_lines,
    fill,
    immutable,
    make_registry,
    needs_root,
    other_user,
    real_registry_bytes,
    remount_read_only,
    tmpfs,
)
from tests.support.sidecar import Sidecar

# The engine is the same in both builds: the one-dir tier proves it frozen.
pytestmark = pytest.mark.engine

__all__ = ["disk", "other_user"]  # fixtures

Spawn = Callable[..., Sidecar]
LEASES = {"api": 41001, "db": 41002}


def registry_health(sidecar: Sidecar) -> dict[str, Any]:
    report = sidecar.call("perform_health_check")
    (found,) = [c for c in report["components"] if c["component"] == "registry"]
    return found  # type: ignore[no-any-return]


def assert_falls_back(sidecar: Sidecar, *named: str) -> dict[str, Any]:
    """Ports come from memory; health and exactly one log line say so, naming the problem."""
    port = sidecar.call("allocate_port", service_name="web")
    assert isinstance(port, int)
    assert sidecar.call("allocate_port", service_name="web") == port
    health = registry_health(sidecar)
    assert health["status"] == "unhealthy", health
    assert health["details"]["fallback"] == "memory"
    stderr = sidecar.stderr_text()
    assert "Traceback" not in stderr, stderr
    (line,) = fault_lines(stderr)
    assert "falling back to a private in-memory one" in line
    for words in named:
        assert words in health["message"], health
        assert words in line, line
    return health


def outsider_view(path: Path) -> tuple[bytes, int, int]:
    st = os.lstat(path)
    return path.read_bytes(), st.st_uid, stat.S_IMODE(st.st_mode)


# --- read-only --------------------------------------------------------------------------


@needs_root
def test_a_read_only_registry_file_keeps_its_leases_and_ports_come_from_memory(
    spawn_sidecar: Spawn, registry_path: Path
) -> None:
    leases = make_registry(registry_path, LEASES)
    before = registry_path.read_bytes()
    with immutable(registry_path):
        sidecar = spawn_sidecar()
        assert_falls_back(sidecar, str(registry_path), "read-only")
        sidecar.stop()
    assert registry_path.read_bytes() == before
    assert regfile.leases(registry_path) == leases


@needs_root
def test_a_registry_on_a_read_only_file_system_is_left_as_it_is(
    spawn_sidecar: Spawn, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "ro") as folder:
        path = folder / "registry.sqlite3"
        leases = make_registry(path, LEASES)
        before = path.read_bytes()
        remount_read_only(folder)
        sidecar = spawn_sidecar(registry=path)
        assert_falls_back(sidecar, "read-only file system")
        sidecar.stop()
        assert path.read_bytes() == before
    copy = tmp_path / "copy.sqlite3"  # SQLite cannot read a WAL file where it cannot write
    copy.write_bytes(before)
    assert regfile.leases(copy) == leases


@needs_root
def test_a_registry_in_a_read_only_folder_is_left_as_it_is(
    spawn_sidecar: Spawn, tmp_path: Path
) -> None:
    """The file is writable, but SQLite must create its -wal and -shm beside it."""
    folder = tmp_path / "state"
    folder.mkdir()
    path = folder / "registry.sqlite3"
    leases = make_registry(path, LEASES)
    before = path.read_bytes()
    with immutable(folder):
        sidecar = spawn_sidecar(registry=path)
        assert_falls_back(sidecar, f"its folder {folder} is read-only")
        sidecar.stop()
    assert path.read_bytes() == before
    assert sorted(os.listdir(folder)) == ["registry.sqlite3"]
    assert regfile.leases(path) == leases


@needs_root
def test_no_registry_can_be_created_in_a_read_only_folder(
    spawn_sidecar: Spawn, tmp_path: Path
) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    with immutable(folder):
        sidecar = spawn_sidecar(registry=folder / "registry.sqlite3")
        assert_falls_back(sidecar, "cannot be created", f"its folder {folder} is read-only")
        sidecar.stop()
    assert os.listdir(folder) == []


# --- a full disk ------------------------------------------------------------------------


@needs_root
def test_a_full_disk_answers_registry_unavailable_and_recovers_when_space_returns(
    disk: Path, spawn_sidecar: Spawn
) -> None:
    path = disk / "registry.sqlite3"
    sidecar = spawn_sidecar(registry=path)
    granted = {s: sidecar.call("allocate_port", service_name=s) for s in ("web", "api")}
    filler = fill(disk)

    # A claim that still fits in the log's last page succeeds; the first that needs one more
    # byte of disk is refused.
    refused = None
    for n in range(40):
        answer = sidecar.request("allocate_port", {"service_name": f"svc{n}"})
        if "error" in answer:
            refused = answer["error"]
            break
        granted[f"svc{n}"] = answer["result"]
    assert refused is not None, "a full disk never refused a claim"
    assert refused["code"] == -32004, refused
    assert "database or disk is full" in refused["message"], refused
    health = registry_health(sidecar)
    assert health["status"] == "unhealthy", health
    assert "database or disk is full" in health["message"]
    assert "fallback" not in health["details"], "a full disk is no reason to leave the file"
    stderr = sidecar.stderr_text()
    assert "Traceback" not in stderr, stderr
    (line,) = fault_lines(stderr)
    assert "database or disk is full" in line

    filler.unlink()
    granted[f"svc{n}"] = sidecar.call("allocate_port", service_name=f"svc{n}")
    assert registry_health(sidecar)["status"] == "healthy"
    assert granted["web"] == sidecar.call("allocate_port", service_name="web")

    on_file = regfile.leases(path)
    assert sorted(on_file) == sorted((port, s) for s, port in granted.items())
    assert len({port for port, _ in on_file}) == len(on_file)
    assert regfile.integrity_check(path) == "ok"
    sidecar.stop()
    assert regfile.integrity_check(path) == "ok"


# --- a file that is not a registry ------------------------------------------------------


def _garbage_page(real: bytes) -> bytes:
    middle = len(real) // 1024 // 2 * 1024
    return real[:middle] + os.urandom(1024) + real[middle + 1024 :]


def _other_program(tmp_path: Path) -> bytes:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    return path.read_bytes()


DAMAGE: dict[str, tuple[Callable[[bytes, Path], bytes], str]] = {
    "random bytes": (lambda real, _: os.urandom(8192), "not an SQLite database"),
    "the first 100 bytes of a registry": (lambda real, _: real[:100], "corrupt"),
    "half a registry": (lambda real, _: real[: len(real) // 2], "corrupt"),
    "a registry header, then garbage": (
        lambda real, _: real[:100] + os.urandom(len(real) - 100),
        "corrupt",
    ),
    "one garbage page in a registry": (lambda real, _: _garbage_page(real), "corrupt"),
    "another program's database": (lambda _, tmp: _other_program(tmp), "not a portd registry"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_file_is_left_as_it_is_and_ports_come_from_memory(
    spawn_sidecar: Spawn, registry_path: Path, tmp_path: Path, damage: str
) -> None:
    make, named = DAMAGE[damage]
    content = make(real_registry_bytes(tmp_path), tmp_path)
    registry_path.write_bytes(content)
    registry_path.chmod(0o600)

    sidecar = spawn_sidecar()

    health = assert_falls_back(sidecar, named, "left as it is")
    assert str(registry_path) in health["message"]
    sidecar.stop()
    assert registry_path.read_bytes() == content, "someone's file must be left as it was"


def test_a_directory_at_the_registry_path_is_named_and_ports_come_from_memory(
    spawn_sidecar: Spawn, registry_path: Path
) -> None:
    registry_path.mkdir()
    sidecar = spawn_sidecar()
    assert_falls_back(sidecar, "is a directory")
    sidecar.stop()
    assert registry_path.is_dir() and os.listdir(registry_path) == []


# --- another user -----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["an empty file of ours", "a path that does not exist"])
def test_a_link_planted_by_another_user_is_never_followed(
    other_user: pwd.struct_passwd, spawn_sidecar: Spawn, tmp_path: Path, target: str
) -> None:
    shared = tmp_path / "shared"  # like /tmp: anyone may add entries, only owners remove them
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim.txt"
    if target == "an empty file of ours":
        victim.write_bytes(b"")
    link = shared / "registry.sqlite3"
    os.symlink(victim, link)
    os.lchown(link, other_user.pw_uid, other_user.pw_gid)

    sidecar = spawn_sidecar(registry=link)

    assert_falls_back(sidecar, "symbolic link", other_user.pw_name)
    sidecar.stop()
    assert os.readlink(link) == str(victim)
    if target == "an empty file of ours":
        assert victim.read_bytes() == b"", "written through the link"
    else:
        assert not victim.exists(), "created through the link"
    assert sorted(os.listdir(shared)) == ["registry.sqlite3"]


def test_another_users_registry_file_is_refused_and_left_as_it_is(
    other_user: pwd.struct_passwd, spawn_sidecar: Spawn, registry_path: Path
) -> None:
    """Root could write it; it must not: its owner could rewrite our leases at will."""
    leases = make_registry(registry_path, LEASES)
    os.chown(registry_path, other_user.pw_uid, other_user.pw_gid)
    registry_path.chmod(0o644)
    before = outsider_view(registry_path)

    sidecar = spawn_sidecar()

    assert_falls_back(sidecar, f"belongs to uid {other_user.pw_uid} ({other_user.pw_name})")
    sidecar.stop()
    assert outsider_view(registry_path) == before
    assert regfile.leases(registry_path) == leases


def test_our_own_registry_open_to_others_is_made_0600_and_used(
    spawn_sidecar: Spawn, registry_path: Path
) -> None:
    leases = make_registry(registry_path, LEASES)
    registry_path.chmod(0o644)

    sidecar = spawn_sidecar()
    port = sidecar.call("allocate_port", service_name="web")

    assert registry_health(sidecar)["status"] == "healthy"
    assert stat.S_IMODE(registry_path.stat().st_mode) == 0o600
    (line,) = fault_lines(sidecar.stderr_text())
    assert "was open to other users (file 0644" in line and "made it 0600" in line
    assert regfile.leases(registry_path) == sorted([*leases, (port, "web")])


# --- the CLI ----------------------------------------------------------------------------


def cli(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PORTD_REGISTRY", "PORTD_LOG")}
    proc = subprocess.run(
        [sys.executable, "-m", "portd", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**environ, **(env or {})},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _garbage(path: Path, _: Any) -> str:
    path.write_bytes(os.urandom(4096))
    return "not an SQLite database"


def _directory(path: Path, _: Any) -> str:
    path.mkdir()
    return "is a directory"


def _planted_link(path: Path, user: pwd.struct_passwd) -> str:
    os.symlink(path.with_name("victim"), path)
    os.lchown(path, user.pw_uid, user.pw_gid)
    return "symbolic link owned by"


def _theirs(path: Path, user: pwd.struct_passwd) -> str:
    make_registry(path, LEASES)
    os.chown(path, user.pw_uid, user.pw_gid)
    return f"belongs to uid {user.pw_uid}"


FAULTS = {"garbage": _garbage, "a directory": _directory, "a planted link": _planted_link}
FAULTS["another user's file"] = _theirs
NEEDS_A_USER = {"a planted link", "another user's file"}


@pytest.mark.parametrize("how", ["--registry", "PORTD_REGISTRY"])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("command", [["ls"], ["allocate", "web"]])
def test_the_cli_names_an_unusable_registry_and_exits_3(
    request: pytest.FixtureRequest, registry_path: Path, command: list[str], fault: str, how: str
) -> None:
    user = request.getfixturevalue("other_user") if fault in NEEDS_A_USER else None
    named = FAULTS[fault](registry_path, user)
    if how == "--registry":
        proc = cli(*command, "--registry", registry_path)
    else:
        proc = cli(*command, env={"PORTD_REGISTRY": str(registry_path)})
    assert proc.returncode == 3, proc
    assert proc.stdout == ""
    assert f"portd {command[0]}: the registry is unusable: {registry_path}: " in proc.stderr
    assert named in proc.stderr


@needs_root
def test_the_cli_on_a_full_disk_refuses_a_claim_with_exit_3_and_still_lists(
    disk: Path, spawn_sidecar: Spawn
) -> None:
    path = disk / "registry.sqlite3"
    sidecar = spawn_sidecar(registry=path)  # holds the file open, as a running app's would
    port = sidecar.call("allocate_port", service_name="web")
    fill(disk)

    refused = None
    for n in range(40):
        proc = cli("allocate", f"svc{n}", "--registry", path)
        if proc.returncode != 0:
            refused = proc
            break
    assert refused is not None, "a full disk never refused a claim"
    assert refused.returncode == 3, refused
    assert f"portd allocate: the registry {path} cannot be used: " in refused.stderr
    assert "database or disk is full" in refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr
    listing = cli("ls", "--json", "--registry", path)
    assert listing.returncode == 0, listing.stderr
    listed = {(lease["port"], lease["service"]) for lease in json.loads(listing.stdout)["leases"]}
    assert (port, "web") in listed
    assert regfile.integrity_check(path) == "ok"
