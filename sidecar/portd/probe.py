"""The operating system's view of ports: may this port be bound, and who listens on it."""

from __future__ import annotations

import _socket
import errno
import functools
import logging
import re
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from ._known_ports import BROWSER_RESTRICTED_PORTS

log = logging.getLogger(__name__)

PortStatus = Literal["free", "in_use", "denied"]

_WINDOWS = sys.platform == "win32"
_NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)


@functools.cache
def has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def _bind_targets(host: str | None) -> list[tuple[socket.AddressFamily, str]]:
    if host is not None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return [(family, host)]
    targets = [(socket.AF_INET, "0.0.0.0")]
    if has_ipv6():
        targets.append((socket.AF_INET6, "::"))
    return targets


def _probe_socket(family: socket.AddressFamily) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    if _WINDOWS:
        # SO_REUSEADDR on Windows lets a bind steal a listening port; exclusive use does not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
    else:
        # Servers set SO_REUSEADDR, so a port with only TIME_WAIT leftovers is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return sock


def check_port(port: int, host: str | None = None) -> PortStatus:
    """Bind the port on every interface, IPv4 and IPv6 (or on `host` alone).

    EACCES is "denied", not "in use": a privileged port, a firewall rule or, on Windows, an
    excluded range. The caller says why it skipped the port instead of calling it busy.
    """
    if host is None and _DUAL_STACK_COVERS_IPV4 and has_ipv6():
        return _check_dual_stack(port)
    for family, address in _bind_targets(host):
        try:
            with _probe_socket(family) as sock:
                sock.bind((address, port))
        except PermissionError:
            return "denied"
        except OSError as exc:
            if exc.errno == errno.EACCES:
                return "denied"
            if family == socket.AF_INET6 and host is None and exc.errno in _NO_IPV6:
                continue
            if exc.errno == errno.EADDRINUSE or getattr(exc, "winerror", None) == 10048:
                return "in_use"
            raise
    return "free"


# On Linux one dual-stack socket bound to [::] conflicts with every IPv4 and IPv6 bind of the
# port, so it answers for both families at half the cost. Elsewhere (BSD, macOS, Windows) a
# wildcard bind may coexist with a more specific one: bind each family.
_DUAL_STACK_COVERS_IPV4 = sys.platform.startswith("linux")


def _v6only_by_default() -> bool:
    try:
        with open("/proc/sys/net/ipv6/bindv6only") as setting:
            return setting.read().strip() != "0"
    except OSError:
        return True  # unknown: turn it off on every socket


_V6ONLY_BY_DEFAULT = _DUAL_STACK_COVERS_IPV4 and _v6only_by_default()


def _check_dual_stack(port: int) -> PortStatus:
    # The C socket type and no `with`: this runs on every claim, and the Python wrapper's
    # construction and close cost as much as the bind. IPV6_V6ONLY is turned off where
    # net.ipv6.bindv6only turns it on; elsewhere a socket starts dual-stack already.
    sock = _socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if _V6ONLY_BY_DEFAULT:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
    except OSError as exc:
        if exc.errno == errno.EACCES:
            return "denied"
        if exc.errno == errno.EADDRINUSE:
            return "in_use"
        raise
    finally:
        sock.close()
    return "free"


def os_assigned_port() -> int:
    """A port the OS picks as free right now (from its ephemeral range)."""
    family, address = _bind_targets(None)[-1]
    with _probe_socket(family) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
    return port


def is_browser_restricted(port: int) -> bool:
    return port in BROWSER_RESTRICTED_PORTS


# --- who listens -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listener:
    port: int
    address: str
    uid: int | None
    inode: int | None
    pid: int | None


def listening_sockets() -> list[Listener]:
    """Every listening TCP socket, from one read of the socket table.

    On Linux this is a netlink sock_diag dump, which names inodes but not pids (mapping them
    costs a walk of /proc, so `with_pids` does it only for the sockets that matter).
    Elsewhere psutil gives pids directly.
    """
    if sys.platform.startswith("linux"):
        from . import _netlink

        if _netlink.netlink_available():
            try:
                return [
                    Listener(s.port, s.address, s.uid, s.inode, None)
                    for s in _netlink.dump_tcp_listeners()
                ]
            except OSError as exc:
                log.warning("netlink socket dump failed (%s); using psutil", exc)
    import psutil

    return [
        Listener(c.laddr.port, c.laddr.ip, None, None, c.pid)
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr
    ]


def with_pids(listeners: Iterable[Listener]) -> list[Listener]:
    listeners = list(listeners)
    missing = {s.inode for s in listeners if s.pid is None and s.inode}
    if not missing:
        return listeners
    from . import _netlink

    pids = _netlink.pids_for_inodes(missing)
    return [
        replace(s, pid=pids.get(s.inode)) if s.pid is None and s.inode else s for s in listeners
    ]


def listening_pids(ports: set[int] | None = None) -> dict[int, list[int]]:
    """Listening pids per port, from one read of the socket table; every listening port when
    `ports` is None. A socket whose process we cannot see (another user's) counts as pid 0:
    nobody's rightful holder."""
    listeners = with_pids(s for s in listening_sockets() if ports is None or s.port in ports)
    found: dict[int, list[int]] = {}
    for s in listeners:
        pid = s.pid or 0
        if pid not in found.setdefault(s.port, []):
            found[s.port].append(pid)
    return found


def listeners_on(port: int) -> list[Listener]:
    return with_pids(s for s in listening_sockets() if s.port == port)


# --- OS port ranges ----------------------------------------------------------------------


def ephemeral_port_range() -> tuple[int, int] | None:
    """The range the OS hands out for outgoing connections and port 0."""
    try:
        if sys.platform.startswith("linux"):
            with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
                low, high = (int(x) for x in f.read().split())
                return low, high
        if sys.platform == "darwin":
            sysctl = ["sysctl", "-n", "net.inet.ip.portrange.first", "net.inet.ip.portrange.last"]
            first, last = _output_of(sysctl).split()[:2]
            return int(first), int(last)
        if _WINDOWS:
            out = _output_of(["netsh", "int", "ipv4", "show", "dynamicport", "tcp"])
            start, count = (int(n) for n in re.findall(r":\s*(\d+)", out)[:2])
            return start, start + count - 1
    except (OSError, ValueError):
        return None
    return None


def _output_of(command: list[str]) -> str:
    """A system tool's output; OSError if it cannot tell. subprocess is imported here, as
    Linux never needs it, and every import delays a sidecar's first answer."""
    import subprocess

    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=5, check=True).stdout
    except subprocess.SubprocessError as exc:
        raise OSError(f"{command[0]} failed: {exc}") from exc


def parse_excluded_ranges(netsh_output: str) -> list[tuple[int, int]]:
    """Ranges from `netsh int ipv4 show excludedportrange protocol=tcp` (Hyper-V, WSL, Docker
    reserve these; binding there fails with EACCES)."""
    return [
        (int(low), int(high))
        for low, high in re.findall(r"^\s*(\d+)\s+(\d+)\b", netsh_output, re.MULTILINE)
    ]


@functools.cache
def excluded_port_ranges() -> tuple[tuple[int, int], ...]:
    if not _WINDOWS:
        return ()
    try:
        out = _output_of(["netsh", "int", "ipv4", "show", "excludedportrange", "protocol=tcp"])
    except OSError:
        return ()
    return tuple(parse_excluded_ranges(out))


def excluded_range_of(port: int) -> tuple[int, int] | None:
    return next(((lo, hi) for lo, hi in excluded_port_ranges() if lo <= port <= hi), None)


@functools.cache
def never_picked_in(low: int, high: int) -> tuple[int, ...]:
    """The ports of a range that a range walk must skip: browser-restricted, or in a
    Windows excluded range (a wide range is too long to list: browsers' list only)."""
    if high - low >= 4096:
        return tuple(p for p in BROWSER_RESTRICTED_PORTS if low <= p <= high)
    return tuple(
        p for p in range(low, high + 1) if is_browser_restricted(p) or excluded_range_of(p)
    )


def excluded_note(port: int) -> str:
    """Why a port was denied, when Windows reserved it."""
    excluded = excluded_range_of(port)
    return f" (in the Windows excluded range {excluded[0]}-{excluded[1]})" if excluded else ""
