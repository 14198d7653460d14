from __future__ import annotations

import sys


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["serve"]:
        from . import _serve_args

        values = _serve_args.parse(argv[1:])
        if values is not None:
            return _serve_args.run(**values)  # type: ignore[arg-type]
    from .cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
