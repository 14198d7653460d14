"""What allocation reads of the configuration, and its defaults: plain data, no pydantic.

`PortConfig` (models.py) is the configuration's wire form and takes its allocation defaults
from here. Allocation reads these four fields on every call; keeping them out of the
pydantic model lets a sidecar answer its first calls before pydantic is even imported
(about 40 ms of a frozen start-up).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class AllocationConfig:
    app_id: str = "default"
    preferred_port: int = 1421  # the original system's Vite port
    port_range: tuple[int, int] = (1421, 1500)
    max_retries: int = 10  # OS-assigned ports to try once the range is full

    @classmethod
    def of(cls, config: Any) -> AllocationConfig:
        """The allocation fields of a `PortConfig`."""
        return cls(**{field.name: getattr(config, field.name) for field in fields(cls)})

    def as_fields(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


ALLOCATION_DEFAULTS = AllocationConfig()
