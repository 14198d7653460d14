"""The commands people type: `who`, `ls`, `free`, `allocate`, `release`, `health`, `plan`,
`resolve`.

`portd.cli` parses the arguments and imports this package only for these commands, so the
sidecar (`portd serve`) never loads it. `run` turns every expected failure into one line on
stderr and an exit code (see `portd.cli` for the codes); nothing here prints a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from ..protocol.errors import NoPortAvailable, PortdError, UnknownService
from .common import FAILED, NO, CliError

Command = Callable[[argparse.Namespace], int]

SIGPIPE_EXIT = 141  # as a shell reports a command that a closed pipe (`| head`) ended


def _command(name: str) -> Command:
    if name in ("who", "ls", "free"):
        from . import ports

        return {"who": ports.who, "ls": ports.ls, "free": ports.free}[name]
    if name in ("allocate", "release"):
        from . import leases

        return leases.allocate if name == "allocate" else leases.release
    if name == "health":
        from .health import health

        return health
    if name == "plan":
        from .plans import plan_command

        return plan_command
    if name == "resolve":
        from .resolve import resolve

        return resolve
    raise CliError(f"unknown command {name!r}")


def run(args: argparse.Namespace) -> int:
    label = f"portd {args.command}"
    if args.command == "plan":
        label += f" {args.plan_command}"
    try:
        code = _command(args.command)(args)
        sys.stdout.flush()
        return code
    except CliError as err:
        _flush_quietly()
        sys.stderr.write(err.message + "\n" if err.located else f"{label}: {err.message}\n")
        return err.code
    except BrokenPipeError:
        # The reader went away (`portd ls | head -1`): stop quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return SIGPIPE_EXIT
    except PortdError as err:
        _flush_quietly()
        sys.stderr.write(f"{label}: {err.message}\n")
        return NO if isinstance(err, NoPortAvailable | UnknownService) else FAILED


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except OSError:
        pass
