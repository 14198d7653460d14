"""Port leases in SQLite: one registry per machine, shared by every portd process.

The registry stores; the manager decides. A claim is one `Transaction` (BEGIN IMMEDIATE), so
two processes can never both see a port as unleased and both take it; `port` is the primary
key, so even a bug upstream cannot write a port twice.

Opening the file, and what a fault of the file or the disk does, is `registry_file`'s: at
open, `RegistryOpenError` (the sidecar falls back to memory); after, `RegistryUnavailable`
(-32004) for the call that met it, logged once, no fall-back. Faults are told apart from
our own errors (a constraint, a bug) by SQLite's error code, in the `except` clauses only:
the success path does no extra work.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .process import ProcessIdentity
from .protocol.errors import RegistryUnavailable
from .registry_file import (
    FileId,
    connect,
    file_problem,
    is_busy,
    is_fault,
    retry_locked,
    sqlite_reason,
)
from .registry_file import RegistryOpenError as RegistryOpenError
from .registry_schema import COLUMNS as _COLUMNS
from .registry_schema import PAGE_SIZE as PAGE_SIZE
from .registry_schema import SCHEMA as _SCHEMA
from .registry_schema import SCHEMA_VERSION as SCHEMA_VERSION
from .registry_schema import prepare

log = logging.getLogger(__name__)

MEMORY = ":memory:"
LOCK_WAIT = 10.0  # seconds to wait for another process's write before giving up
BACKOFF_FIRST, BACKOFF_MAX = 50e-6, 2e-3  # seconds: a claim holds the lock for tens of us

T = TypeVar("T")
_KEY = "owner_pid = ? AND owner_started = ? AND app_id = ? AND service = ?"


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

    def leases_in(self, low: int, high: int) -> list[Lease]:
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM leases WHERE port BETWEEN ? AND ? ORDER BY port", (low, high)
        ).fetchall()
        return [_lease(row) for row in rows]

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

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        degraded: str | None = None,
        file_id: FileId | None = None,
    ) -> None:
        self._conn = conn
        self._lock = threading.Lock()  # one connection, used from the loop and worker threads
        self.path = path
        self.degraded = degraded  # why we fell back to memory, if we did
        self.fault: str | None = None  # the last fault met since open, until `recheck` clears it
        self.log_faults = True  # the CLI prints them itself
        self._file_id = file_id
        self._own_writes = 0

    @classmethod
    def open(cls, path: Path, *, lock_timeout: float = 30.0) -> Registry:
        """The file at `path` (created 0600 if missing), or RegistryOpenError saying why it
        cannot serve (see `registry_file`)."""
        conn, file_id = connect(
            path, lambda conn: retry_locked(lambda: prepare(conn), lock_timeout)
        )
        return cls(conn, str(path), file_id=file_id)

    @classmethod
    def in_memory(cls, reason: str | None = None) -> Registry:
        conn = sqlite3.connect(MEMORY, isolation_level=None, check_same_thread=False)
        conn.executescript(_SCHEMA)
        return cls(conn, MEMORY, reason)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """BEGIN IMMEDIATE ... COMMIT. A failed COMMIT (a full disk: the WAL is written then)
        is rolled back too, so the write lock is never left held for other processes."""
        with self._lock:
            self._execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._conn.execute)
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:  # SQLite may have rolled back already
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error as undo:
                        log.debug("rollback failed: %s", undo)
                if isinstance(exc, sqlite3.Error):
                    self._raise_fault(exc)
                raise
            self._own_writes += 1

    def run_transaction(self, body: Callable[[Transaction], T]) -> T:
        """`body(tx)` in one transaction: it holds the write lock, so it never conflicts
        and runs once (etcd's may run it again: see `registry_backend`)."""
        with self.transaction() as tx:
            return body(tx)

    def is_local(self, lease: Lease) -> bool:
        return True  # one machine's file: every owner's pid can be looked at here

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
            try:
                yield Transaction(self._execute)
            except sqlite3.Error as exc:
                self._raise_fault(exc)
                raise

    def leases(
        self, owner: ProcessIdentity | None = None, app_id: str | None = None
    ) -> list[Lease]:
        query, args = f"SELECT {_COLUMNS} FROM leases", ()
        if owner is not None and app_id is not None:
            query += " WHERE owner_pid = ? AND owner_started = ? AND app_id = ?"
            args = (owner.pid, owner.started, app_id)  # type: ignore[assignment]
        with self._lock:
            try:
                rows = self._execute(query + " ORDER BY port", args).fetchall()
            except sqlite3.Error as exc:
                self._raise_fault(exc)
                raise
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
            try:  # with RETURNING, the statement commits on the fetch
                row = self._execute(statement, args).fetchone()
            except sqlite3.Error as exc:
                self._raise_fault(exc)
                raise
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
            except sqlite3.Error as exc:
                if not is_busy(exc):
                    self._raise_fault(exc)
                    raise
            attempt += 1
            now = time.monotonic()
            if attempt == 1:
                deadline = now + LOCK_WAIT
            elif now > deadline:
                raise RegistryUnavailable(f"the registry stayed locked for {LOCK_WAIT:g} s")
            time.sleep(min(BACKOFF_FIRST * 2 ** (attempt - 1), BACKOFF_MAX))

    def _raise_fault(self, exc: sqlite3.Error) -> None:
        """A fault of the file or the disk becomes RegistryUnavailable (-32004), logged when
        it starts or changes, not on every call; our own errors (a constraint) stay as
        they are."""
        if not is_fault(exc):
            return
        reason = sqlite_reason(exc)
        if reason != self.fault:
            self.fault = reason
            if self.log_faults:
                log.error(
                    "registry %s: %s; calls that need it fail until it recovers", self.path, reason
                )
        raise RegistryUnavailable(f"the registry {self.path} cannot be used: {reason}") from exc

    def recheck(self) -> str | None:
        """What is wrong with the file now, or None; for health, never per call. After a
        fault, one small write (the schema version, rewritten) tells whether it is over."""
        problem = file_problem(self.path, self._file_id)
        if problem is None and self.fault is not None:
            try:
                with self.transaction():
                    self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except RegistryUnavailable:
                pass
            else:
                log.info("registry %s works again (it failed with: %s)", self.path, self.fault)
                self.fault = None
        return problem or self.fault

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
