"""Specification of portd._netlink against real sockets and real processes (no mocks)."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

try:
    from portd import _netlink
except ModuleNotFoundError:  # running from a checkout where portd is not installed yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sidecar"))
    from portd import _netlink

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="sock_diag netlink and /proc/<pid>/fd exist only on Linux"
)

LOOPBACKS = ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"))

# Listens on both loopbacks, reports "port:inode" per socket, then holds them until stdin closes.
CHILD_SOURCE = """
import os, socket, sys
socks = []
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen()
    socks.append(s)
print(*(f"{s.getsockname()[1]}:{os.fstat(s.fileno()).st_ino}" for s in socks), flush=True)
sys.stdin.read()
"""


class Child(NamedTuple):
    proc: subprocess.Popen[str]
    ports: tuple[int, int]  # IPv4, IPv6
    inodes: tuple[int, int]


def open_listener(family: int, host: str, *, listen: bool = True) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        if listen:
            sock.listen()
    except BaseException:
        sock.close()
        raise
    return sock


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def inode_of(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def listed_on(family: int, port: int) -> list[_netlink.ListeningSocket]:
    """What the dump lists on that family's port (IPv4 and IPv6 number ports separately)."""
    dump = _netlink.dump_tcp_listeners()
    return [entry for entry in dump if entry.family == family and entry.port == port]


def stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()  # the child's stdin.read() returns and it exits on its own
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    proc.stdout.close()


@pytest.fixture
def listeners() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    try:
        for i in range(50):
            socks.append(open_listener(*LOOPBACKS[i % 2]))
        yield socks
    finally:
        for sock in socks:
            sock.close()


@pytest.fixture
def child() -> Iterator[Child]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD_SOURCE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        (port4, inode4), (port6, inode6) = (
            map(int, field.split(":")) for field in proc.stdout.readline().split()
        )
        yield Child(proc, (port4, port6), (inode4, inode6))
    finally:
        stop(proc)


def test_netlink_is_available_on_linux() -> None:
    assert _netlink.netlink_available() is True
    assert _netlink.netlink_available() is True  # cached answer stays the same


def test_dump_lists_every_listening_socket_once(listeners: list[socket.socket]) -> None:
    dump = _netlink.dump_tcp_listeners()
    for sock in listeners:
        matches = [e for e in dump if e.port == port_of(sock) and e.family == sock.family]
        assert len(matches) == 1, f"{sock} listed {len(matches)} times"
        (entry,) = matches
        assert entry.address == sock.getsockname()[0]
        assert entry.uid == os.getuid()
        assert entry.inode != 0
        assert entry.inode == inode_of(sock)


def test_dump_entries_are_immutable_listening_sockets(listeners: list[socket.socket]) -> None:
    (entry,) = listed_on(listeners[0].family, port_of(listeners[0]))
    assert isinstance(entry, _netlink.ListeningSocket)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.port = 1  # type: ignore[misc]


def test_dump_reports_wildcard_addresses_textually() -> None:
    with (
        open_listener(socket.AF_INET, "0.0.0.0") as any4,
        open_listener(socket.AF_INET6, "::") as any6,
    ):
        assert [e.address for e in listed_on(socket.AF_INET, port_of(any4))] == ["0.0.0.0"]
        assert [e.address for e in listed_on(socket.AF_INET6, port_of(any6))] == ["::"]


def test_closed_socket_is_no_longer_listed() -> None:
    for family, host in LOOPBACKS:
        with open_listener(family, host) as sock:
            port = port_of(sock)
            assert [e.inode for e in listed_on(family, port)] == [inode_of(sock)]
        assert listed_on(family, port) == []


def test_bound_but_not_listening_socket_is_not_listed() -> None:
    for family, host in LOOPBACKS:
        with open_listener(family, host, listen=False) as sock:
            assert listed_on(family, port_of(sock)) == []


def test_established_connections_are_not_listed() -> None:
    with (
        open_listener(socket.AF_INET, "127.0.0.1") as server,
        socket.create_connection(server.getsockname()) as client,
    ):
        accepted, _ = server.accept()
        with accepted:
            dump = _netlink.dump_tcp_listeners()
            assert [e.inode for e in dump if e.port == port_of(server)] == [inode_of(server)]
            assert all(e.port != port_of(client) for e in dump)
            assert inode_of(accepted) not in {e.inode for e in dump}


def test_pids_for_inodes_maps_child_sockets_to_child_pid(child: Child) -> None:
    listed = {e.port: e.inode for e in _netlink.dump_tcp_listeners() if e.port in child.ports}
    assert listed == dict(zip(child.ports, child.inodes, strict=True))
    assert _netlink.pids_for_inodes(listed.values()) == {
        inode: child.proc.pid for inode in child.inodes
    }


def test_pids_for_inodes_leaves_unknown_inodes_out(child: Child) -> None:
    with open_listener(socket.AF_INET, "127.0.0.1") as gone:
        gone_inode = inode_of(gone)
    found = _netlink.pids_for_inodes([0, gone_inode, child.inodes[0]])
    assert found == {child.inodes[0]: child.proc.pid}


def test_pids_for_inodes_finds_sockets_of_the_calling_process() -> None:
    with open_listener(socket.AF_INET6, "::1") as sock:
        assert _netlink.pids_for_inodes({inode_of(sock)}) == {inode_of(sock): os.getpid()}


def test_pids_for_inodes_of_nothing_is_empty() -> None:
    assert _netlink.pids_for_inodes([]) == {}


def test_sockets_of_an_exited_process_vanish_from_dump_and_pid_map(child: Child) -> None:
    stop(child.proc)
    dump = _netlink.dump_tcp_listeners()
    assert all(e.port not in child.ports for e in dump)
    assert _netlink.pids_for_inodes(child.inodes) == {}


def test_dump_agrees_with_psutil_for_opened_ports(
    listeners: list[socket.socket], child: Child
) -> None:
    # By family too: IPv4 and IPv6 hand out port numbers independently, so one number can
    # be both an IPv4 listener's and an IPv6 listener's.
    opened = {(int(sock.family), port_of(sock)) for sock in listeners} | {
        (int(socket.AF_INET), child.ports[0]),
        (int(socket.AF_INET6), child.ports[1]),
    }
    ours = [e for e in _netlink.dump_tcp_listeners() if (e.family, e.port) in opened]
    pids = _netlink.pids_for_inodes([e.inode for e in ours])
    from_netlink = {(e.family, e.address, e.port, pids.get(e.inode)) for e in ours}
    from_psutil = {
        (int(c.family), c.laddr.ip, c.laddr.port, c.pid)
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and (int(c.family), c.laddr.port) in opened
    }
    assert from_netlink == from_psutil
    assert len(ours) == len(opened)
