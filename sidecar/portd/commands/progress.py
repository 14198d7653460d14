"""Progress of a long scan on stderr: `LABEL: checked N/M ports`.

On a terminal the line is redrawn in place (with \\r, at most ten times a second); otherwise
nothing is drawn while working, so logs and pipes get at most one final count.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

REDRAW_EVERY = 0.1  # seconds


class Progress:
    def __init__(
        self,
        label: str,
        total: int,
        *,
        final_count: bool = True,
        stream: TextIO | None = None,
        unit: str = "ports",
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.final_count = final_count
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _isatty(self.stream)
        self._drawn = False
        self._last = 0.0

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._last >= REDRAW_EVERY or self.done >= self.total:
            self._last = now
            self._write(f"\r{self.label}: checked {self.done}/{self.total} {self.unit}\x1b[K")
            self._drawn = True

    def finish(self) -> None:
        if self.final_count:
            line = f"{self.label}: checked {self.done} {self.unit}"
            self._write(("\r" + line + "\x1b[K\n") if self.tty else line + "\n")
        elif self._drawn:
            self._write("\r\x1b[K")  # leave the terminal as it was

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed: progress is a courtesy, not a duty
            pass

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.finish()
        elif self._drawn:
            self._write("\n")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False
