"""probe: the OS's view of ports, with real sockets."""

from __future__ import annotations

import os
import socket
import sys
import warnings

import pytest

from portd import probe


def listening(family: socket.AddressFamily, address: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((address, 0))
    sock.listen()
    return sock


@pytest.fixture(params=["dual-stack", "per-family"])
def bind_check(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of checking every interface: one dual-stack socket (Linux) and one socket
    per family (everywhere else)."""
    if request.param == "dual-stack" and not sys.platform.startswith("linux"):
        pytest.skip("a dual-stack bind covers IPv4 binds on Linux only")
    monkeypatch.setattr(probe, "_DUAL_STACK_COVERS_IPV4", request.param == "dual-stack")
    return str(request.param)


@pytest.mark.usefixtures("bind_check")
def test_a_port_nobody_holds_is_free() -> None:
    with listening(socket.AF_INET, "127.0.0.1") as sock:
        port = sock.getsockname()[1]
    assert probe.check_port(port) == "free"


@pytest.mark.usefixtures("bind_check")
@pytest.mark.parametrize(
    ("family", "address"),
    [
        (socket.AF_INET, "0.0.0.0"),
        (socket.AF_INET, "127.0.0.1"),
        (socket.AF_INET6, "::"),
        (socket.AF_INET6, "::1"),
    ],
)
def test_a_listener_on_any_interface_or_family_makes_the_port_in_use(
    family: socket.AddressFamily, address: str
) -> None:
    if family == socket.AF_INET6 and not probe.has_ipv6():
        pytest.skip("no IPv6 on this machine")
    with listening(family, address) as sock:
        assert probe.check_port(sock.getsockname()[1]) == "in_use"


def test_host_limits_the_check_to_that_address() -> None:
    with listening(socket.AF_INET, "127.0.0.1") as sock:
        port = sock.getsockname()[1]
        assert probe.check_port(port, "127.0.0.1") == "in_use"
        if probe.has_ipv6():
            assert probe.check_port(port, "::1") == "free"


@pytest.mark.skipif(
    not hasattr(os, "fork") or os.geteuid() != 0, reason="needs root to drop to nobody"
)
def test_a_privileged_port_is_denied_not_in_use() -> None:
    """EACCES is a reason to skip a port, not a sign that someone holds it. A forked child
    drops to nobody (who cannot bind below 1024) and reports what the probe says."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # fork with threads: the child only binds
        pid = os.fork()
    if pid == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, probe.check_port(81).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert answer == "denied"


@pytest.mark.usefixtures("bind_check")
def test_a_port_bound_without_listening_is_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        assert probe.check_port(sock.getsockname()[1]) == "in_use"


def test_os_assigned_port_is_free_at_the_moment_it_is_given() -> None:
    port = probe.os_assigned_port()
    assert 1024 <= port <= 65535
    assert probe.check_port(port) == "free"


def test_listeners_on_names_the_pid_of_the_listening_process() -> None:
    with listening(socket.AF_INET, "127.0.0.1") as sock:
        found = probe.listeners_on(sock.getsockname()[1])
    assert [s.pid for s in found] == [os.getpid()]


def test_the_ephemeral_range_is_read_from_the_os() -> None:
    low, high = probe.ephemeral_port_range() or (0, 0)
    if sys.platform.startswith("linux"):
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            assert (low, high) == tuple(int(x) for x in f.read().split())


NETSH = """
Protocol tcp Port Exclusion Ranges

Start Port    End Port
----------    --------
      5357        5357
     50000       50059     *

* - Administered port exclusions.
"""


def test_windows_excluded_ranges_are_parsed_from_netsh() -> None:
    assert probe.parse_excluded_ranges(NETSH) == [(5357, 5357), (50000, 50059)]


def test_browser_restricted_ports_include_chromiums_list() -> None:
    assert all(probe.is_browser_restricted(p) for p in (6000, 6566, 6665, 6669, 6697, 10080))
    assert not probe.is_browser_restricted(1421)
