"""`portd`: the sidecar (`portd serve`) and the commands people type.

Only argparse is imported up front; each command imports what it needs, so that `serve`
reaches `ready` without loading table or plan code.

Exit codes of the commands people type (`portd.commands`):
  0  done; the answer is yes (the port is held, the plan is clean, everything is healthy)
  1  done; the answer is no (`who`: nothing holds the port; `plan check`: errors, or warnings
     with --strict; `free`: fewer free ports than asked; `release`: no such lease;
     `allocate`/`plan next`: no free port; `health`: something is unhealthy)
  2  bad input: usage, a port or range that cannot be, a missing or malformed plan file,
     an owner pid that is not running, a file `plan init` will not overwrite
  3  portd could not do it: the registry is unusable, or an unexpected error
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__

# typing and shutil (which argparse imports to size help text) are start-up time that the
# sidecar spends before `ready`; it never prints help, so neither is loaded on that path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

MAX_PORT = 65535
MAX_SERVICE_NAME = 200
DEFAULT_PLAN = "ports.toml"
# The commands that `portd.commands` runs; `serve` and `schema` are handled here.
PEOPLE_COMMANDS = frozenset(
    {"who", "ls", "free", "allocate", "release", "health", "plan", "resolve"}
)


class HelpFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        try:
            width = int(os.environ.get("COLUMNS") or os.get_terminal_size(2).columns)
        except (OSError, ValueError):
            width = 100
        super().__init__(prog, width=max(40, width - 2))


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`portd who: error: ...`), exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# --- argument types: each rejects bad input with one clear line ---------------------------


def port_number(text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"{port} is not a port: ports are 1-{MAX_PORT}")
    return port


def port_range(text: str) -> tuple[int, int]:
    low_text, dash, high_text = text.partition("-")
    if not dash:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a range: write LOW-HIGH, e.g. 41000-41100"
        )
    low, high = port_number(low_text.strip()), port_number(high_text.strip())
    if low > high:
        raise argparse.ArgumentTypeError(
            f"{low}-{high} is written backwards; did you mean {high}-{low}?"
        )
    return low, high


def positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def pid_number(text: str) -> int:
    try:
        pid = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pid") from None
    if pid < 1:
        raise argparse.ArgumentTypeError(f"{pid} is not a pid: pids are 1 or more")
    return pid


def name(text: str) -> str:
    if not text.strip() or len(text) > MAX_SERVICE_NAME or not text.isprintable():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a name: 1-{MAX_SERVICE_NAME} printable characters"
        )
    return text


def service_ref(text: str) -> tuple[str, str]:
    """APP/SERVICE: the app's id up to the first slash, the service's name after it."""
    app_id, slash, service = text.partition("/")
    if not (slash and app_id and service):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not APP/SERVICE: the app's id, a slash, the service (e.g. chat/api)"
        )
    return name(app_id), name(service)


# --- the parser ----------------------------------------------------------------------------


HOST_ID_HELP = "this host's name in an etcd registry (default: $PORTD_HOST_ID, else the hostname)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="portd",
        description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 ok, 1 the answer is no (see each command), 2 bad input, "
        "3 portd could not do it.",
    )
    parser.add_argument("--version", action="version", version=f"portd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the sidecar: JSON-RPC 2.0 on stdin/stdout")
    serve.add_argument(
        "--registry",
        help="registry file or etcd://HOST:PORT[/prefix] (default: $PORTD_REGISTRY, else the "
        "user's state folder); ':memory:' for a private one",
    )
    serve.add_argument("--host-id", help=HOST_ID_HELP)
    serve.add_argument("--parent-pid", type=int, help="the app's pid (default: the spawner)")
    serve.add_argument("--framing", choices=["auto", "ndjson", "lsp"], default="ndjson")
    serve.add_argument("--app-id", default="default", help="this app's name in the registry")

    schema = commands.add_parser("schema", help="print the protocol's JSON Schema")
    schema.add_argument(
        "--method-table",
        action="store_true",
        help="print the dispatcher's method table instead (sidecar/portd/protocol/table.py)",
    )
    _add_people_commands(commands)
    return parser


def _common(json_output: bool = True) -> Parser:
    common = Parser(add_help=False)
    common.add_argument(
        "--registry",
        metavar="PATH|URL",
        help="registry file or etcd://HOST:PORT[/prefix] "
        "(default: $PORTD_REGISTRY, else the user's state folder)",
    )
    common.add_argument("--host-id", help=HOST_ID_HELP)
    if json_output:
        common.add_argument("--json", action="store_true", help="print JSON for scripts")
    return common


def _owner_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--owner-pid",
        type=pid_number,
        metavar="PID",
        help="the process the lease lives as long as (default: the calling shell)",
    )
    command.add_argument(
        "--app-id", type=name, default="cli", help="the app the lease is for (default: cli)"
    )


def _add_people_commands(commands: argparse._SubParsersAction[Parser]) -> None:
    common = _common()

    who = commands.add_parser(
        "who",
        parents=[common],
        help="who listens on PORT, and which lease names it",
        description="Who listens on PORT (pid, name, user, command line, since) and which "
        "lease names it; says when the listener is an orphan. Exit 1 when nothing holds it.",
    )
    who.add_argument("port", type=port_number, metavar="PORT")

    ls = commands.add_parser(
        "ls",
        parents=[common],
        help="leases in the registry, with owner and state, beside what listens",
        description="Leases in the registry with their owner and state, beside what listens.",
    )
    ls.add_argument(
        "--all", action="store_true", help="also list listening ports that no lease names"
    )

    free = commands.add_parser(
        "free",
        parents=[common],
        help="free ports",
        description="Free ports: they bind on IPv4 and IPv6 and no live lease holds them. "
        "Ports browsers refuse (6000, 6665-6669, ...) are skipped. Exit 1 if fewer than "
        "--count are free.",
    )
    free.add_argument(
        "--range",
        type=port_range,
        metavar="A-B",
        dest="port_range",
        help="where to look (default: the allocator's range, 1421-1500)",
    )
    free.add_argument("--count", type=positive_int, default=1, metavar="N", help="how many")

    allocate = commands.add_parser(
        "allocate",
        parents=[common],
        help="lease a port to SERVICE and print it",
        description="Lease a port to SERVICE and print it. The lease lives as long as its "
        "owner (default: the calling shell); asking again gives the same port.",
    )
    allocate.add_argument("service", type=name, metavar="SERVICE")
    allocate.add_argument(
        "--preferred", type=port_number, metavar="PORT", help="the port to try first"
    )
    allocate.add_argument(
        "--range",
        type=port_range,
        metavar="A-B",
        dest="port_range",
        help="where to look after the preferred port (default: 1421-1500)",
    )
    allocate.add_argument(
        "--plan", metavar="FILE", help="use the port this plan gives SERVICE first"
    )
    _owner_options(allocate)

    release = commands.add_parser(
        "release",
        parents=[common],
        help="end SERVICE's lease",
        description="End the lease SERVICE holds for this owner and app. Exit 1 if none.",
    )
    release.add_argument("service", type=name, metavar="SERVICE")
    _owner_options(release)

    health = commands.add_parser(
        "health",
        parents=[common],
        help="one system health check, as a table",
        description="One health check of every component. Exit 1 if any is unhealthy.",
    )
    health.add_argument(
        "--frontend-port", type=port_number, metavar="PORT", help="check a frontend server here"
    )
    health.add_argument(
        "--frontend-path", metavar="PATH", help="GET this path on the frontend (else TCP connect)"
    )
    health.add_argument(
        "--owner-pid", type=pid_number, metavar="PID", help="the app (default: the calling shell)"
    )
    health.add_argument(
        "--app-id", type=name, default="cli", help="whose leases to count (default: cli)"
    )

    resolve = commands.add_parser(
        "resolve",
        parents=[common],
        help="where another app's SERVICE is: host, address and port",
        description="Where APP's SERVICE is, from the registry: every lease of it that can "
        "answer, the one to use first (live on this host, then other hosts', then orphans; "
        "the newest first). Exit 1 if none can.",
    )
    resolve.add_argument("target", type=service_ref, metavar="APP/SERVICE")

    _add_plan_commands(commands)


def _add_plan_commands(commands: argparse._SubParsersAction[Parser]) -> None:
    plan_file = Parser(add_help=False)
    plan_file.add_argument(
        "--plan", metavar="FILE", default=DEFAULT_PLAN, help="the plan (default: ./ports.toml)"
    )
    common = _common()

    plan = commands.add_parser(
        "plan",
        help="port plans: check, next, status, export, init",
        description="Port plans: a project's port table as a checked TOML file (ports.toml).",
    )
    actions = plan.add_subparsers(dest="plan_command", metavar="ACTION")
    actions.required = True
    check = actions.add_parser(
        "check",
        parents=[plan_file, common],
        help="errors and warnings, as FILE:LINE: error|warning: message",
        description="Report errors (two services on one port, a port outside its category, "
        "categories that partly overlap) and warnings (the OS's ephemeral range, ports "
        "browsers refuse, well-known ports of other services). Exit 1 on errors, and on "
        "warnings too with --strict.",
    )
    check.add_argument("--strict", action="store_true", help="warnings fail the check too")
    check.add_argument(
        "--ephemeral-range",
        type=port_range,
        metavar="A-B",
        help="check against this ephemeral range instead of this OS's "
        "(e.g. 49152-65535 for Windows and macOS)",
    )

    nxt = actions.add_parser(
        "next",
        parents=[plan_file, common],
        help="the next unused, free port of CATEGORY",
        description="The lowest port of CATEGORY, at or above its lowest planned port, that "
        "the plan does not use and that is free now. Exit 1 if there is none.",
    )
    nxt.add_argument("category", metavar="CATEGORY")

    actions.add_parser(
        "status",
        parents=[plan_file, common],
        help="each planned port: free or taken, and by which process",
        description="Each planned port, free or taken, and by which process.",
    )

    export = actions.add_parser(
        "export",
        parents=[plan_file, _common(json_output=False)],
        help="write the plan as env, json, compose, nomad or k8s",
        description="Print the plan in a form other tools read: env lines, JSON, a Compose "
        "override file, a Nomad job (static ports, and the client's reserved_ports as a "
        "comment), or Kubernetes Services.",
    )
    export.add_argument(
        "--format", choices=["env", "json", "compose", "nomad", "k8s"], default="env"
    )
    export.add_argument(
        "--job",
        metavar="NAME",
        help="the Nomad job's name (default: the plan file's name, or for ports.toml its folder's)",
    )

    init = actions.add_parser(
        "init",
        parents=[plan_file],
        help="write a starter plan",
        description="Write a starter plan with the usual categories (refuses to overwrite).",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")


# --- running -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)  # configures logging itself, once `ready` is out
    from ._logging import configure

    # People read the commands' output, not the engine's info lines.
    configure("warning" if args.command in PEOPLE_COMMANDS else "info")
    if args.command == "schema":
        import json

        from .protocol.schema import method_table_source, protocol_schema

        if args.method_table:
            sys.stdout.write(method_table_source())
        else:
            sys.stdout.write(json.dumps(protocol_schema(), indent=2, sort_keys=False) + "\n")
        return 0
    if args.command in PEOPLE_COMMANDS:
        return _people(args)
    parser.print_help(sys.stderr)
    return 2


def _people(args: argparse.Namespace) -> int:
    """Run a command people type: never a traceback, always an exit code."""
    try:
        from .commands import run

        return run(args)
    except KeyboardInterrupt:
        sys.stderr.write("portd: interrupted\n")
        return 130
    except Exception as exc:  # the last line of defence; `run` handles the expected ones
        import logging

        logging.getLogger("portd").debug("unexpected error", exc_info=True)
        sys.stderr.write(f"portd {args.command}: internal error: {type(exc).__name__}: {exc}\n")
        return 3


def _serve(args: argparse.Namespace) -> int:
    from ._serve_args import run

    if args.parent_pid is not None and args.parent_pid < 1:
        sys.stderr.write("portd: --parent-pid must be a positive pid\n")
        return 2
    return run(args.registry, args.parent_pid, args.framing, args.app_id, args.host_id)
