"""Port leases in SQLite: one registry per machine, shared by every portd process.

The registry stores; the manager decides. A claim is one `Transaction` (BEGIN IMMEDIATE), so
two processes can never both see a port as unleased and both take it; `port` is the primary
key, so even a bug upstream cannot write a port twice.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .process import ProcessIdentity
from .protocol.errors import RegistryUnavailable

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
MEMORY = ":memory:"
LOCK_WAIT = 10.0  # seconds to wait for another process's write before giving up
PAGE_SIZE = 1024
BACKOFF_FIRST, BACKOFF_MAX = 50e-6, 2e-3  # seconds: a claim holds the lock for tens of us

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    port          INTEGER PRIMARY KEY CHECK (port BETWEEN 1 AND 65535),
    service       TEXT    NOT NULL,
    app_id        TEXT    NOT NULL,
    owner_pid     INTEGER NOT NULL,
    owner_started REAL    NOT NULL,
    holders       TEXT    NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    renewed_at    INTEGER NOT NULL,
    UNIQUE (owner_pid, owner_started, app_id, service)
);
CREATE TABLE IF NOT EXISTS last_ports (
    app_id  TEXT    NOT NULL,
    service TEXT    NOT NULL,
    port    INTEGER NOT NULL,
    PRIMARY KEY (app_id, service)
);
-- The sticky port follows every new lease inside SQLite: no extra statement per claim, and
-- no write at all when the service gets its sticky port back.
CREATE TRIGGER IF NOT EXISTS remember_last_port AFTER INSERT ON leases
WHEN NOT EXISTS (
    SELECT 1 FROM last_ports
    WHERE app_id = NEW.app_id AND service = NEW.service AND port = NEW.port
) BEGIN
    INSERT OR REPLACE INTO last_ports (app_id, service, port)
    VALUES (NEW.app_id, NEW.service, NEW.port);
END;
"""
# From schema 2: the trigger gained its WHEN clause.
_UPGRADE = "DROP TRIGGER IF EXISTS remember_last_port;"
_COLUMNS = "port, service, app_id, owner_pid, owner_started, holders, created_at, renewed_at"
_KEY = "owner_pid = ? AND owner_started = ? AND app_id = ? AND service = ?"


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class RegistryOpenError(Exception):
    """The file cannot serve as a registry: unwritable or not a database. Never a lock."""


@dataclass(frozen=True, slots=True)
class LeaseKey:
    owner: ProcessIdentity
    app_id: str
    service: str

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


def _lease(row: Any) -> Lease:
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
        row = self._execute(f"SELECT {_COLUMNS} FROM leases WHERE {_KEY}", key.params()).fetchone()
        return _lease(row) if row else None

    def lease_on(self, port: int) -> Lease | None:
        row = self._execute(f"SELECT {_COLUMNS} FROM leases WHERE port = ?", (port,)).fetchone()
        return _lease(row) if row else None

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

    def insert(self, port: int, key: LeaseKey, holders: tuple[ProcessIdentity, ...] = ()) -> Lease:
        now = now_ms()
        self._execute(
            f"INSERT INTO leases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (port, *key.fields(), _holders_json(holders), now, now),
        )
        return Lease(port, key, holders, now, now)

    def set_holders(self, port: int, holders: tuple[ProcessIdentity, ...]) -> None:
        self._execute(
            "UPDATE leases SET holders = ? WHERE port = ?", (_holders_json(holders), port)
        )

    def delete(self, port: int) -> None:
        self._execute("DELETE FROM leases WHERE port = ?", (port,))

    def last_port(self, app_id: str, service: str) -> int | None:
        row = self._execute(
            "SELECT port FROM last_ports WHERE app_id = ? AND service = ?", (app_id, service)
        ).fetchone()
        return int(row[0]) if row else None


def _holders_json(holders: tuple[ProcessIdentity, ...]) -> str:
    return json.dumps([[h.pid, h.started] for h in holders])


class Registry:
    """Leases in one SQLite database: a file shared by the machine, or a private memory one."""

    def __init__(self, conn: sqlite3.Connection, path: str, degraded: str | None = None) -> None:
        self._conn = conn
        self._lock = threading.Lock()  # one connection, used from the loop and worker threads
        self.path = path
        self.degraded = degraded  # why we fell back to memory, if we did
        self._own_writes = 0

    @classmethod
    def open(cls, path: Path, *, lock_timeout: float = 30.0) -> Registry:
        try:
            conn = _connect_file(path, lock_timeout)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise RegistryOpenError(f"{path}: {exc}") from exc
        return cls(conn, str(path))

    @classmethod
    def in_memory(cls, reason: str | None = None) -> Registry:
        conn = sqlite3.connect(MEMORY, isolation_level=None, check_same_thread=False)
        conn.executescript(_SCHEMA)
        return cls(conn, MEMORY, reason)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._lock:
            self._execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._conn.execute)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._own_writes += 1

    def version(self) -> tuple[int, int]:
        """Changes whenever any process has written: SQLite's data_version counts the other
        connections' commits, and we count our own."""
        with self._lock:
            other = int(self._execute("PRAGMA data_version").fetchone()[0])
        return other, self._own_writes

    @contextmanager
    def reading(self) -> Iterator[Transaction]:
        """Reads without a transaction: each statement sees the latest commit. Enough for
        looking; a claim re-checks what it looked at inside its own transaction."""
        with self._lock:
            yield Transaction(self._execute)

    def leases(
        self, owner: ProcessIdentity | None = None, app_id: str | None = None
    ) -> list[Lease]:
        query, args = f"SELECT {_COLUMNS} FROM leases", ()
        if owner is not None and app_id is not None:
            query += " WHERE owner_pid = ? AND owner_started = ? AND app_id = ?"
            args = (owner.pid, owner.started, app_id)  # type: ignore[assignment]
        with self._lock:
            rows = self._execute(query + " ORDER BY port", args).fetchall()
        return [_lease(r) for r in rows]

    def lease_on(self, port: int) -> Lease | None:
        with self._lock:
            row = self._execute(f"SELECT {_COLUMNS} FROM leases WHERE port = ?", (port,)).fetchone()
        return _lease(row) if row else None

    def find(self, key: LeaseKey) -> Lease | None:
        with self._lock:
            row = self._execute(
                f"SELECT {_COLUMNS} FROM leases WHERE {_KEY}", key.params()
            ).fetchone()
        return _lease(row) if row else None

    def renew(self, key: LeaseKey) -> Lease | None:
        """The key's live lease, marked renewed; one statement, so no transaction needed."""
        return self._write_one(
            f"UPDATE leases SET renewed_at = ? WHERE {_KEY} RETURNING {_COLUMNS}",
            (now_ms(), *key.params()),
        )

    def claim(self, key: LeaseKey, port: int) -> Lease | None:
        """Lease `port` if it has no lease, in one statement; None if it has one."""
        return self._insert_one(
            key,
            f"INSERT INTO leases ({_COLUMNS}) SELECT ?, ?, ?, ?, ?, '[]', ?, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM leases WHERE port = ?)",
            lambda now: (port, *key.fields(), now, now, port),
        )

    def _insert_one(
        self, key: LeaseKey, statement: str, args: Callable[[int], tuple[object, ...]]
    ) -> Lease | None:
        """Run an INSERT of at most one lease for `key`: the lease, if it made one. The
        port is the row's rowid; no RETURNING, which makes SQLite buffer the result."""
        now = now_ms()
        with self._lock:
            cursor = self._execute(statement, args(now))
            self._own_writes += 1
            port = cursor.lastrowid if cursor.rowcount == 1 else None
        return None if port is None else Lease(port, key, (), now, now)

    def claim_first_unleased(
        self, key: LeaseKey, start: int, high: int, skip: list[int]
    ) -> Lease | None:
        """Lease the lowest port in start..high that has no lease and is not in `skip`, in
        one statement: it cannot lose a race to another process, it just takes the next
        free port, and it holds the write lock for as short a time as SQLite allows. The
        candidates are `start` and every port just above a lease or a skipped port."""
        skipped, window = json.dumps(skip), (start, high)
        return self._insert_one(
            key,
            f"INSERT INTO leases ({_COLUMNS}) "
            "SELECT c.p, ?, ?, ?, ?, '[]', ?, ? FROM ("
            " SELECT ? AS p"
            " UNION SELECT port + 1 FROM leases WHERE port BETWEEN ? AND ?"
            " UNION SELECT value + 1 FROM json_each(?)"
            ") c WHERE c.p BETWEEN ? AND ?"
            " AND NOT EXISTS (SELECT 1 FROM leases n WHERE n.port = c.p)"
            " AND c.p NOT IN (SELECT value FROM json_each(?))"
            " ORDER BY c.p LIMIT 1",
            lambda now: (*key.fields(), now, now, start, *window, skipped, *window, skipped),
        )

    def release(self, key: LeaseKey) -> bool:
        """End the key's lease; False if it had none."""
        with self._lock:
            released = self._execute(f"DELETE FROM leases WHERE {_KEY}", key.params()).rowcount
            self._own_writes += 1
        return released == 1

    def _write_one(self, statement: str, args: tuple[object, ...]) -> Lease | None:
        with self._lock:
            row = self._execute(statement, args).fetchone()
            self._own_writes += 1
        return _lease(row) if row else None

    def _execute(self, statement: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        """Run a statement, waiting out another process's lock with short back-offs.

        SQLite's own busy handler sleeps whole milliseconds at a time, which leaves the lock
        idle most of the time when several sidecars claim at once; a claim takes tens of
        microseconds, so we sleep from 50 us, doubling up to 2 ms."""
        deadline = 0.0
        attempt = 0
        while True:
            try:
                return self._conn.execute(statement, args)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
            attempt += 1
            now = time.monotonic()
            if attempt == 1:
                deadline = now + LOCK_WAIT
            elif now > deadline:
                raise RegistryUnavailable(f"the registry stayed locked for {LOCK_WAIT:g} s")
            time.sleep(min(BACKOFF_FIRST * 2 ** (attempt - 1), BACKOFF_MAX))

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _connect_file(path: Path, lock_timeout: float) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Create the file ourselves so that it is 0600 from its first byte; SQLite gives the
    # -wal and -shm files the same mode.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    try:
        _retry_locked(lambda: _prepare(conn), lock_timeout)
    except BaseException:
        conn.close()
        raise
    return conn


def _prepare(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout = 0")  # Registry._execute waits, more nimbly
    # A claim or a release writes a handful of pages to the WAL: small pages make that
    # about 1.6x faster (a lease is a short row). It takes effect on a new file only.
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"database is locked (journal mode {mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version < SCHEMA_VERSION:
        # Idempotent, so sidecars racing to create (or upgrade) the schema all succeed.
        conn.executescript(
            f"BEGIN IMMEDIATE;{_UPGRADE}{_SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
        )
    elif version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"registry schema {version} is newer than this portd")
    conn.execute(f"SELECT {_COLUMNS} FROM leases LIMIT 1").fetchall()


def _retry_locked(action: object, timeout: float) -> None:
    """Switching to WAL takes an exclusive lock that the busy handler does not wait for, so
    several sidecars opening a new file at once see "database is locked" at once: back off
    and try again. A lock is never a reason to give up the shared registry."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            action()  # type: ignore[operator]
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() > deadline:
                raise
            log.debug("registry busy (%s); retrying in %.0f ms", exc, delay * 1000)
            import random  # only once a lock is contended: not worth loading on every start

            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)
