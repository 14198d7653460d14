"""registry: a released lease's row, kept for its key's next claim, is no lease to anyone."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from portd import registry as registry_module
from portd.process import ProcessIdentity
from portd.registry import PAGE_SIZE, LeaseKey, Registry
from portd.registry_rows import now_ms

ME = ProcessIdentity(os.getpid(), 1.0)
OTHER = ProcessIdentity(os.getpid(), 2.0)
WAL_FRAME = 24 + PAGE_SIZE  # a frame header and one page


def key(service: str, owner: ProcessIdentity = ME) -> LeaseKey:
    return LeaseKey(owner, "app", service)


def rows(path: Path) -> list[tuple[int, str, bool]]:
    """Every row of the table under the view: (port, service, released)."""
    with sqlite3.connect(path) as conn:
        return [
            (port, service, released is not None)
            for port, service, released in conn.execute(
                "SELECT port, service, released_at FROM lease_rows ORDER BY port"
            )
        ]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "registry.sqlite3"


@pytest.fixture
def registry(path: Path) -> Registry:
    reg = Registry.open(path)
    yield reg
    reg.close()


def test_a_released_lease_is_gone_for_every_reader(registry: Registry, path: Path) -> None:
    registry.claim(key("vite"), 1420)
    assert registry.release(key("vite"))
    assert rows(path) == [(1420, "vite", True)]  # kept underneath
    assert registry.leases() == []
    assert registry.lease_on(1420) is None
    assert registry.find(key("vite")) is None
    assert registry.renew(key("vite")) is None
    assert not registry.release(key("vite"))
    with registry.reading() as tx:
        assert tx.lease_on(1420) is None
        assert tx.next_unleased(1420, 1430) == 1420
        assert tx.leases_in(1, 65535) == []
    with sqlite3.connect(path) as conn:  # what the sqlite3 shell shows as leases
        assert conn.execute("SELECT COUNT(*) FROM leases").fetchone() == (0,)


def test_a_released_port_goes_to_whoever_claims_it_next(registry: Registry, path: Path) -> None:
    registry.claim(key("vite"), 1420)
    registry.release(key("vite"))
    assert registry.claim(key("api", OTHER), 1420) is not None
    assert [(lease.port, lease.key) for lease in registry.leases()] == [(1420, key("api", OTHER))]
    assert registry.claim(key("vite"), 1420) is None  # taken: the old row is no claim on it
    assert rows(path) == [(1420, "api", False)]


def test_a_released_port_is_first_in_line_for_a_range_claim(registry: Registry) -> None:
    registry.claim(key("a"), 1420)
    registry.claim(key("b"), 1421)
    registry.release(key("a"))
    lease = registry.claim_first_unleased(key("c", OTHER), 1420, 1430, [])
    assert lease is not None and lease.port == 1420


def test_a_transaction_inserts_over_released_rows_of_its_port_and_its_key(
    registry: Registry, path: Path
) -> None:
    registry.claim(key("vite"), 1420)
    registry.claim(key("api"), 1430)
    registry.release(key("vite"))
    registry.release(key("api"))
    with registry.transaction() as tx:
        tx.insert(1420, key("api"))  # 1420 holds vite's old row; api's old row is on 1430
    assert rows(path) == [(1420, "api", False)]


def test_claiming_again_revives_the_row_and_rewrites_one_page_per_call(
    registry: Registry, path: Path
) -> None:
    """The point of keeping the row: a release and a claim again write a frame each to
    the WAL, where deleting and inserting would write two (the table's and the key's)."""
    registry.claim(key("vite"), 1420)
    wal = Path(f"{path}-wal")
    before = wal.stat().st_size
    for _ in range(5):
        assert registry.release(key("vite"))
        lease = registry.claim(key("vite"), 1420)
        assert lease is not None and lease.port == 1420
    assert (wal.stat().st_size - before) == 10 * WAL_FRAME
    assert registry.find(key("vite")) == lease
    with registry.reading() as tx:
        assert tx.last_port("app", "vite") == 1420


def test_a_key_with_a_lease_elsewhere_is_refused_even_over_a_released_row(
    registry: Registry,
) -> None:
    registry.claim(key("vite"), 1420)
    registry.claim(key("api"), 1421)
    registry.release(key("api"))
    with pytest.raises(sqlite3.IntegrityError):
        registry.claim(key("vite"), 1421)
    with pytest.raises(sqlite3.IntegrityError):
        registry.claim_first_unleased(key("vite"), 1421, 1430, [])
    assert [lease.port for lease in registry.leases()] == [1420]


def test_a_registry_keeps_only_so_many_released_rows(
    registry: Registry, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "KEPT_RELEASED", 2)
    for port, service in enumerate("abc", start=1420):
        registry.claim(key(service), port)
        registry.release(key(service))
    assert rows(path) == [(1420, "a", True), (1421, "b", True)]


def test_closing_deletes_its_released_rows_and_stale_ones_only(path: Path) -> None:
    mine, theirs = Registry.open(path), Registry.open(path)
    for registry, lease_key, port in ((mine, key("vite"), 1420), (theirs, key("api", OTHER), 1421)):
        registry.claim(lease_key, port)
        registry.release(lease_key)
    with sqlite3.connect(path) as conn:  # a killed sidecar's, long ago
        conn.execute(
            "INSERT INTO lease_rows VALUES (1422, 'old', 'app', 9, 9.0, '[]', 0, 0, ?)",
            (now_ms() - registry_module.STALE_RELEASED_MS - 1,),
        )
    mine.close()
    assert rows(path) == [(1421, "api", True)]
    theirs.close()
    assert rows(path) == []
