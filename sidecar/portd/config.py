"""Where things live by default; the wire configuration itself is `protocol.models.PortConfig`."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # pathlib is not needed before the sidecar's `ready`
if TYPE_CHECKING:
    from pathlib import Path

REGISTRY_ENV = "PORTD_REGISTRY"
HOST_ID_ENV = "PORTD_HOST_ID"
REGISTRY_FILE = "registry.sqlite3"


def default_registry_path() -> Path:
    from platformdirs import user_state_path

    return user_state_path("portd", appauthor=False) / REGISTRY_FILE


def resolve_registry(arg: str | None) -> str:
    """`--registry`, else `$PORTD_REGISTRY`, else the user's state folder: a file, or an
    etcd address (`etcd://HOST:PORT[/prefix]`) as given."""
    from .registry_backend import is_etcd

    chosen = arg or os.environ.get(REGISTRY_ENV)
    if chosen:
        if chosen == ":memory:" or is_etcd(chosen):
            return chosen
        return os.path.abspath(os.path.expanduser(chosen))
    return str(default_registry_path())


def resolve_host_id(arg: str | None) -> str | None:
    """`--host-id`, else `$PORTD_HOST_ID`, else None: the etcd registry then names this host
    by its hostname."""
    return arg or os.environ.get(HOST_ID_ENV) or None
