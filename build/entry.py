"""The frozen program's entry point: the same `portd` as the console script."""

import sys

from portd.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
