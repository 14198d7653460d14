"""The Rust target triple Tauri names sidecar binaries by: `rustc -vV` when present, else
computed from this platform."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys


def from_rustc() -> str | None:
    if shutil.which("rustc") is None:
        return None
    try:
        out = subprocess.run(
            ["rustc", "-vV"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return next(
        (line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("host:")),
        None,
    )


def from_platform() -> str:
    machine = platform.machine().lower()
    arch = {
        "amd64": "x86_64",
        "x86_64": "x86_64",
        "arm64": "aarch64",
        "aarch64": "aarch64",
        "i686": "i686",
        "i386": "i686",
    }.get(machine, machine)
    if sys.platform == "darwin":
        return f"{arch}-apple-darwin"
    if sys.platform == "win32":
        return f"{arch}-pc-windows-msvc"
    libc = "musl" if "musl" in (platform.libc_ver()[0] or "") else "gnu"
    return f"{arch}-unknown-linux-{libc}"


if __name__ == "__main__":
    print(from_rustc() or from_platform())
