"""Read a registry file the way an outsider would: plain sqlite3, read-only, no portd code."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def read_only(path: Path | str) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    with closing(conn):
        yield conn


def query(path: Path | str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with read_only(path) as conn:
        return conn.execute(sql, args).fetchall()


def leases(path: Path | str) -> list[tuple[int, str]]:
    """(port, service) of every lease in the file, by port."""
    return [
        (int(p), str(s)) for p, s in query(path, "SELECT port, service FROM leases ORDER BY port")
    ]


def leases_when_readable(path: Path | str) -> list[tuple[int, str]] | None:
    """Like `leases`, but None while the file or its schema does not exist yet (a sidecar
    sends `ready` before it opens the registry): for polling with `wait_until`."""
    if not Path(path).exists():
        return None
    try:
        return leases(path)
    except sqlite3.OperationalError:
        return None


def leased_ports(path: Path | str) -> set[int]:
    return {port for port, _ in leases(path)}


def integrity_check(path: Path | str) -> str:
    return str(query(path, "PRAGMA integrity_check")[0][0])


def assert_registry_sound(path: Path, note: str) -> None:
    if not path.exists():
        return  # killed before it created the file
    assert integrity_check(path) == "ok", note
    tables = {name for (name,) in query(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    if "leases" not in tables:
        return  # killed before the schema was committed: nothing half-made is left
    assert query(path, "SELECT port FROM leases GROUP BY port HAVING COUNT(*) > 1") == [], note
    assert (
        query(
            path,
            "SELECT owner_pid, owner_started, app_id, service FROM leases "
            "GROUP BY owner_pid, owner_started, app_id, service "
            "HAVING COUNT(*) > 1",
        )
        == []
    ), note
    assert query(path, "SELECT COUNT(*) FROM leases WHERE port NOT BETWEEN 1 AND 65535") == [(0,)]
