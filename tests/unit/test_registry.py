"""registry: leases in a real SQLite file."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from portd.process import ProcessIdentity
from portd.registry import PAGE_SIZE, SCHEMA_VERSION, LeaseKey, Registry, RegistryOpenError

ME = ProcessIdentity(os.getpid(), 1.0)
OTHER = ProcessIdentity(os.getpid(), 2.0)


def key(service: str, owner: ProcessIdentity = ME, app: str = "app") -> LeaseKey:
    return LeaseKey(owner, app, service)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry.open(tmp_path / "state" / "registry.sqlite3")
    yield reg
    reg.close()


def test_open_creates_the_file_0600_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new" / "registry.sqlite3"
    Registry.open(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_open_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(RegistryOpenError):
        Registry.open(path)


def test_a_port_can_be_leased_only_once(registry: Registry) -> None:
    with registry.transaction() as tx:
        tx.insert(1500, key("a"))
    with pytest.raises(sqlite3.IntegrityError), registry.transaction() as tx:
        tx.insert(1500, key("b"))
    assert [lease.service for lease in registry.leases()] == ["a"]


def test_a_key_holds_one_lease_and_two_owners_hold_two(registry: Registry) -> None:
    with registry.transaction() as tx:
        tx.insert(1500, key("vite"))
        tx.insert(1501, key("vite", owner=OTHER))
        assert tx.find(key("vite")).port == 1500  # type: ignore[union-attr]
        assert tx.find(key("vite", owner=OTHER)).port == 1501  # type: ignore[union-attr]
    with pytest.raises(sqlite3.IntegrityError), registry.transaction() as tx:
        tx.insert(1502, key("vite"))


def test_a_failed_transaction_leaves_nothing_behind(registry: Registry) -> None:
    with pytest.raises(RuntimeError), registry.transaction() as tx:
        tx.insert(1500, key("a"))
        raise RuntimeError("boom")
    assert registry.leases() == []


def test_next_unleased_skips_a_crowded_run_in_one_step(registry: Registry) -> None:
    with registry.transaction() as tx:
        for port in range(2000, 2500):
            tx.insert(port, key(f"s{port}"))
        tx.insert(2501, key("gap-after"))
        assert tx.next_unleased(2000, 3000) == 2500
        assert tx.next_unleased(2501, 3000) == 2502
        assert tx.next_unleased(1999, 3000) == 1999
        assert tx.next_unleased(2000, 2499) is None


def test_release_removes_only_that_keys_lease(registry: Registry) -> None:
    with registry.transaction() as tx:
        tx.insert(1500, key("a"))
        tx.insert(1501, key("b"))
    assert registry.release(key("a")) is True
    assert registry.release(key("a")) is False
    assert [lease.port for lease in registry.leases()] == [1501]


def test_the_last_port_of_a_service_outlives_its_lease(registry: Registry) -> None:
    with registry.transaction() as tx:
        tx.insert(1555, key("vite"))
    registry.release(key("vite"))
    with registry.reading() as tx:
        assert tx.last_port("app", "vite") == 1555
        assert tx.last_port("other-app", "vite") is None


def test_holders_round_trip_with_their_start_times(registry: Registry) -> None:
    holders = (ProcessIdentity(10, 123.25), ProcessIdentity(11, 456.5))
    with registry.transaction() as tx:
        tx.insert(1500, key("a"))
        tx.set_holders(1500, holders)
    assert registry.lease_on(1500).holders == holders  # type: ignore[union-attr]


def test_version_changes_when_another_process_writes(registry: Registry) -> None:
    before = registry.version()
    assert registry.version() == before
    with sqlite3.connect(registry.path) as other:
        other.execute("INSERT INTO lease_rows VALUES (1600, 's', 'a', 1, 1.0, '[]', 0, 0, NULL)")
    assert registry.version() != before


OPEN_AND_CLAIM = """
import sys
from portd.process import ProcessIdentity
from portd.registry import LeaseKey, Registry
registry = Registry.open(__import__('pathlib').Path(sys.argv[1]))
with registry.transaction() as tx:
    port = tx.next_unleased(30000, 30100)
    tx.insert(port, LeaseKey(ProcessIdentity(int(sys.argv[2]), 1.0), 'race', 'svc'))
print(port)
"""


def ports_claimed_at_once(script: str, path: Path, processes: int) -> list[int]:
    """Run `script` (given the path and a pid) in `processes` processes at once: the port
    each printed, once all of them exited 0."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(1, processes + 1)
    ]
    results = [proc.communicate(timeout=60) for proc in procs]
    assert [p.returncode for p in procs] == [0] * processes, [err for _, err in results]
    return [int(out) for out, _ in results]


def test_many_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """The WAL switch is not covered by the busy timeout: openers must retry, never fail."""
    ports = ports_claimed_at_once(OPEN_AND_CLAIM, tmp_path / "fresh.sqlite3", 12)
    assert len(set(ports)) == 12


def test_in_memory_registry_serves_the_same_interface() -> None:
    registry = Registry.in_memory(reason="test")
    with registry.transaction() as tx:
        tx.insert(1500, key("a"))
    assert registry.degraded == "test" and registry.lease_on(1500) is not None
    assert registry.integrity_check() == "ok"


def test_claim_first_unleased_takes_the_lowest_free_port_skipping_leases_and_skips(
    registry: Registry,
) -> None:
    with registry.transaction() as tx:
        tx.insert(3000, key("a"))
        tx.insert(3001, key("b"))
    assert registry.claim_first_unleased(key("c"), 3000, 3010, [3002, 3003]).port == 3004  # type: ignore[union-attr]
    assert registry.claim_first_unleased(key("d"), 3000, 3010, []).port == 3002  # type: ignore[union-attr]
    assert registry.claim_first_unleased(key("e"), 3011, 3010, []) is None


def test_claim_first_unleased_returns_nothing_when_the_range_is_full(registry: Registry) -> None:
    with registry.transaction() as tx:
        for port in range(3100, 3103):
            tx.insert(port, key(f"s{port}"))
    assert registry.claim_first_unleased(key("late"), 3100, 3102, []) is None
    assert registry.claim_first_unleased(key("late"), 3100, 3103, [3103]) is None


def test_claim_first_unleased_never_gives_a_key_a_second_lease(registry: Registry) -> None:
    registry.claim_first_unleased(key("vite"), 3200, 3210, [])
    with pytest.raises(sqlite3.IntegrityError):
        registry.claim_first_unleased(key("vite"), 3200, 3210, [])


def test_claim_takes_a_port_only_while_it_has_no_lease(registry: Registry) -> None:
    lease = registry.claim(key("a"), 3300)
    assert lease is not None and lease.port == 3300 and lease.key == key("a")
    assert registry.claim(key("b"), 3300) is None
    assert registry.lease_on(3300) == lease


def test_the_last_port_follows_a_service_that_moved(registry: Registry) -> None:
    registry.claim(key("vite"), 3600)
    registry.release(key("vite"))
    registry.claim(key("vite"), 3601)
    with registry.reading() as tx:
        assert tx.last_port("app", "vite") == 3601


def test_a_new_registry_uses_small_pages(tmp_path: Path) -> None:
    path = tmp_path / "small.sqlite3"
    Registry.open(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE


SCHEMA_2 = """
PRAGMA journal_mode = WAL;
CREATE TABLE leases (
    port INTEGER PRIMARY KEY CHECK (port BETWEEN 1 AND 65535), service TEXT NOT NULL,
    app_id TEXT NOT NULL, owner_pid INTEGER NOT NULL, owner_started REAL NOT NULL,
    holders TEXT NOT NULL DEFAULT '[]', created_at INTEGER NOT NULL,
    renewed_at INTEGER NOT NULL, UNIQUE (owner_pid, owner_started, app_id, service));
CREATE TABLE last_ports (app_id TEXT NOT NULL, service TEXT NOT NULL, port INTEGER NOT NULL,
    PRIMARY KEY (app_id, service));
CREATE TRIGGER remember_last_port AFTER INSERT ON leases BEGIN
    INSERT OR REPLACE INTO last_ports (app_id, service, port)
    VALUES (NEW.app_id, NEW.service, NEW.port);
END;
INSERT INTO leases VALUES (4000, 'api', 'app', 1, 1.0, '[]', 0, 0);
PRAGMA user_version = 2;
"""


def test_a_schema_2_registry_is_upgraded_in_place_and_keeps_its_leases(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_2)
    registry = Registry.open(path)
    try:
        assert registry.lease_on(4000).service == "api"  # type: ignore[union-attr]
        registry.claim(key("vite"), 4001)
        with registry.reading() as tx:
            assert tx.last_port("app", "api") == 4000
            assert tx.last_port("app", "vite") == 4001
    finally:
        registry.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        trigger = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
        assert len(trigger) == 1 and "WHEN NOT EXISTS" in trigger[0][0]


# Schema 3 differs from 2 in its trigger only: it fires when the sticky port changes.
SCHEMA_3 = SCHEMA_2.replace(
    "AFTER INSERT ON leases BEGIN",
    "AFTER INSERT ON leases WHEN NOT EXISTS (SELECT 1 FROM last_ports WHERE app_id = NEW.app_id"
    " AND service = NEW.service AND port = NEW.port) BEGIN",
).replace("user_version = 2", "user_version = 3")
OPEN_RELEASE_AND_CLAIM = """
import sys
from pathlib import Path
from portd.process import ProcessIdentity
from portd.registry import LeaseKey, Registry
registry = Registry.open(Path(sys.argv[1]))
key = LeaseKey(ProcessIdentity(int(sys.argv[2]), 1.0), 'race', 'svc')
lease = registry.claim_first_unleased(key, 30000, 30100, [])
registry.release(key)
print(registry.claim(key, lease.port).port)
"""


def test_many_processes_upgrading_a_schema_3_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Schema 4 renames the table and puts the `leases` view in its place: whoever comes
    second must find that done, not do it again."""
    path = tmp_path / "schema3.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_3)
    assert len(set(ports_claimed_at_once(OPEN_RELEASE_AND_CLAIM, path, 8))) == 8
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        kinds = dict(conn.execute("SELECT name, type FROM sqlite_master WHERE name LIKE 'lease%'"))
        assert kinds == {"lease_rows": "table", "leases": "view"}
        assert conn.execute("SELECT service FROM leases WHERE port = 4000").fetchone() == ("api",)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
