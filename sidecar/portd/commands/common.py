"""What the commands share: exit codes, errors, the registry, the owner, output helpers."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..manager import PortManager
    from ..process import ProcessIdentity
    from ..registry import Lease
    from ..registry_backend import RegistryBackend

OK = 0  # done; the answer is yes
NO = 1  # done; the answer is no (nothing holds the port, the plan has errors, ...)
BAD_INPUT = 2  # usage, a bad value, a missing or malformed file
FAILED = 3  # portd could not do it (an unusable registry, an unexpected error)


class CliError(Exception):
    """A message for the person, one line, and the exit code that goes with it."""

    def __init__(self, message: str, code: int = BAD_INPUT, *, located: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.located = located  # the message starts with FILE:LINE: print it as it is


# --- output ------------------------------------------------------------------------------


def out(text: str) -> None:
    sys.stdout.write(text)


def note(command: str, text: str) -> None:
    """A line for the person on stderr (stdout stays what scripts read)."""
    sys.stderr.write(f"portd {command}: {text}\n")


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def when(millis: int | float | None, *, short: bool = False) -> str:
    """A local time: `HH:MM:SS` for today when short, else `YYYY-MM-DD HH:MM:SS`."""
    if millis is None:
        return "-"
    seconds = millis / 1000
    moment = time.localtime(seconds)
    if short and time.strftime("%Y-%m-%d", moment) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M:%S", moment)
    return time.strftime("%Y-%m-%d %H:%M:%S", moment)


# --- the registry ------------------------------------------------------------------------


def registry_path(arg: str | None) -> str:
    from ..config import resolve_registry

    return resolve_registry(arg)


def open_registry(arg: str | None, *, create: bool, host_id: str | None = None) -> RegistryBackend:
    """The registry to use. A command that only reads does not create the file: no file
    means no leases (a link, even one that leads nowhere, is not "no file": it is checked
    and refused like any link that is not ours). An unusable file is an error (exit 3) that
    names the problem, never silently replaced; so is a fault met later (RegistryUnavailable,
    turned into exit 3 by `commands.run`)."""
    import os

    from ..registry import MEMORY, Registry, RegistryOpenError
    from ..registry_backend import is_etcd

    path = registry_path(arg)
    if is_etcd(path):
        return _open_etcd(path, host_id)
    if path == MEMORY or (not create and not os.path.lexists(path)):
        return Registry.in_memory()
    try:
        registry = Registry.open(Path(path))
    except RegistryOpenError as exc:
        raise CliError(f"the registry is unusable: {exc}", FAILED) from None
    registry.log_faults = False  # `commands.run` prints the one line
    return registry


def _open_etcd(path: str, host_id: str | None) -> RegistryBackend:
    from ..config import resolve_host_id
    from ..registry_backend import NO_ETCD_HINT, open_etcd

    try:
        registry = open_etcd(path, resolve_host_id(host_id))
    except ValueError as exc:
        raise CliError(str(exc), BAD_INPUT) from None
    except ImportError:
        raise CliError(f"this portd has no etcd client: {NO_ETCD_HINT}", FAILED) from None
    registry.log_faults = False  # `commands.run` prints the one line
    return registry


def open_registry_or_memory(arg: str | None, host_id: str | None = None) -> RegistryBackend:
    """As the sidecar does: an unusable file gives a private in-memory registry, marked
    degraded, so that `health` can report it instead of failing. (etcd out of reach is
    reported as it is: there is no stand-in for a shared registry.)"""
    from ..registry import MEMORY, Registry, RegistryOpenError
    from ..registry_backend import is_etcd

    path = registry_path(arg)
    if is_etcd(path):
        return _open_etcd(path, host_id)
    if path == MEMORY:
        return Registry.in_memory()
    try:
        return Registry.open(Path(path))
    except RegistryOpenError as exc:
        return Registry.in_memory(reason=str(exc))


# --- processes -----------------------------------------------------------------------------


def owner_identity(owner_pid: int | None) -> ProcessIdentity:
    """`--owner-pid`, else the calling shell (for a one-file build: the bootloader's parent)."""
    from ..process import lineage

    try:
        return lineage(owner_pid).owner
    except LookupError:
        if owner_pid is not None:
            raise CliError(f"--owner-pid {owner_pid}: no such process") from None
        raise CliError("the calling process is gone; pass --owner-pid") from None


def self_identity() -> ProcessIdentity:
    import os

    from ..process import ProcessIdentity, identify

    return identify(os.getpid()) or ProcessIdentity(os.getpid(), 0.0)


def manager_for(registry: RegistryBackend, owner: ProcessIdentity | None = None) -> PortManager:
    from ..manager import PortManager

    return PortManager(registry, owner or self_identity())


class Names:
    """Process names by pid, each looked up once."""

    def __init__(self) -> None:
        self._names: dict[int, str | None] = {}

    def __call__(self, pid: int | None) -> str | None:
        if not pid:
            return None
        if pid not in self._names:
            from ..process import describe

            proc = describe(pid)
            self._names[pid] = proc.name if proc else None
        return self._names[pid]

    def label(self, pid: int | None) -> str:
        """`1234 (python3)`, `1234 (gone)`, or `?` for a socket whose pid is hidden."""
        if not pid:
            return "?"
        name = self(pid)
        return f"{pid} ({name})" if name else f"{pid} (gone)"


def record_holders(
    manager: PortManager, leases: Iterable[Lease], pids: dict[int, list[int]]
) -> bool:
    """Remember the rightful listeners of live leases, as the sidecar's monitor does, so that
    when the owner (a shell) exits while its server keeps the port, `who` can call that
    server an orphan. True if anything was recorded."""
    from ..lease_state import is_rightful
    from ..process import identify, is_alive
    from ..protocol.errors import RegistryUnavailable

    recorded = False
    for lease in leases:
        known = {h.pid for h in lease.holders}
        listening = [p for p in pids.get(lease.port, []) if p and p not in known]
        if not listening or not manager.registry.is_local(lease) or not is_alive(lease.owner):
            continue  # (another host's listeners are not to be seen from here)
        for pid in listening:
            ident = identify(pid)
            if ident is not None and is_rightful(lease, pid):
                try:
                    manager.add_holder(lease, ident)
                except RegistryUnavailable:
                    return recorded  # a courtesy (a full disk, say): the listing goes on
                recorded = True
    return recorded
