"""The registry's schema, and preparing a connection to a file for it (see `registry_file`
for the checks made before, and what a refusal means)."""

from __future__ import annotations

import sqlite3

from .registry_file import Unfit, corrupt, foreign

SCHEMA_VERSION = 3
PAGE_SIZE = 1024

SCHEMA = """
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
UPGRADE = "DROP TRIGGER IF EXISTS remember_last_port;"
COLUMNS = "port, service, app_id, owner_pid, owner_started, holders, created_at, renewed_at"


_OURS = {"leases", "last_ports", "remember_last_port"}


def prepare(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout = 0")  # Registry._execute waits, more nimbly
    # Before anything is written: a file that is not (or no longer) a sound registry is left
    # exactly as it is. SQLite reads a truncated file or one with a garbage page without a
    # word until it meets the damage, so look at every page (about 0.5 ms for 1000 leases).
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise Unfit(f"its schema {version} is newer than this portd")
    check = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    if check != "ok":
        raise corrupt(str(check))
    if version == 0:  # a new file, or one of some other program's
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
        if others := sorted(n for n in names if n not in _OURS and "autoindex" not in n):
            raise foreign(others)
    # A claim or a release writes a handful of pages to the WAL: small pages make that
    # about 1.6x faster (a lease is a short row). It takes effect on a new file only.
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"database is locked (journal mode {mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    if version < SCHEMA_VERSION:
        # Idempotent, so sidecars racing to create (or upgrade) the schema all succeed.
        conn.executescript(
            f"BEGIN IMMEDIATE;{UPGRADE}{SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
        )
    conn.execute(f"SELECT {COLUMNS} FROM leases LIMIT 1").fetchall()
