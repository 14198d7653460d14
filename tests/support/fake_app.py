"""A stand-in app: answers `ping`, starts child listeners with `listen PORT tcp|http`."""

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from processes import LISTENER

children = []
for line in sys.stdin:
    words = line.split()
    if words == ["ping"]:
        print("pong", flush=True)
    elif words and words[0] == "listen":
        args = [sys.executable, "-c", LISTENER, words[1], "4"] + (
            ["http"] if words[2] == "http" else []
        )
        child = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        child.stdout.readline()
        children.append(child)
        print(child.pid, flush=True)
