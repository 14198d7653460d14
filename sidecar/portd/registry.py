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
from pathlib import Path
from typing import TypeVar

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
from .registry_rows import CLAIM_GUARD, KEY, LIVE, RELEASED, Transaction, lease_of_row
from .registry_rows import DuplicateLease as DuplicateLease
from .registry_rows import Lease as Lease
from .registry_rows import LeaseKey as LeaseKey
from .registry_rows import now_ms as now_ms
from .registry_schema import COLUMNS as _COLUMNS
from .registry_schema import PAGE_SIZE as PAGE_SIZE
from .registry_schema import SCHEMA_VERSION as SCHEMA_VERSION
from .registry_schema import create, prepare

log = logging.getLogger(__name__)

MEMORY = ":memory:"
LOCK_WAIT = 10.0  # seconds to wait for another process's write before giving up
BACKOFF_FIRST, BACKOFF_MAX = 50e-6, 2e-3  # seconds: a claim holds the lock for tens of us
KEPT_RELEASED = 256  # released rows one registry keeps for a quick claim again (schema)
STALE_RELEASED_MS = 600_000  # released rows older than this go when any registry closes

T = TypeVar("T")


# The lowest port from `start` to `high` with no lease and not skipped: `start` or a port
# just above a lease or a skipped one. Parameters: start, low, high, skipped (JSON), twice.
_FIRST_UNLEASED = (
    "SELECT c.p AS p FROM ("
    " SELECT ? AS p"
    " UNION SELECT port + 1 FROM leases WHERE port BETWEEN ? AND ?"
    " UNION SELECT value + 1 FROM json_each(?)"
    ") c WHERE c.p BETWEEN ? AND ?"
    " AND NOT EXISTS (SELECT 1 FROM leases n WHERE n.port = c.p)"
    " AND c.p NOT IN (SELECT value FROM json_each(?))"
    " ORDER BY c.p LIMIT 1"
)


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
        self._released: set[LeaseKey] = set()  # whose rows we kept at release

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
        create(conn)
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
        return [lease_of_row(r) for r in rows]

    def lease_on(self, port: int) -> Lease | None:
        with self._lock:
            row = self._execute(f"SELECT {_COLUMNS} FROM leases WHERE port = ?", (port,)).fetchone()
        return lease_of_row(row) if row else None

    def find(self, key: LeaseKey) -> Lease | None:
        with self._lock:
            row = self._execute(
                f"SELECT {_COLUMNS} FROM leases WHERE {KEY}", key.params()
            ).fetchone()
        return lease_of_row(row) if row else None

    def renew(self, key: LeaseKey) -> Lease | None:
        """The key's live lease, marked renewed; one statement, so no transaction needed."""
        return self._write_one(
            f"UPDATE lease_rows SET renewed_at = ? WHERE {KEY} AND {LIVE} RETURNING {_COLUMNS}",
            (now_ms(), *key.params()),
        )

    def claim(self, key: LeaseKey, port: int) -> Lease | None:
        """Lease `port` if it has no lease, in one statement; None if it has one,
        DuplicateLease if it has none but the key has a lease."""
        if key in self._released:  # most likely our own released row of the port: revive it
            self._released.discard(key)
            if lease := self._revive(key, port):
                return lease
        lease = self._insert_one(
            key,
            f"INSERT OR REPLACE INTO lease_rows ({_COLUMNS}) SELECT ?, ?, ?, ?, ?, '[]', ?, ? "
            f"WHERE NOT EXISTS (SELECT 1 FROM leases WHERE port = ?) AND {CLAIM_GUARD}",
            lambda now: (port, *key.fields(), now, now, port, *key.params()),
        )
        if lease is None and self.lease_on(port) is None and self.find(key) is not None:
            raise DuplicateLease(f"{key.service} of app {key.app_id} already has a lease")
        return lease

    def _revive(self, key: LeaseKey, port: int) -> Lease | None:
        now = now_ms()
        with self._lock:
            revived = self._execute(
                "UPDATE lease_rows SET released_at = NULL, holders = '[]', created_at = ?, "
                f"renewed_at = ? WHERE port = ? AND {RELEASED} AND {KEY}",
                (now, now, port, *key.params()),
            ).rowcount
            self._own_writes += 1
        return Lease(port, key, (), now, now) if revived == 1 else None

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
        window = (start, high, json.dumps(skip))
        candidates = (start, *window, *window)
        lease = self._insert_one(
            key,
            f"INSERT OR REPLACE INTO lease_rows ({_COLUMNS}) "
            f"SELECT p, ?, ?, ?, ?, '[]', ?, ? FROM ({_FIRST_UNLEASED}) WHERE {CLAIM_GUARD}",
            lambda now: (*key.fields(), now, now, *candidates, *key.params()),
        )
        if lease is None and self.find(key) is not None:
            with self._lock:
                free = self._execute(_FIRST_UNLEASED, candidates).fetchone()
            if free is not None:
                raise DuplicateLease(f"{key.service} of app {key.app_id} already has a lease")
        return lease

    def release(self, key: LeaseKey) -> bool:
        """End the key's lease; False if it had none. Its row is kept, released, for the
        key's next claim (see registry_schema), up to KEPT_RELEASED keys at a time."""
        keep = len(self._released) < KEPT_RELEASED
        with self._lock:
            if keep:
                statement = f"UPDATE lease_rows SET released_at = ? WHERE {KEY} AND {LIVE}"
                args: tuple[object, ...] = (now_ms(), *key.params())
            else:
                statement, args = f"DELETE FROM lease_rows WHERE {KEY} AND {LIVE}", key.params()
            released = self._execute(statement, args).rowcount == 1
            self._own_writes += 1
        if released and keep:
            self._released.add(key)
        return released

    def _write_one(self, statement: str, args: tuple[object, ...]) -> Lease | None:
        with self._lock:
            try:  # with RETURNING, the statement commits on the fetch
                row = self._execute(statement, args).fetchone()
            except sqlite3.Error as exc:
                self._raise_fault(exc)
                raise
            self._own_writes += 1
        return lease_of_row(row) if row else None

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
        """Delete the rows we kept at release, and anyone's left for long (a killed
        sidecar's), then close."""
        with self._lock:
            try:
                self._conn.execute(
                    "DELETE FROM lease_rows WHERE released_at < ?",
                    (now_ms() - STALE_RELEASED_MS,),
                )
                self._conn.executemany(
                    f"DELETE FROM lease_rows WHERE {KEY} AND {RELEASED}",
                    [key.params() for key in self._released],
                )
            except sqlite3.Error as exc:  # a fault or a lock: they are invisible anyway
                log.debug("released rows left in %s: %s", self.path, exc)
            self._conn.close()
