"""The README's embedding snippets live in docs/embed/ and are checked here, so that they
cannot drift from what the build produces or from each other."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EMBED = ROOT / "docs" / "embed"
SNIPPETS = sorted(p for p in EMBED.rglob("*") if p.is_file())


def test_every_snippet_appears_verbatim_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for snippet in SNIPPETS:
        assert snippet.read_text().strip() in readme, f"{snippet.relative_to(ROOT)} drifted"


@pytest.mark.parametrize("path", [p for p in SNIPPETS if p.suffix == ".json"], ids=str)
def test_json_snippets_are_valid_json(path: Path) -> None:
    json.loads(path.read_text())


def test_external_bin_names_the_binary_the_build_produces() -> None:
    config = json.loads((EMBED / "tauri" / "tauri.conf.json").read_text())
    (external,) = config["bundle"]["externalBin"]
    spec = (ROOT / "build" / "portd.spec").read_text()
    assert external == "binaries/portd"
    assert 'name=f"portd-{TRIPLE}{EXE_SUFFIX}"' in spec  # Tauri appends -<triple> to the stem


def test_capability_scopes_spawn_to_the_sidecar_and_the_args_the_snippet_sends() -> None:
    capability = json.loads((EMBED / "tauri" / "capabilities" / "portd.json").read_text())
    spawn = next(
        p
        for p in capability["permissions"]
        if isinstance(p, dict) and p["identifier"] == "shell:allow-spawn"
    )
    (scope,) = spawn["allow"]
    assert scope["name"] == "binaries/portd" and scope["sidecar"] is True
    assert {"shell:allow-stdin-write", "shell:allow-kill"} <= set(capability["permissions"][1:])
    snippet = (EMBED / "tauri" / "portd-sidecar.ts").read_text()
    sent = re.search(r"Command\.sidecar\('([^']+)', \[([^\]]*)\]\)", snippet)
    assert sent is not None and sent.group(1) == scope["name"]
    args = [a.strip() for a in sent.group(2).split(",")]
    assert len(args) == len(scope["args"])
    for arg, allowed in zip(args, scope["args"], strict=True):
        assert arg == f"'{allowed}'" if isinstance(allowed, str) else "validator" in allowed
    assert re.fullmatch(scope["args"][2]["validator"], "com.example.myapp")


def test_electron_snippet_hides_the_window_and_passes_its_own_pid() -> None:
    snippet = (EMBED / "electron" / "portd-sidecar.ts").read_text()
    assert "windowsHide: true" in snippet
    assert "'--parent-pid', String(process.pid)" in snippet
    assert "`portd-${triple}`" in snippet
