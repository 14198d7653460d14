"""The SQLite registry's rows: the lease types every back end shares, the key's SQL, and
what one transaction reads and writes (`Transaction`, inside `Registry.transaction`)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .process import ProcessIdentity
from .registry_schema import COLUMNS

KEY = "owner_pid = ? AND owner_started = ? AND app_id = ? AND service = ?"
LIVE = "released_at IS NULL"  # a lease, not a released row (see registry_schema)
RELEASED = "released_at IS NOT NULL"
# A claim replaces released rows on its port or of its key, never a lease: it checks both
# for live leases first.
CLAIM_GUARD = f"NOT EXISTS (SELECT 1 FROM leases WHERE {KEY})"


class DuplicateLease(sqlite3.IntegrityError):
    """The port, or the LeaseKey, has a lease already: what SQLite's UNIQUE constraints
    raise, so that the manager's `except sqlite3.IntegrityError` holds for every claim."""


@dataclass(frozen=True, slots=True)
class LeaseKey:
    owner: ProcessIdentity
    app_id: str
    service: str
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Hashed on every allocate and release (the manager's dicts): work it out once.
        object.__setattr__(self, "_hash", hash(self.params()))

    def __hash__(self) -> int:
        return self._hash

    def params(self) -> tuple[int, float, str, str]:
        return (self.owner.pid, self.owner.started, self.app_id, self.service)

    def fields(self) -> tuple[str, str, int, float]:
        """The key in the column order of the leases table."""
        return (self.service, self.app_id, self.owner.pid, self.owner.started)


@dataclass(frozen=True, slots=True)
class Lease:
    port: int
    key: LeaseKey
    holders: tuple[ProcessIdentity, ...]
    created_at: int
    renewed_at: int

    @property
    def service(self) -> str:
        return self.key.service

    @property
    def owner(self) -> ProcessIdentity:
        return self.key.owner


def now_ms() -> int:
    return int(time.time() * 1000)


def lease_of_row(row: Any) -> Lease:
    port, service, app_id, owner_pid, owner_started, holders, created, renewed = row
    key = LeaseKey(ProcessIdentity(owner_pid, owner_started), app_id, service)
    held = (
        tuple(ProcessIdentity(int(p), float(s)) for p, s in json.loads(holders))
        if holders != "[]"
        else ()
    )
    return Lease(port, key, held, created, renewed)


class Transaction:
    """The reads and writes of one claim, inside BEGIN IMMEDIATE (or reads on their own,
    from `Registry.reading`)."""

    def __init__(self, execute: Callable[..., sqlite3.Cursor]) -> None:
        self._execute = execute

    def find(self, key: LeaseKey) -> Lease | None:
        row = self._execute(f"SELECT {COLUMNS} FROM leases WHERE {KEY}", key.params()).fetchone()
        return lease_of_row(row) if row else None

    def lease_on(self, port: int) -> Lease | None:
        row = self._execute(f"SELECT {COLUMNS} FROM leases WHERE port = ?", (port,)).fetchone()
        return lease_of_row(row) if row else None

    def next_unleased(self, low: int, high: int) -> int | None:
        """The lowest port in low..high with no lease: one indexed query, however crowded."""
        if self.lease_on(low) is None:
            return low
        row = self._execute(
            "SELECT l.port + 1 FROM leases l WHERE l.port BETWEEN ? AND ? "
            "AND NOT EXISTS (SELECT 1 FROM leases n WHERE n.port = l.port + 1) "
            "ORDER BY l.port LIMIT 1",
            (low, high - 1),
        ).fetchone()
        return int(row[0]) if row else None

    def leases_in(self, low: int, high: int) -> list[Lease]:
        rows = self._execute(
            f"SELECT {COLUMNS} FROM leases WHERE port BETWEEN ? AND ? ORDER BY port", (low, high)
        ).fetchall()
        return [lease_of_row(row) for row in rows]

    def insert(self, port: int, key: LeaseKey, holders: tuple[ProcessIdentity, ...] = ()) -> Lease:
        now = now_ms()
        self._execute(
            f"DELETE FROM lease_rows WHERE {RELEASED} AND (port = ? OR {KEY})",
            (port, *key.params()),
        )
        self._execute(
            f"INSERT INTO lease_rows ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (port, *key.fields(), holders_json(holders), now, now),
        )
        return Lease(port, key, holders, now, now)

    def set_holders(self, port: int, holders: tuple[ProcessIdentity, ...]) -> None:
        self._execute(
            f"UPDATE lease_rows SET holders = ? WHERE port = ? AND {LIVE}",
            (holders_json(holders), port),
        )

    def delete(self, port: int) -> None:
        self._execute("DELETE FROM lease_rows WHERE port = ?", (port,))

    def last_port(self, app_id: str, service: str) -> int | None:
        row = self._execute(
            "SELECT port FROM last_ports WHERE app_id = ? AND service = ?", (app_id, service)
        ).fetchone()
        return int(row[0]) if row else None


def holders_json(holders: tuple[ProcessIdentity, ...]) -> str:
    return json.dumps([[h.pid, h.started] for h in holders])
