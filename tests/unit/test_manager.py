"""manager: allocation policy against a real registry file and real sockets."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from portd.manager import PortManager
from portd.process import ProcessIdentity, identify
from portd.protocol.defaults import AllocationConfig
from portd.protocol.errors import InvalidParams, NoPortAvailable, UnknownService
from portd.protocol.models import PortConfig, PortConfigUpdate
from portd.registry import Registry

ME = identify(os.getpid())
GONE = ProcessIdentity(os.getpid(), 1.0)  # my pid with another start time: a reused pid


def free_block(size: int) -> int:
    """The first port of `size` consecutive ports that bind now, in a quiet high range."""
    start = 42000
    while start < 60000:
        socks = []
        try:
            for port in range(start, start + size):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("0.0.0.0", port))
            return start
        except OSError:
            start += size
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free block")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(tmp_path / "registry.sqlite3")
    yield reg
    reg.close()


def manager(
    registry: Registry,
    low: int,
    size: int = 5,
    owner: ProcessIdentity | None = ME,
    **config: object,
) -> PortManager:
    cfg = PortConfig(preferred_port=low, port_range=(low, low + size - 1), **config)  # type: ignore[arg-type]
    return PortManager(registry, owner or ME, cfg)  # type: ignore[arg-type]


def test_allocate_port_reuses_a_live_lease(registry: Registry) -> None:
    ports = manager(registry, free_block(5))
    assert ports.allocate_port("vite") == ports.allocate_port("vite")


def test_allocate_port_starts_at_the_preferred_port_then_walks_the_range(
    registry: Registry,
) -> None:
    low = free_block(5)
    ports = manager(registry, low)
    assert [ports.allocate_port(s) for s in ("a", "b", "c")] == [low, low + 1, low + 2]


def test_allocate_port_skips_a_port_someone_listens_on(registry: Registry) -> None:
    low = free_block(5)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", low))
        squatter.listen()
        assert manager(registry, low).allocate_port("vite") == low + 1


def test_a_preferred_port_asked_for_wins_over_the_config(registry: Registry) -> None:
    low = free_block(5)
    assert manager(registry, low).allocate_port("api", preferred=low + 3) == low + 3


def test_a_lease_whose_owner_pid_was_reused_is_reclaimed(registry: Registry) -> None:
    low = free_block(5)
    manager(registry, low, owner=GONE).allocate_port("vite")
    assert manager(registry, low).allocate_port("other") == low


def test_two_owners_of_one_app_get_different_ports(registry: Registry) -> None:
    low = free_block(5)
    other_owner = identify(os.getppid())
    assert other_owner is not None
    first = manager(registry, low).allocate_port("vite")
    second = manager(registry, low, owner=other_owner).allocate_port("vite")
    assert first != second


def test_a_full_range_spills_to_a_port_the_os_assigns(registry: Registry) -> None:
    low = free_block(2)
    ports = manager(registry, low, size=2)
    got = [ports.allocate_port(s) for s in ("a", "b", "c")]
    assert got[:2] == [low, low + 1] and got[2] not in (low, low + 1)


def test_a_range_held_by_strangers_is_never_leased(registry: Registry) -> None:
    low = free_block(3)
    squatters = [socket.socket() for _ in range(3)]
    try:
        for port, squatter in enumerate(squatters, start=low):
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
        got = manager(registry, low, size=3).allocate_port("vite")
    finally:
        for squatter in squatters:
            squatter.close()
    assert got not in range(low, low + 3)
    assert [lease.port for lease in registry.leases()] == [got]


def test_a_port_given_back_is_the_next_one_taken_from_the_range(registry: Registry) -> None:
    low = free_block(5)
    ports = manager(registry, low)
    assert [ports.allocate_port(s) for s in ("a", "b", "c")] == [low, low + 1, low + 2]
    ports.release_port("a")
    assert ports.allocate_port("d") == low


def test_the_range_walk_wraps_around_to_a_port_another_app_freed(registry: Registry) -> None:
    low = free_block(4)
    other_app = identify(os.getppid())  # alive, and not us
    theirs, ours = manager(registry, low, size=4, owner=other_app), manager(registry, low, size=4)
    assert theirs.allocate_port("t0") == low
    assert [ours.allocate_port(s) for s in ("a", "b")] == [low + 1, low + 2]
    assert theirs.allocate_port("t1") == low + 3
    theirs.release_port("t0")
    assert ours.allocate_port("c") == low


def test_a_full_range_with_no_os_retries_raises_no_port_available(registry: Registry) -> None:
    low = free_block(1)
    ports = manager(registry, low, size=1, max_retries=0)
    ports.allocate_port("a")
    with pytest.raises(NoPortAvailable, match=f"range {low}-{low}"):
        ports.allocate_port("b")


def test_browser_restricted_ports_are_never_picked_from_a_range(registry: Registry) -> None:
    ports = PortManager(registry, ME, PortConfig(preferred_port=6665, port_range=(6665, 6670)))  # type: ignore[arg-type]
    assert ports.find_available_port(port_range=(6665, 6670)) == 6670


def test_release_then_allocate_again_gives_the_sticky_port(registry: Registry) -> None:
    low = free_block(5)
    ports = manager(registry, low)
    ports.allocate_port("a")
    b = ports.allocate_port("b")
    ports.release_port("b")
    ports.release_port("b")  # twice is fine
    ports.init_port_manager(PortConfigUpdate(preferred_port=low + 4))
    assert ports.allocate_port("b") == b


def test_a_sticky_port_a_stranger_listens_on_is_passed_over_and_left_unleased(
    registry: Registry,
) -> None:
    low = free_block(5)
    first = manager(registry, low)
    sticky = first.allocate_port("api")
    first.release_port("api")
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", sticky))
        stranger.listen()
        again = manager(registry, low, owner=GONE).allocate_port("api")
        assert again != sticky
        assert registry.lease_on(sticky) is None


def test_a_sticky_port_another_owner_leases_is_passed_over(registry: Registry) -> None:
    low = free_block(5)
    mine = manager(registry, low)
    sticky = mine.allocate_port("api")
    mine.release_port("api")
    other_app = identify(os.getppid())  # alive, and not us
    assert manager(registry, low, owner=other_app).allocate_port("web") == sticky
    assert mine.allocate_port("api") != sticky


def test_allocate_port_shares_the_lease_another_sidecar_of_the_app_holds(
    registry: Registry,
) -> None:
    low = free_block(5)
    one, two = manager(registry, low), manager(registry, low)
    assert one.allocate_port("api") == two.allocate_port("api")
    assert len(registry.leases()) == 1


def test_init_port_manager_merges_and_keeps_leases(registry: Registry) -> None:
    low = free_block(5)
    ports = manager(registry, low)
    port = ports.allocate_port("a")
    config = ports.init_port_manager(PortConfigUpdate(auto_resolve=False))
    assert config.auto_resolve is False and config.preferred_port == low
    assert ports.get_port_info("a").port == port


def test_init_port_manager_moves_allocation_to_the_new_range(registry: Registry) -> None:
    low = free_block(10)
    ports = manager(registry, low)
    ports.init_port_manager(PortConfigUpdate(preferred_port=low + 5, port_range=(low + 5, low + 9)))
    assert [ports.allocate_port(s) for s in ("a", "b")] == [low + 5, low + 6]


def test_a_bad_config_update_changes_nothing(registry: Registry) -> None:
    low = free_block(5)
    ports = manager(registry, low)
    with pytest.raises(InvalidParams) as raised:
        ports.init_port_manager(PortConfigUpdate(port_range=(low + 4, low)))
    assert raised.value.data[0]["loc"][0] == "config"
    assert ports.allocate_port("a") == low and ports.config.port_range == (low, low + 4)


def test_a_manager_started_from_the_allocation_fields_builds_its_config_on_first_use(
    registry: Registry,
) -> None:
    low = free_block(5)
    ports = PortManager(registry, ME, AllocationConfig(app_id="tauri", preferred_port=low + 2))
    assert ports.allocate_port("a") == low + 2
    assert ports.config == PortConfig(app_id="tauri", preferred_port=low + 2)
    assert ports.get_port_info("a").app_id == "tauri"


def test_unknown_service_is_an_error(registry: Registry) -> None:
    with pytest.raises(UnknownService):
        manager(registry, free_block(1)).get_port_info("nope")


def test_release_taken_ends_only_this_managers_leases(registry: Registry) -> None:
    low = free_block(5)
    mine, theirs = manager(registry, low), manager(registry, low, owner=identify(os.getppid()))
    mine.allocate_port("a")
    theirs.allocate_port("b")
    mine.release_taken()
    assert [lease.service for lease in registry.leases()] == ["b"]
