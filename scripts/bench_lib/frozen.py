"""Start-up of the frozen sidecar against a frozen hello-world built the same way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .stdio import HELLO, hello_world, round_trips, spawn_to_ready

ROOT = Path(__file__).resolve().parents[2]


def built_binaries() -> tuple[Path, Path]:
    onedir = ROOT / "dist" / "portd" / "portd"
    onefile = next(iter(sorted((ROOT / "dist").glob("portd-*"))), None)
    if not onedir.exists() or onefile is None:
        subprocess.run([str(ROOT / "scripts" / "build")], check=True, stdout=sys.stderr)
        onefile = next(iter(sorted((ROOT / "dist").glob("portd-*"))))
    return onedir, onefile


def build_hello(folder: Path) -> tuple[Path, Path]:
    """The floor: a script that reads a line and prints one JSON line, frozen both ways."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "hello.py"
    script.write_text(HELLO)
    for mode, name in (("--onedir", "hello-onedir"), ("--onefile", "hello-onefile")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "PyInstaller",
                mode,
                "--noconfirm",
                "--log-level",
                "ERROR",
                "--strip",
                "--name",
                name,
                "--distpath",
                str(folder / "dist"),
                "--workpath",
                str(folder / "work"),
                "--specpath",
                str(folder),
                str(script),
            ],
            check=True,
        )
    return folder / "dist" / "hello-onedir" / "hello-onedir", folder / "dist" / "hello-onefile"


def bench_frozen(folder: Path, runs: int) -> dict[str, float]:
    onedir, onefile = built_binaries()
    hello_dir, hello_file = build_hello(folder / "hello")
    figures: dict[str, float] = {}
    for label, binary, hello_bin in (
        ("onedir", onedir, hello_dir),
        ("onefile", onefile, hello_file),
    ):
        hello = hello_world([str(hello_bin)], runs)
        times = spawn_to_ready(folder / f"{label}.sqlite3", [str(binary)], runs)
        prefix = "" if label == "onedir" else "onefile_"
        figures |= {
            f"{label}_hello_ms": hello,
            f"{label}_ready_ms": times["ready_ms"],
            f"{label}_first_answer_ms": times["first_answer_ms"],
            f"{prefix}ready_ratio": round(times["ready_ms"] / hello, 2),
            f"{prefix}first_answer_ratio": round(times["first_answer_ms"] / hello, 2),
        }
    figures |= {
        f"frozen_{k}": v
        for k, v in round_trips(folder / "rt-frozen.sqlite3", [str(onedir)], 1000).items()
    }
    figures["onedir_size_mb"] = round(
        sum(p.stat().st_size for p in onedir.parent.rglob("*") if p.is_file()) / 2**20, 1
    )
    figures["onefile_size_mb"] = round(onefile.stat().st_size / 2**20, 1)
    return figures
