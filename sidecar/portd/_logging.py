"""Logs go to stderr, never stdout (stdout is the protocol's). PORTD_LOG sets the level."""

from __future__ import annotations

import logging
import os
import sys


def configure(default_level: str) -> None:
    level = os.environ.get("PORTD_LOG", default_level).upper()
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level, logging.INFO),
        format="portd[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
