"""The guard that watches the sidecars' sockets (tests/e2e/conftest.py) can see: a process
that looks like a sidecar and listens is found, by the sampler and by the background guard,
while a real sidecar is seen and found to listen on nothing. Without these, a guard that
never matches anything would pass every run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import Listener, reap
from tests.support.sidecar import Sidecar, wait_until
from tests.support.socket_guard import Guard, Sampler, is_sidecar

DEADLINE = 15.0
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# Listens on TCP (IPv4 and IPv6), binds UDP and listens on a unix socket, once told "go".
FAKE_SIDECAR = """
import socket, sys
sys.stdin.readline()
tcp = socket.socket(socket.AF_INET)
tcp.bind(("127.0.0.1", 0))
tcp.listen(1)
tcp6 = socket.socket(socket.AF_INET6)
tcp6.bind(("::1", 0))
tcp6.listen(1)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
unix = socket.socket(socket.AF_UNIX)
unix.bind(sys.argv[2])
unix.listen(1)
ports = (tcp.getsockname()[1], tcp6.getsockname()[1], udp.getsockname()[1])
print(*ports, flush=True)
sys.stdin.readline()
"""


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        (["/usr/bin/python3", "-m", "portd", "serve", "--registry", "r"], True),
        (["python", "-X", "importtime", "-m", "portd", "serve"], True),
        (["/repo/.venv/bin/portd", "serve"], True),
        (["/repo/dist/portd-x86_64-unknown-linux-gnu", "serve", "--app-id", "a"], True),
        (["/repo/dist/portd/portd", "serve"], True),
        (["python", "-m", "portd", "who", "1421"], False),
        (["python", "-m", "pytest", "tests/e2e", "-k", "serve"], False),
        (["python", "-c", "import socket", "serve"], False),
    ],
)
def test_a_sidecar_is_known_by_its_command_line(cmdline: list[str], expected: bool) -> None:
    assert is_sidecar(cmdline) is expected


def test_a_frozen_binary_of_any_name_is_a_sidecar_when_portd_sidecar_names_it() -> None:
    assert is_sidecar(["/opt/app/sidecar-bin", "serve"], frozen="/opt/app/sidecar-bin")
    assert not is_sidecar(["/opt/app/sidecar-bin", "serve"])


@pytest.fixture
def fake_sidecar(tmp_path: Path, sidecar_socket_guard: Guard) -> Iterator[tuple[int, list[int]]]:
    """A child of this test whose command line is a sidecar's (`python .../portd serve`) and
    that listens: (pid, [tcp port, tcp6 port, udp port]). The session's guard files what it
    finds of this pid apart (`exempted`), so that the run does not fail because of it."""
    script = tmp_path / "portd"
    script.write_text(FAKE_SIDECAR)
    unix_path = tmp_path / "fake.sock"
    proc = subprocess.Popen(
        [sys.executable, str(script), "serve", str(unix_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    with sidecar_socket_guard.exempt(proc.pid):
        try:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            ports = [int(word) for word in proc.stdout.readline().split()]
            assert len(ports) == 3, "the fake sidecar could not listen"
            yield proc.pid, ports
        finally:
            reap(proc)  # inside the exemption: nothing of it is left to find afterwards


def test_the_sampler_finds_every_socket_that_a_sidecar_listens_on(
    fake_sidecar: tuple[int, list[int]], tmp_path: Path
) -> None:
    pid, (tcp, tcp6, udp) = fake_sidecar

    sample = Sampler().sample()

    assert pid in sample.sidecars
    found = {(f.kind, f.address) for f in sample.findings if f.pid == pid}
    assert found == {
        ("tcp listen", f"127.0.0.1:{tcp}"),
        ("tcp listen", f"[::1]:{tcp6}"),
        ("udp bound", f"127.0.0.1:{udp}"),
        ("unix listen", str(tmp_path / "fake.sock")),
    }


def test_the_background_guard_sees_a_sidecar_that_listens(
    fake_sidecar: tuple[int, list[int]], sidecar_socket_guard: Guard
) -> None:
    pid, (tcp, _, _) = fake_sidecar

    listening = ("tcp listen", f"127.0.0.1:{tcp}")

    wait_until(
        lambda: any((f.kind, f.address) == listening for f in sidecar_socket_guard.exempted),
        DEADLINE,
        what="the background guard to find the fake sidecar's listener",
    )

    assert not any(f.pid == pid for f in sidecar_socket_guard.findings), "exempt, not an offence"
    assert pid not in sidecar_socket_guard.sidecars, "a fake must not count as a sidecar seen"


def test_a_listener_that_is_not_a_sidecar_is_no_offence(
    start_listener: Callable[..., Listener],
) -> None:
    listener = start_listener(0)

    sample = Sampler().sample()

    assert listener.pid not in sample.sidecars
    assert not any(f.pid == listener.pid for f in sample.findings)


def test_a_real_sidecar_is_seen_and_listens_on_nothing(
    spawn_sidecar: Callable[..., Sidecar], sidecar_socket_guard: Guard
) -> None:
    sidecar = spawn_sidecar()
    sidecar.call("allocate_port", service_name="web")
    sidecar.call("check_port_conflicts")
    sidecar.call("perform_health_check")

    sample = Sampler().sample()
    wait_until(
        lambda: sidecar.pid in sidecar_socket_guard.sidecars,
        DEADLINE,
        what="the background guard to sample the sidecar",
    )

    assert sidecar.pid in sample.sidecars
    assert [f for f in sample.findings if f.pid in sample.sidecars] == []
