"""_serve_args: the sidecar's own flags read fast, anything unusual left to argparse."""

from __future__ import annotations

import pytest

from portd._serve_args import parse


def test_well_formed_flags_are_read_in_either_spelling() -> None:
    assert parse(["--registry", "/tmp/r.db", "--parent-pid=42", "--framing", "lsp",
                  "--host-id=alpha"]) == {
        "registry": "/tmp/r.db", "parent_pid": 42, "framing": "lsp", "app_id": "default",
        "host_id": "alpha",
    }  # fmt: skip


def test_no_flags_give_the_defaults() -> None:
    assert parse([]) == {"registry": None, "parent_pid": None, "framing": "ndjson",
                         "app_id": "default", "host_id": None}  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--reg", "x"],  # argparse's abbreviation: its call, not ours
        ["--parent-pid", "0"],
        ["--parent-pid", "-5"],
        ["--parent-pid", "abc"],
        ["--framing", "xml"],
        ["--registry"],
        ["--registry", "--app-id", "a"],
        ["stray"],
    ],
)
def test_anything_unusual_is_left_to_argparse(argv: list[str]) -> None:
    assert parse(argv) is None
