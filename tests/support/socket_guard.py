"""A watch on the sockets of the sidecars that the tests start (DESIGN, Security: "the
sidecar opens no network listener of its own").

A sample lists the test process's descendants from /proc, keeps those whose command line is
a sidecar's (`... portd serve ...`, or `$PORTD_SIDECAR serve`) together with their own
descendants (a one-file build's child), and reads the socket inodes among their fds. A
socket is an offence when it is a TCP socket in LISTEN, a unix socket that accepts
connections, or a UDP socket bound to a port and connected to no peer (it takes datagrams
from anyone). Connected UDP sockets (a resolver's query) and client TCP sockets are not.

Cheap enough to run every 50 ms through a whole run on two cores: the stat file of a pid is
read once, when the pid first shows; and the socket tables are read only when a sidecar
holds a socket not yet known to be harmless for good. /proc/net/unix and udp{,6} cost
microseconds here and come first; /proc/net/tcp{,6} (4-5 ms each: the kernel walks its
whole hash table) only for the sockets left over. A connected unix socket, as asyncio's
self-pipe is, can never listen, so it is settled once and never looked up again; so is a
socket once reported: each offence is reported by the first sample that sees it.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

INTERVAL = 0.05  # seconds between samples of the background guard

_TCP_LISTEN = "0A"
_UNIX_ACCEPTCON = 0x10000  # __SO_ACCEPTCON in /proc/net/unix's Flags: a listening socket
_UNIX_CONNECTED = "03"  # SS_CONNECTED


def is_sidecar(cmdline: Sequence[str], frozen: str | None = None) -> bool:
    """A `portd serve` process: some argument naming portd (`-m portd`, `.venv/bin/portd`,
    `dist/portd-<triple>`, or the frozen binary `frozen`) followed by `serve`."""
    for here, after in itertools.pairwise(cmdline):
        if after == "serve" and (
            os.path.basename(here).startswith("portd") or (frozen and here == frozen)
        ):
            return True
    return False


@dataclass(frozen=True)
class Finding:
    pid: int
    kind: str  # "tcp listen", "udp bound" or "unix listen"
    address: str
    cmdline: tuple[str, ...] = field(compare=False)

    def __str__(self) -> str:
        command = " ".join(self.cmdline)
        if len(command) > 160:
            command = command[:159] + "…"
        return f"pid {self.pid} ({command}): {self.kind} on {self.address}"


@dataclass
class Sample:
    sidecars: set[int]  # sidecar processes (and their descendants) seen in this sample
    findings: list[Finding]  # offending sockets this sampler had not reported before


# --- /proc ---------------------------------------------------------------------------------


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # the process is gone, or was never there
        return None


def _ppid(pid: int) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; cut at the last ")".
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


def _cmdline(pid: int) -> tuple[str, ...]:
    raw = _read(f"/proc/{pid}/cmdline") or b""
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _table(name: str) -> list[list[str]]:
    raw = _read(f"/proc/net/{name}")
    if raw is None:
        return []  # no such table here (no IPv6, say)
    lines = raw.decode(errors="replace").splitlines()[1:]
    return [line.split(maxsplit=7) if name == "unix" else line.split() for line in lines]


def _address(text: str) -> str:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{int(port, 16)}"
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{int(port, 16)}"


class _Tree:
    """The descendants of `root`, from /proc; a pid's parent is read once, when it shows."""

    def __init__(self, root: int) -> None:
        self.root = root
        self._parent: dict[int, int] = {}

    def children(self) -> dict[int, list[int]]:
        pids = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        for gone in self._parent.keys() - pids:
            del self._parent[gone]
        for pid in pids - self._parent.keys():
            ppid = _ppid(pid)
            if ppid is not None:
                self._parent[pid] = ppid
        children: dict[int, list[int]] = {}
        for pid, ppid in self._parent.items():
            children.setdefault(ppid, []).append(pid)
        return children


def _below(tops: Iterable[int], children: dict[int, list[int]]) -> set[int]:
    found: set[int] = set()
    stack = list(tops)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


class Sampler:
    """One look at the sockets of every sidecar below `root` (default: this process)."""

    def __init__(self, root: int | None = None, frozen: str | None = None) -> None:
        self._tree = _Tree(os.getpid() if root is None else root)
        self._frozen = frozen if frozen is not None else os.environ.get("PORTD_SIDECAR")
        # Socket inodes not to look up again: those that can never listen, and those
        # already reported as listening (a sample reports a socket the first time it sees it).
        self._settled: set[int] = set()
        self.table_reads = 0  # how often the socket tables were read (the costly part)

    def sample(self) -> Sample:
        children = self._tree.children()
        commands = {pid: _cmdline(pid) for pid in _below([self._tree.root], children)}
        sidecars = {pid for pid, cmd in commands.items() if is_sidecar(cmd, self._frozen)}
        sidecars |= _below(sidecars, children)
        held = {pid: _socket_inodes(pid) for pid in sidecars}
        offences = self._offences(set().union(*held.values()) - self._settled)
        self._settled |= offences.keys()  # reported once, below; not looked up again
        findings = [
            Finding(pid, kind, address, commands.get(pid) or _cmdline(pid))
            for pid, inodes in sorted(held.items())
            for inode in sorted(inodes)
            if inode in offences
            for kind, address in [offences[inode]]
        ]
        return Sample(sidecars, findings)

    def _offences(self, inodes: set[int]) -> dict[int, tuple[str, str]]:
        """Which of `inodes` listen, and on what; settles those that never can."""
        if not inodes:
            return {}
        self.table_reads += 1
        found: dict[int, tuple[str, str]] = {}
        known: set[int] = set()
        for row in _table("unix"):
            inode = int(row[6])
            if inode in inodes:
                known.add(inode)
                if int(row[3], 16) & _UNIX_ACCEPTCON:
                    found[inode] = ("unix listen", row[7] if len(row) > 7 else "(unnamed)")
                elif row[5] == _UNIX_CONNECTED:
                    self._settled.add(inode)
        for name in ("udp", "udp6"):
            for row in _table(name):
                inode = int(row[9])
                if inode in inodes:
                    known.add(inode)
                    local, remote = row[1], row[2]
                    bound = not local.endswith(":0000")
                    if bound and set(remote.replace(":", "")) == {"0"}:
                        found[inode] = ("udp bound", _address(local))
        if inodes - known:  # TCP, or sockets already closed, or of other kinds (netlink)
            for name in ("tcp", "tcp6"):
                for row in _table(name):
                    if row[3] == _TCP_LISTEN and int(row[9]) in inodes:
                        found[int(row[9])] = ("tcp listen", _address(row[1]))
        return found


# --- the background guard ------------------------------------------------------------------


class Guard:
    """Samples in a thread of its own every `interval` seconds until stopped, and keeps what
    it saw: how many samples, which sidecar pids, and every offending socket."""

    def __init__(self, sampler: Sampler | None = None, interval: float = INTERVAL) -> None:
        self.sampler = sampler or Sampler()
        self.interval = interval
        self.samples = 0
        self.sidecars: set[int] = set()
        self.findings: dict[Finding, None] = {}  # insertion-ordered set
        self.exempted: dict[Finding, None] = {}
        self.errors: list[str] = []
        self.cpu = 0.0  # seconds of CPU the sampling took
        self.started = time.monotonic()
        self.ended: float | None = None
        self.sidecar_tests = 0  # tests that spawned sidecars (counted by the conftest)
        self.tests_seen = 0  # ... during which a sidecar pid was seen
        self._exempt: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sidecar-socket-guard", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.ended = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample_now()
            except Exception as exc:  # a guard that cannot look is blind: say so at the end
                if len(self.errors) < 5:
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def sample_now(self) -> Sample:
        with self._lock:
            cpu = time.thread_time()
            sample = self.sampler.sample()
            self.samples += 1
            self.sidecars |= sample.sidecars - self._exempt  # real ones only
            for finding in sample.findings:
                target = self.exempted if finding.pid in self._exempt else self.findings
                target[finding] = None
            self.cpu += time.thread_time() - cpu
            return sample

    @contextmanager
    def exempt(self, pid: int) -> Iterator[None]:
        """Findings of `pid` go to `exempted` while the block runs: for a test that makes a
        process look like a sidecar that listens, to prove the guard would see it."""
        with self._lock:
            self._exempt.add(pid)
            # A sample may have counted it between its start and this call.
            self.sidecars.discard(pid)
        try:
            yield
        finally:
            with self._lock:
                self._exempt.discard(pid)

    def problems(self) -> list[str]:
        """Why the run fails: sidecars that listened, a sampler that broke, or a guard that
        never saw one sidecar although tests spawned them (it would pass vacuously)."""
        found = [f"a sidecar listens: {finding}" for finding in self.findings]
        found += [f"the socket guard failed: {error}" for error in self.errors]
        if self.sidecar_tests and not self.sidecars:
            found.append(
                f"the socket guard saw no sidecar in {self.samples} samples, although "
                f"{self.sidecar_tests} tests spawned sidecars: it is blind"
            )
        return found

    def report(self) -> str:
        span = (self.ended or time.monotonic()) - self.started
        return (
            f"sidecar socket guard: {self.samples} samples over {span:.1f} s "
            f"(cpu {self.cpu:.2f} s, {self.sampler.table_reads} socket table reads); "
            f"{len(self.sidecars)} sidecar processes seen, during {self.tests_seen} of "
            f"{self.sidecar_tests} sidecar tests; {len(self.findings)} listening sockets"
        )
