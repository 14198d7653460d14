"""registry faults on `Registry` itself: what a file must be to be opened, and what a fault
after open does (RegistryUnavailable, logged once, every committed lease kept).

The e2e twin (tests/e2e/test_registry_faults.py) proves the same through real sidecars; these
are the fast, exhaustive cases. "Read-only" for root is a read-only mount or `chattr +i`.
"""

from __future__ import annotations

import logging
import os
import pwd
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from portd.manager import PortManager
from portd.process import ProcessIdentity, identify
from portd.protocol.errors import RegistryUnavailable
from portd.registry import SCHEMA_VERSION, LeaseKey, Registry, RegistryOpenError
from tests.support import regfile
from tests.support.faults import (
    disk,
    fill,
    immutable,
    make_registry,
    needs_root,
    other_user,
    real_registry_bytes,
)

__all__ = ["disk", "other_user"]  # fixtures

ME = ProcessIdentity(os.getpid(), 1.0)


def key(service: str) -> LeaseKey:
    return LeaseKey(ME, "app", service)


def refusal(path: Path) -> str:
    with pytest.raises(RegistryOpenError) as caught:
        Registry.open(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    return message


@pytest.fixture
def opened() -> Iterator[list[Registry]]:
    registries: list[Registry] = []
    yield registries
    for registry in registries:
        registry.close()


# --- faults after open --------------------------------------------------------------------


def claim_until_refused(registry: Registry, prefix: str) -> tuple[dict[str, int], Exception]:
    """Claim new services until the registry refuses one: what it granted, and the refusal."""
    granted: dict[str, int] = {}
    for n in range(60):
        try:
            lease = registry.claim_first_unleased(key(f"{prefix}{n}"), 30000, 31000, [])
        except RegistryUnavailable as exc:
            return granted, exc
        assert lease is not None
        granted[lease.service] = lease.port
    raise AssertionError("a full disk never refused a claim")


@needs_root
def test_a_full_disk_mid_claim_is_registry_unavailable_and_every_committed_lease_stays(
    disk: Path, opened: list[Registry], caplog: pytest.LogCaptureFixture
) -> None:
    path = disk / "registry.sqlite3"
    registry = Registry.open(path)
    opened.append(registry)
    granted = {s: registry.claim(key(s), port).port for s, port in {"a": 3000, "b": 3001}.items()}  # type: ignore[union-attr]
    filler = fill(disk)

    with caplog.at_level(logging.ERROR, "portd.registry"):
        more, refused = claim_until_refused(registry, "full")
        granted |= more
        for attempt in range(3):  # a transaction fails at COMMIT, when the log is written
            with pytest.raises(RegistryUnavailable), registry.transaction() as tx:
                for n in range(20):
                    tx.insert(32000 + attempt * 100 + n, key(f"tx{attempt}.{n}"))
    assert "database or disk is full" in str(refused) and "SQLITE_FULL" in str(refused)
    assert [r.getMessage() for r in caplog.records if "disk is full" in r.getMessage()] == [
        f"registry {path}: the disk is full (SQLITE_FULL: database or disk is full); "
        "calls that need it fail until it recovers"
    ], "one line when the fault starts, not one per call"
    assert registry.recheck() == registry.fault and "SQLITE_FULL" in str(registry.fault)
    with sqlite3.connect(path, timeout=0) as other:  # the failed COMMIT left no lock held
        other.execute("BEGIN IMMEDIATE")
        other.rollback()

    filler.unlink()
    assert registry.recheck() is None
    lease = registry.claim_first_unleased(key("after"), 30000, 31000, [])
    assert lease is not None
    granted["after"] = lease.port
    assert sorted(regfile.leases(path)) == sorted((p, s) for s, p in granted.items())
    assert len(set(granted.values())) == len(granted)
    assert regfile.integrity_check(path) == "ok"


@needs_root
def test_releasing_on_exit_with_a_full_disk_keeps_the_leases_and_says_so_in_one_line(
    disk: Path, opened: list[Registry], caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry.open(disk / "registry.sqlite3")
    opened.append(registry)
    owner = identify(os.getpid())
    assert owner is not None
    manager = PortManager(registry, owner)
    ports = {manager.allocate_port(s) for s in ("web", "api", "db")}
    fill(disk)
    claim_until_refused(registry, "fill")  # use up what the log had left

    with caplog.at_level(logging.WARNING):
        manager.release_taken()  # no exception: the sidecar is exiting

    assert {lease.port for lease in registry.leases(owner, "default")} == ports
    assert any("lease(s) not released" in r.getMessage() for r in caplog.records)


@needs_root
def test_a_write_error_under_an_open_registry_is_registry_unavailable_until_it_clears(
    tmp_path: Path, opened: list[Registry]
) -> None:
    """The write-ahead log turned immutable: every write to it fails (EPERM), even root's,
    through the descriptor SQLite already holds: an I/O error, as a failing disk gives."""
    path = tmp_path / "registry.sqlite3"
    registry = Registry.open(path)
    opened.append(registry)
    registry.claim(key("before"), 3000)
    with immutable(Path(f"{path}-wal")):
        with pytest.raises(RegistryUnavailable) as caught:
            registry.claim(key("during"), 3001)
        assert "SQLITE_IOERR" in str(caught.value), caught.value
        assert "SQLITE_IOERR" in str(registry.recheck())
        assert [lease.service for lease in registry.leases()] == ["before"]  # reads still work
    assert registry.recheck() is None
    assert registry.claim(key("after"), 3002) is not None
    assert [lease.service for lease in registry.leases()] == ["before", "after"]
    assert registry.integrity_check() == "ok"


def test_recheck_names_a_registry_file_removed_or_replaced_after_open(
    tmp_path: Path, opened: list[Registry]
) -> None:
    path = tmp_path / "registry.sqlite3"
    registry = Registry.open(path)
    opened.append(registry)
    assert registry.recheck() is None
    path.rename(tmp_path / "moved.sqlite3")
    assert "removed" in str(registry.recheck())
    path.write_bytes(b"")
    assert "replaced" in str(registry.recheck())


def test_constraint_errors_stay_what_they_are(tmp_path: Path, opened: list[Registry]) -> None:
    registry = Registry.open(tmp_path / "registry.sqlite3")
    opened.append(registry)
    registry.claim(key("a"), 3000)
    with pytest.raises(sqlite3.IntegrityError):
        registry.claim(key("a"), 3001)  # one lease per key: the manager's business
    assert registry.fault is None


# --- what may be opened -------------------------------------------------------------------


DAMAGE = {
    "random bytes": lambda real: os.urandom(4096),
    "zeros": lambda real: bytes(4096),
    "the first 100 bytes": lambda real: real[:100],
    "the first page": lambda real: real[:1024],
    "all but the last page": lambda real: real[:-1024],
    "a header, then garbage": lambda real: real[:100] + os.urandom(len(real) - 100),
    "a garbage page": lambda real: real[:3072] + os.urandom(1024) + real[4096:],
    "a garbage last page": lambda real: real[:-1024] + os.urandom(1024),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_file_is_refused_and_left_as_it_is(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "registry.sqlite3"
    content = DAMAGE[damage](real_registry_bytes(tmp_path))
    path.write_bytes(content)
    path.chmod(0o644)  # loose, too: a refused file is not even made private

    message = refusal(path)

    assert "corrupt" in message or "not an SQLite database" in message, message
    assert "left as it is" in message
    assert path.read_bytes() == content
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_another_programs_database_is_refused_and_not_even_switched_to_wal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    content = path.read_bytes()

    assert "not a portd registry (it holds users)" in refusal(path)
    assert path.read_bytes() == content


def test_a_registry_of_a_newer_portd_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    make_registry(path, {"api": 3000})
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    content = path.read_bytes()

    assert f"its schema {SCHEMA_VERSION + 1} is newer than this portd" in refusal(path)
    assert path.read_bytes() == content


def test_what_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite3").mkdir()
    assert "it is a directory, not a registry file" in refusal(tmp_path / "dir.sqlite3")
    os.mkfifo(tmp_path / "fifo.sqlite3")
    assert "not a regular file" in refusal(tmp_path / "fifo.sqlite3")
    (tmp_path / "file").write_text("x")
    assert "is not a folder" in refusal(tmp_path / "file" / "registry.sqlite3")


def test_our_own_link_is_followed(tmp_path: Path, opened: list[Registry]) -> None:
    real = tmp_path / "real.sqlite3"
    make_registry(real, {"api": 3000})
    (tmp_path / "link.sqlite3").symlink_to(real)
    registry = Registry.open(tmp_path / "link.sqlite3")
    opened.append(registry)
    assert [lease.service for lease in registry.leases()] == ["api"]
    assert registry.recheck() is None


def test_a_folder_anyone_may_change_is_refused_but_a_sticky_one_like_tmp_is_not(
    tmp_path: Path, opened: list[Registry]
) -> None:
    loose, sticky = tmp_path / "loose", tmp_path / "sticky"
    for folder, mode in ((loose, 0o777), (sticky, 0o1777)):
        folder.mkdir()
        folder.chmod(mode)
    assert "lets anyone replace the file" in refusal(loose / "registry.sqlite3")
    assert os.listdir(loose) == []
    opened.append(Registry.open(sticky / "registry.sqlite3"))


def test_our_own_loose_registry_is_made_0600_with_one_warning(
    tmp_path: Path, opened: list[Registry], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "registry.sqlite3"
    make_registry(path, {"api": 3000})
    path.chmod(0o666)
    with caplog.at_level(logging.WARNING, "portd.registry"):
        opened.append(Registry.open(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{path}-wal").stat().st_mode) == 0o600
    (warning,) = caplog.records
    assert "was open to other users (file 0666" in warning.getMessage()


def test_links_and_files_of_another_user_are_refused_and_left_alone(
    other_user: pwd.struct_passwd, tmp_path: Path
) -> None:
    uid, gid, name = other_user.pw_uid, other_user.pw_gid, other_user.pw_name
    victim = tmp_path / "victim"
    victim.write_bytes(b"")
    link = tmp_path / "link.sqlite3"
    link.symlink_to(victim)
    os.lchown(link, uid, gid)
    assert f"a symbolic link owned by uid {uid} ({name}), not by us" in refusal(link)
    assert victim.read_bytes() == b""

    theirs = tmp_path / "theirs.sqlite3"
    make_registry(theirs, {"api": 3000})
    os.chown(theirs, uid, gid)
    content = theirs.read_bytes()
    assert f"it belongs to uid {uid} ({name}), not to us" in refusal(theirs)
    assert theirs.read_bytes() == content

    squatted = tmp_path / "squatted"  # made first by them, say as /tmp/portd
    squatted.mkdir()
    os.chown(squatted, uid, gid)
    assert f"its folder {squatted} belongs to uid {uid} ({name})" in refusal(
        squatted / "registry.sqlite3"
    )
    assert os.listdir(squatted) == []


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_side_file_planted_beside_our_registry_is_refused(
    other_user: pwd.struct_passwd, tmp_path: Path, suffix: str
) -> None:
    """SQLite opens -wal and -shm by name: a planted link would be written through, and a
    planted file would feed our registry someone else's pages."""
    path = tmp_path / "registry.sqlite3"
    make_registry(path, {"api": 3000})
    victim = tmp_path / "victim"
    victim.write_bytes(b"")
    side = Path(f"{path}{suffix}")
    side.symlink_to(victim)
    assert f"{side} is a symbolic link" in refusal(path)
    assert victim.read_bytes() == b""

    side.unlink()
    side.write_bytes(b"")
    os.chown(side, other_user.pw_uid, other_user.pw_gid)
    assert f"{side} belongs to uid {other_user.pw_uid}" in refusal(path)
