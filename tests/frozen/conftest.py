from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"


def _onefile() -> Path | None:
    found = sorted(p for p in DIST.glob("portd-*") if p.is_file())
    return found[0] if found else None


@pytest.fixture(scope="session")
def onefile() -> Path:
    binary = _onefile()
    if binary is None:
        pytest.fail("no one-file build in dist/: run ./scripts/build first")
    return binary


@pytest.fixture(scope="session")
def onedir() -> Path:
    binary = DIST / "portd" / ("portd.exe" if sys.platform == "win32" else "portd")
    if not binary.exists():
        pytest.fail("no one-dir build in dist/portd: run ./scripts/build first")
    return binary
