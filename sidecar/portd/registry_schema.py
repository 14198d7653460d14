"""The registry's schema, and preparing a connection to a file for it (see `registry_file`
for the checks made before, and what a refusal means)."""

from __future__ import annotations

import sqlite3

from .registry_file import Unfit, corrupt, foreign

SCHEMA_VERSION = 4
PAGE_SIZE = 1024

# Every reader sees `leases`: the live leases. Underneath, `lease_rows` also keeps the row
# of a lease its sidecar released (`released_at` set) until that sidecar claims the port
# again or exits: releasing and re-claiming then each rewrite one page of the table, where
# deleting and inserting a row rewrite two (the table's and its key index's). A released
# row is no lease: claims replace it, and nothing but the registry reads `lease_rows`.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS lease_rows (
    port          INTEGER PRIMARY KEY CHECK (port BETWEEN 1 AND 65535),
    service       TEXT    NOT NULL,
    app_id        TEXT    NOT NULL,
    owner_pid     INTEGER NOT NULL,
    owner_started REAL    NOT NULL,
    holders       TEXT    NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    renewed_at    INTEGER NOT NULL,
    released_at   INTEGER,
    UNIQUE (owner_pid, owner_started, app_id, service)
)""",
    """CREATE VIEW IF NOT EXISTS leases AS
SELECT port, service, app_id, owner_pid, owner_started, holders, created_at, renewed_at
FROM lease_rows WHERE released_at IS NULL""",
    """CREATE TABLE IF NOT EXISTS last_ports (
    app_id  TEXT    NOT NULL,
    service TEXT    NOT NULL,
    port    INTEGER NOT NULL,
    PRIMARY KEY (app_id, service)
)""",
    # The sticky port follows every new lease inside SQLite: no extra statement per claim,
    # and no write at all when the service gets its sticky port back.
    """CREATE TRIGGER IF NOT EXISTS remember_last_port AFTER INSERT ON lease_rows
WHEN NOT EXISTS (
    SELECT 1 FROM last_ports
    WHERE app_id = NEW.app_id AND service = NEW.service AND port = NEW.port
) BEGIN
    INSERT OR REPLACE INTO last_ports (app_id, service, port)
    VALUES (NEW.app_id, NEW.service, NEW.port);
END""",
)
# Schemas 1 to 3 kept the leases in a table called `leases` (before 3, with a trigger
# without its WHEN clause); their rows become live rows of `lease_rows`.
UPGRADE_FROM_3 = (
    "DROP TRIGGER IF EXISTS remember_last_port",
    "ALTER TABLE leases RENAME TO lease_rows",
    "ALTER TABLE lease_rows ADD COLUMN released_at INTEGER",
)
COLUMNS = "port, service, app_id, owner_pid, owner_started, holders, created_at, renewed_at"


def create(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA:
        conn.execute(statement)


_OURS = {"lease_rows", "leases", "last_ports", "remember_last_port"}


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
        _upgrade(conn)
    conn.execute(f"SELECT {COLUMNS} FROM leases LIMIT 1").fetchall()


def _upgrade(conn: sqlite3.Connection) -> None:
    """Create or upgrade the schema under the write lock, reading the version again there:
    sidecars that race to do it find it done."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            if version >= 1:
                for statement in UPGRADE_FROM_3:
                    conn.execute(statement)
            create(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # not if BEGIN itself found the file locked
            conn.execute("ROLLBACK")
        raise
