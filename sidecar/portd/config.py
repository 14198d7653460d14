"""Where things live by default; the wire configuration itself is `protocol.models.PortConfig`."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # pathlib is not needed before the sidecar's `ready`
if TYPE_CHECKING:
    from pathlib import Path

REGISTRY_ENV = "PORTD_REGISTRY"
REGISTRY_FILE = "registry.sqlite3"


def default_registry_path() -> Path:
    from platformdirs import user_state_path

    return user_state_path("portd", appauthor=False) / REGISTRY_FILE


def resolve_registry(arg: str | None) -> str:
    """`--registry`, else `$PORTD_REGISTRY`, else the user's state folder."""
    chosen = arg or os.environ.get(REGISTRY_ENV)
    if chosen:
        return chosen if chosen == ":memory:" else os.path.abspath(os.path.expanduser(chosen))
    return str(default_registry_path())
