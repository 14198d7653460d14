"""Processes as the registry knows them: a pid plus its start time, so that a reused pid
is never mistaken for the process that was recorded."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import psutil

# psutil derives start times from clock ticks since boot; two reads of one process agree
# exactly, but a float round trip through SQLite deserves a little slack.
_START_TOLERANCE = 0.01


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    pid: int
    started: float


@dataclass(frozen=True, slots=True)
class ProcessDescription:
    pid: int
    name: str
    user: str | None
    cmdline: list[str]
    started: float


def identify(pid: int) -> ProcessIdentity | None:
    """The process now running as `pid`, or None if there is none (or only a zombie)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return ProcessIdentity(pid, proc.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def is_alive(ident: ProcessIdentity) -> bool:
    now = identify(ident.pid)
    return now is not None and abs(now.started - ident.started) < _START_TOLERANCE


def describe(pid: int) -> ProcessDescription | None:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            try:
                user: str | None = proc.username()
            except (psutil.AccessDenied, KeyError):
                user = None
            try:
                cmdline = proc.cmdline()
            except psutil.AccessDenied:
                cmdline = []
            return ProcessDescription(pid, proc.name(), user, cmdline, proc.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_same_user(pid: int) -> bool:
    """True if `pid` runs entirely as this process's real user, so that we may signal it:
    its real, effective and saved uids are all ours. A process that took another user's
    effective uid, or a set-user-id program's, is not ours, even though the kernel would let
    us (or root) signal it. A process we cannot see is not ours either."""
    try:
        process = psutil.Process(pid)
        if not hasattr(process, "uids"):  # Windows: no uids, but an account name
            return bool(process.username() == psutil.Process().username())
        uids = process.uids()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    me = os.getuid()
    return uids.real == me and uids.effective == me and uids.saved == me


def user_of(pid: int) -> str:
    """Whom `pid` runs as, for a message: the user of the first of its effective, real and
    saved uids that is not ours (the name, else the number), `you` if all are ours,
    `an unknown user` if it cannot be seen."""
    try:
        uids = psutil.Process(pid).uids()
    except (psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
        return "an unknown user"
    me = os.getuid()
    uid = next((u for u in (uids.effective, uids.real, uids.saved) if u != me), None)
    if uid is None:
        return "you"
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name}"
    except (ImportError, KeyError):
        return f"uid {uid}"


def ancestors(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).parents()]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def descends_from(pid: int, ancestor: int) -> bool:
    return pid == ancestor or ancestor in ancestors(pid)


@dataclass(frozen=True, slots=True)
class Lineage:
    """Who the sidecar answers to: the app that owns its leases and, for a one-file build,
    the bootloader whose death means the app has let go of this sidecar."""

    owner: ProcessIdentity
    bootloader: ProcessIdentity | None


def lineage(parent_pid: int | None) -> Lineage:
    """The owner is `--parent-pid` when given, else the process that spawned the sidecar;
    a frozen one-file build's parent is its own bootloader, so then the app is one up."""
    bootloader = None
    spawner = os.getppid()
    if getattr(sys, "frozen", False) and _is_bootloader(spawner):
        bootloader = identify(spawner)
        spawner = psutil.Process(spawner).ppid()
    owner_pid = parent_pid if parent_pid is not None else spawner
    owner = identify(owner_pid)
    if owner is None:
        raise LookupError(f"the app process {owner_pid} is not running")
    return Lineage(owner, bootloader)


def _is_bootloader(pid: int) -> bool:
    try:
        return os.path.realpath(psutil.Process(pid).exe()) == os.path.realpath(sys.executable)
    except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
        return False


class Liveness:
    """Is a lease's owner alive? Asked for every lease a claim walks past, so answers are
    remembered: "dead" for good (a pid with that start time never comes back), "alive" for
    a second (an owner that just died costs at most a skipped port, never a double lease)."""

    TRUST_ALIVE = 1.0

    def __init__(self) -> None:
        self._dead: set[ProcessIdentity] = set()
        self._alive_until: dict[ProcessIdentity, float] = {}

    def __call__(self, ident: ProcessIdentity, fresh: bool = False) -> bool:
        if ident in self._dead:
            return False
        now = time.monotonic()
        if not fresh and self._alive_until.get(ident, 0.0) > now:
            return True
        if is_alive(ident):
            if len(self._alive_until) > 4096:
                self._alive_until.clear()
            self._alive_until[ident] = now + self.TRUST_ALIVE
            return True
        self._dead.add(ident)
        self._alive_until.pop(ident, None)
        return False
