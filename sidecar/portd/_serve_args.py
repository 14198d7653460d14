"""`portd serve`'s arguments, read without argparse when they are plainly well-formed.

An app starts the sidecar on every launch and waits for `ready`; argparse (with gettext and
locale) and the whole CLI's parser are start-up time it does not need for four flags.
Anything unusual (`--help`, an unknown or abbreviated flag, a bad value) returns None and
goes to the real parser in cli.py, which owns help and error messages.
"""

from __future__ import annotations

FRAMINGS = ("auto", "ndjson", "lsp")
_FLAGS = {"--registry": "registry", "--parent-pid": "parent_pid", "--framing": "framing",
          "--app-id": "app_id", "--host-id": "host_id"}  # fmt: skip


def parse(argv: list[str]) -> dict[str, object] | None:
    values: dict[str, object] = {
        "registry": None, "parent_pid": None, "framing": "ndjson", "app_id": "default",
        "host_id": None,
    }  # fmt: skip
    i = 0
    while i < len(argv):
        flag, equals, inline = argv[i].partition("=")
        if flag not in _FLAGS:
            return None
        if equals:
            value, i = inline, i + 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value, i = argv[i + 1], i + 2
        else:
            return None
        name = _FLAGS[flag]
        if name == "parent_pid":
            if not value.isdigit() or int(value) < 1:
                return None
            values[name] = int(value)
        elif name == "framing" and value not in FRAMINGS:
            return None
        else:
            values[name] = value
    return values


def run(
    registry: str | None,
    parent_pid: int | None,
    framing: str,
    app_id: str,
    host_id: str | None = None,
) -> int:
    from . import __version__
    from .config import resolve_host_id, resolve_registry
    from .rpc.server import ServeOptions, serve

    where, host = resolve_registry(registry), resolve_host_id(host_id)
    if where.startswith("etcd") and (problem := _etcd_problem(where)):
        import sys

        sys.stderr.write(f"portd serve: --registry: {problem}\n")
        return 2  # before `ready`, which the app would otherwise wait past in vain
    return serve(ServeOptions(where, parent_pid, framing, app_id, __version__, host))


def _etcd_problem(where: str) -> str | None:
    """Why an etcd registry cannot be used at all, or None. Its client is imported here, on
    the way to `ready`: its first answer would wait for that import anyway."""
    from .registry_backend import NO_ETCD_HINT, etcd_address, is_etcd

    if not is_etcd(where):
        return None
    try:
        etcd_address(where)
        from . import registry_etcd  # noqa: F401
    except ValueError as exc:
        return str(exc)
    except ImportError as exc:
        return f"this portd has no etcd client ({exc}): {NO_ETCD_HINT}"
    return None
