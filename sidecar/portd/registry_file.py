"""The registry file: what may serve as one, how it is opened, and how its faults are named.

portd finds the registry by name, maybe in a folder that others can write to (`--registry
/tmp/...`), and SQLite follows whatever it finds there. So before SQLite opens the name:

- a symbolic link is followed only if it is ours (owned by our uid: we made it). One that
  another user planted is refused, so nothing is ever written through it;
- a directory, a FIFO, a device: refused;
- a file owned by another user: refused, even when we could write to it (root can): its
  owner could rewrite our leases behind our back, and we would share leases with a stranger;
- our own file with group or other bits (0644, 0666): made 0600 again, with a warning. The
  design creates it 0600; the file is ours, so tightening it costs nothing, while 0666 would
  let anyone rewrite the leases and 0644 lets anyone read which services run where;
- SQLite's side files (-wal, -shm, -journal), which it opens by name too, pass the same tests;
- a folder anyone can write to without the sticky bit is refused: anyone could swap the file.
  These checks hold because nobody else can rename or remove our entries in our folder or in
  a sticky one such as /tmp; after SQLite has opened the file it is checked again.

Faults, and what portd does about them:

- **at open**, a file that cannot serve (refused above, read-only, in a read-only folder, not
  a database, truncated, corrupt, another program's database, a full disk) raises
  `RegistryOpenError`: the sidecar falls back to a private in-memory registry, the CLI exits 3.
  The file is never repaired, rewritten or removed: a person may want to recover it. A lock is
  never such a reason: openers wait it out.
- **after open**, a read or write that fails (SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY,
  SQLITE_CORRUPT, ...) raises `RegistryUnavailable` (-32004) for that call, is logged once,
  and health names it. There is no fall-back then: the leases already handed out live in the
  file, and a memory registry that does not know them could hand their ports out again. A
  full disk is usually transient: calls answer -32004 until there is room, then work again.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("portd.registry")

FileId = tuple[int, int]  # (st_dev, st_ino): the very file we opened
SIDE_FILES = ("-wal", "-shm", "-journal")
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
# Failures of the file or the disk, not of our SQL (a constraint, a bug): by primary code.
_FAULTS = {
    sqlite3.SQLITE_FULL: "the disk is full",
    sqlite3.SQLITE_IOERR: "an I/O error",
    sqlite3.SQLITE_READONLY: "it is read-only",
    sqlite3.SQLITE_CORRUPT: "it is corrupt",
    sqlite3.SQLITE_NOTADB: "it is not an SQLite database",
    sqlite3.SQLITE_CANTOPEN: "it cannot be opened",
    sqlite3.SQLITE_PERM: "access is denied",
    sqlite3.SQLITE_PROTOCOL: "its locking failed",
    sqlite3.SQLITE_NOLFS: "it is too large for this system",
}
_KEEP = "; the file is left as it is"
_LINK = "portd follows no link it did not make (it would write wherever the link points)"
_EUID: int | None = os.geteuid() if hasattr(os, "geteuid") else None  # None: no owners here


class RegistryOpenError(Exception):
    """The file cannot serve as a registry: unwritable, not ours, or not a database. Never a
    lock."""


class Unfit(Exception):
    """Raised by `prepare`: why a file that SQLite reads is no registry of ours."""


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_busy(exc: sqlite3.Error) -> bool:
    code = _code(exc)
    if code is None:  # raised by us, not by SQLite
        text = str(exc).lower()
        return "locked" in text or "busy" in text
    return code in _BUSY


def is_fault(exc: sqlite3.Error) -> bool:
    return _code(exc) in _FAULTS


def sqlite_reason(exc: sqlite3.Error) -> str:
    """What went wrong, for a person: 'the disk is full (SQLITE_FULL: database or disk is
    full)'."""
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    what = _FAULTS.get(_code(exc) or 0, "SQLite failed")
    return f"{what} ({name}: {exc})"


def retry_locked(action: Callable[[], None], timeout: float) -> None:
    """Switching to WAL takes an exclusive lock that the busy handler does not wait for, so
    several sidecars opening a new file at once see "database is locked" at once: back off
    and try again. A lock is never a reason to give up the shared registry."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            log.debug("registry busy (%s); retrying in %.0f ms", exc, delay * 1000)
            import random  # only once a lock is contended: not worth loading on every start

            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)


def connect(
    path: Path, prepare: Callable[[sqlite3.Connection], None]
) -> tuple[sqlite3.Connection, FileId]:
    """A connection to the checked file, prepared by `prepare`; RegistryOpenError says why
    not, as `PATH: reason`."""
    try:
        real = _checked(path)
        conn = sqlite3.connect(real, timeout=0, isolation_level=None, check_same_thread=False)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise RegistryOpenError(f"{path}: {_os_reason(exc)}") from exc
    except sqlite3.Error as exc:
        raise RegistryOpenError(f"{path}: {_open_reason(exc, path)}") from exc
    try:
        prepare(conn)
        return conn, _recheck(path, real)
    except sqlite3.Error as exc:
        conn.close()
        raise RegistryOpenError(f"{path}: {_open_reason(exc, path)}") from exc
    except Unfit as exc:
        conn.close()
        raise RegistryOpenError(f"{path}: {exc}{_KEEP}") from None
    except BaseException:
        conn.close()
        raise


def file_problem(path: str, opened: FileId | None) -> str | None:
    """Whether the name still leads to the file we opened (for health; never per call)."""
    if opened is None:
        return None
    try:
        st = os.stat(path)  # through our own link, if the registry is one
    except FileNotFoundError:
        return "the file was removed after it was opened: what is leased now, no one else sees"
    except OSError as exc:
        return f"the file cannot be checked: {_os_reason(exc)}"
    if (st.st_dev, st.st_ino) != opened:
        return "the file was replaced after it was opened: what is leased now, no one else sees"
    return None


# --- the checks --------------------------------------------------------------------------


def _refuse(path: Path, reason: str) -> RegistryOpenError:
    return RegistryOpenError(f"{path}: {reason}")


def _checked(path: Path, follow: bool = True) -> Path:
    """The path SQLite may open: `path`, or what our own link names. Creates the folder
    (0700) and the file (0600) when they are missing."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise _refuse(path, f"{folder} is not a folder") from None
    except OSError as exc:
        raise _refuse(path, f"its folder cannot be created: {_os_reason(exc)}") from None
    _check_folder(path, folder)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if _create(path):
            return path
        st = os.lstat(path)  # another process created it meanwhile
    if stat.S_ISLNK(st.st_mode):
        if not _ours(st):
            raise _refuse(path, f"a symbolic link owned by {_user(st.st_uid)}, not by us: {_LINK}")
        if not follow:
            raise _refuse(path, "a symbolic link that does not lead to a file")
        return _checked(Path(os.path.realpath(path)), follow=False)
    _check_entry(path, st, "")
    if not os.access(path, os.W_OK):  # before SQLite, which would quietly open it read-only
        raise _refuse(path, _unwritable(path))
    for suffix in SIDE_FILES:
        _check_side(path, suffix)
    return path


def _check_folder(path: Path, folder: Path) -> None:
    """Nobody but us (and root) may rename or remove entries in the folder: its owner can,
    and so can anyone when it is world-writable without the sticky bit."""
    st = os.stat(folder)
    if _EUID is None:
        return
    if st.st_mode & 0o002 and not st.st_mode & stat.S_ISVTX:
        mode = stat.S_IMODE(st.st_mode)
        raise _refuse(
            path,
            f"its folder {folder} (mode {mode:04o}) lets anyone replace the file: "
            "use a folder only you can write to, or a sticky one like /tmp",
        )
    if st.st_uid not in (_EUID, 0):
        raise _refuse(
            path,
            f"its folder {folder} belongs to {_user(st.st_uid)}, who could replace the file",
        )


def _create(path: Path) -> bool:
    """Create the file 0600 from its first byte (SQLite gives -wal and -shm the same mode),
    never through a link. False if someone else created it first."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.close(os.open(path, flags, 0o600))
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            reason = f"its folder {path.parent} is read-only ({_os_reason(exc)})"
        else:
            reason = _os_reason(exc)
        raise _refuse(path, f"it cannot be created: {reason}") from None
    return True


def _check_entry(path: Path, st: os.stat_result, suffix: str) -> None:
    """A regular file of ours."""
    name = f"{path}{suffix}" if suffix else "it"
    if stat.S_ISDIR(st.st_mode):
        raise _refuse(path, f"{name} is a directory, not a registry file")
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, f"{name} is not a regular file (mode {stat.filemode(st.st_mode)})")
    if not _ours(st):
        raise _refuse(
            path,
            f"{name} belongs to {_user(st.st_uid)}, not to us (uid {_EUID}): another user "
            "could rewrite its leases behind our back",
        )


def _make_private(real: Path) -> None:
    """Our own files, open to other users (0644, 0666): 0600, as they were created. SQLite
    gives -wal and -shm the file's mode, so they are usually loose too: one line for all."""
    if _EUID is None:
        return
    loose: dict[str, int] = {}  # suffix -> mode
    for suffix in ("", *SIDE_FILES):
        try:
            st = os.lstat(f"{real}{suffix}")
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
            loose[suffix] = stat.S_IMODE(st.st_mode)
    if not loose:
        return
    modes = ", ".join(f"{suffix or 'file'} {mode:04o}" for suffix, mode in loose.items())
    try:
        for suffix in loose:
            os.chmod(f"{real}{suffix}", 0o600)
    except OSError as exc:
        log.warning("registry %s is open to other users (%s): %s", real, modes, _os_reason(exc))
    else:
        log.warning("registry %s was open to other users (%s); made it 0600", real, modes)


def _check_side(path: Path, suffix: str) -> None:
    try:
        st = os.lstat(f"{path}{suffix}")
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, f"{path}{suffix} is a symbolic link: {_LINK}")
    _check_entry(path, st, suffix)


def _recheck(path: Path, real: Path) -> FileId:
    """After SQLite opened the name: is it still the file we checked, and are the side files
    SQLite created or found ours? Then the file's identity, for health to watch."""
    try:
        st = os.lstat(real)
    except OSError as exc:
        raise _refuse(path, f"it changed while it was being opened: {_os_reason(exc)}") from None
    if not stat.S_ISREG(st.st_mode) or not _ours(st):
        raise _refuse(path, "it was replaced while it was being opened")
    for suffix in SIDE_FILES:
        _check_side(real, suffix)
    _make_private(real)  # only now: a file refused is left exactly as it was
    return st.st_dev, st.st_ino


def _ours(st: os.stat_result) -> bool:
    return _EUID is None or st.st_uid == _EUID


def _user(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


# --- reasons -------------------------------------------------------------------------------


def _os_reason(exc: OSError | ValueError) -> str:
    if not isinstance(exc, OSError):
        return str(exc)
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system"
    if exc.errno == errno.ELOOP:
        return f"it is a symbolic link: {_LINK}"
    return str(exc.strerror or exc)


def _unwritable(path: Path) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "it is on a read-only file system; its leases are left as they are"
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        pass
    return "it is read-only to us (we may not write to it); its leases are left as they are"


def _open_reason(exc: sqlite3.Error, path: Path) -> str:
    code = _code(exc)
    if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY) and not os.access(
        path.parent, os.W_OK
    ):
        return (
            f"its folder {path.parent} is read-only, and SQLite must create "
            f"{path.name}-wal and {path.name}-shm there ({sqlite_reason(exc)})"
        )
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return f"{sqlite_reason(exc)}{_KEEP}"
    return sqlite_reason(exc)


def corrupt(detail: str) -> Unfit:
    """A file that SQLite reads but that fails its quick check."""
    lines = [line for line in detail.splitlines() if line and not line.startswith("***")]
    return Unfit(f"it is corrupt (quick_check: {lines[0] if lines else detail})")


def foreign(tables: list[str]) -> Unfit:
    """A database of some other program."""
    return Unfit(
        f"it is an SQLite database but not a portd registry (it holds {', '.join(tables)})"
    )
