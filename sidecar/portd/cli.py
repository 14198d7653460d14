"""`portd`: the sidecar (`portd serve`) and the commands people type.

Only argparse is imported up front; each command imports what it needs, so that `serve`
reaches `ready` without loading table or plan code.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from . import __version__


def _log_level() -> int:
    return getattr(logging, os.environ.get("PORTD_LOG", "info").upper(), logging.INFO)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"portd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the sidecar: JSON-RPC 2.0 on stdin/stdout")
    serve.add_argument(
        "--registry",
        help="registry file (default: $PORTD_REGISTRY, else the "
        "user's state folder); ':memory:' for a private one",
    )
    serve.add_argument("--parent-pid", type=int, help="the app's pid (default: the spawner)")
    serve.add_argument("--framing", choices=["auto", "ndjson", "lsp"], default="ndjson")
    serve.add_argument("--app-id", default="default", help="this app's name in the registry")

    commands.add_parser("schema", help="print the protocol's JSON Schema")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=_log_level(),
        format="portd[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "serve":
        return _serve(args)
    if args.command == "schema":
        import json

        from .protocol.schema import protocol_schema

        sys.stdout.write(json.dumps(protocol_schema(), indent=2, sort_keys=False) + "\n")
        return 0
    build_parser().print_help(sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from .config import resolve_registry
    from .rpc.server import ServeOptions, serve

    if args.parent_pid is not None and args.parent_pid < 1:
        sys.stderr.write("portd: --parent-pid must be a positive pid\n")
        return 2
    options = ServeOptions(
        registry=resolve_registry(args.registry),
        parent_pid=args.parent_pid,
        framing=args.framing,
        app_id=args.app_id,
        version=__version__,
    )
    return serve(options)
