"""portd: the port manager that desktop apps run as a sidecar.

The public surface is small and loaded on first use, so that `portd serve` pays only for
what it needs before it sends `ready`.
"""

from __future__ import annotations

__version__ = "0.1.0"
PROTOCOL_VERSION = 1  # the wire contract's version, sent in `ready`

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from .manager import PortManager
    from .registry import Registry

__all__ = ["PROTOCOL_VERSION", "PortManager", "Registry", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "PortManager":
        from .manager import PortManager

        return PortManager
    if name == "Registry":
        from .registry import Registry

        return Registry
    raise AttributeError(name)
