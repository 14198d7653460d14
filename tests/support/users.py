"""Another user on this machine, for real: a throwaway system account and TCP listeners that
run as it, the stranger whose processes portd must name but never signal.

Creating an account needs root and `useradd`/`userdel` (Linux); `skip_reason` says why the
tests cannot run here otherwise. Every listener is ended by its pid, then the account (and
its group) is deleted, even when the test fails.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import psutil

USER_PREFIX = "portd-foreign-"
DEADLINE = 15.0

# Signals a process can catch whose default action ends or stops it. The listener records
# each one it receives on stdout instead of acting on it, so a test can tell that nobody
# signalled it; SIGKILL and SIGSTOP cannot be caught, and show as a dead or stopped process.
RECORDED_SIGNALS = (
    "SIGTERM",
    "SIGINT",
    "SIGHUP",
    "SIGQUIT",
    "SIGUSR1",
    "SIGUSR2",
    "SIGALRM",
    "SIGPIPE",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGCONT",
)

# argv: port, then optionally real/effective/saved uids to take before listening (it starts
# as the account already; the uids let a test build a process whose uids are mixed).
FOREIGN_LISTENER = """
import os, signal, socket, sys
def record(signum, frame):
    os.write(1, b"signal %s\\n" % signal.Signals(signum).name.encode())
for name in sys.argv[2].split(","):
    signal.signal(getattr(signal, name), record)
if len(sys.argv) > 3:
    os.setresuid(*map(int, sys.argv[3].split(",")))
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("0.0.0.0", int(sys.argv[1])))
sock.listen(16)
os.write(1, b"port %d\\n" % sock.getsockname()[1])
answered = 0
while True:
    conn, _ = sock.accept()
    answered += 1
    conn.sendall(b"%d %d\\n" % (os.getpid(), answered))
    conn.close()
    os.write(1, b"answered %d\\n" % answered)
"""


def skip_reason() -> str | None:
    """Why another user cannot be created here, or None if it can."""
    if not sys.platform.startswith("linux"):
        return "needs Linux (useradd, /proc)"
    if os.geteuid() != 0:
        return "needs root to create a throwaway user (useradd)"
    missing = [tool for tool in ("useradd", "userdel") if shutil.which(tool) is None]
    if missing:
        return f"needs {' and '.join(missing)} on the PATH"
    return None


class ForeignListener:
    """A TCP listener that runs as the foreign user, started and ended by its pid. It answers
    every connection with its pid, and writes down every catchable signal it receives."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self._lines: list[str] = []
        self._seen = threading.Condition()
        self._done = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self._wait_line(lambda line: line.startswith("port "), "the listener's port")
        self.port = int(first.split()[1])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._seen:
                self._lines.append(raw.decode().strip())
                self._seen.notify_all()
        with self._seen:
            self._done = True
            self._seen.notify_all()

    def _wait_line(self, wanted: Any, what: str) -> str:
        deadline = time.monotonic() + DEADLINE
        with self._seen:
            while True:
                found = next((line for line in self._lines if wanted(line)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    raise AssertionError(f"no {what} from pid {self.pid}; it wrote {self._lines}")
                self._seen.wait(min(left, 0.2))

    @property
    def signals(self) -> list[str]:
        """The signals it has written down so far (complete up to the last `answer`)."""
        with self._seen:
            return [line.split()[1] for line in self._lines if line.startswith("signal ")]

    def answer(self) -> int:
        """Connect to its port and read the pid that answers. Once it has said so on stdout,
        every signal it received before that connection is in `signals` (its handlers run
        before it returns to `accept`)."""
        with closing(socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)) as c:
            c.settimeout(DEADLINE)
            pid, number = map(int, c.makefile("rb").readline().split())
        expected = f"answered {number}"
        self._wait_line(lambda line: line == expected, f"the note of answer {number}")
        return pid

    def assert_untouched(self) -> None:
        """Still running (not ended, not stopped), still listening on its port as itself,
        and never sent a signal that it could catch."""
        status = psutil.Process(self.pid).status()
        assert status not in (psutil.STATUS_ZOMBIE, psutil.STATUS_STOPPED), status
        assert self.proc.poll() is None
        assert self.answer() == self.pid, "someone else answers on the stranger's port"
        assert self.signals == [], f"the stranger was signalled: {self.signals}"

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(DEADLINE)
        self._reader.join(DEADLINE)  # it reads to the end first: the pipe closes with it
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class ForeignUser:
    """A system account created for one test: its name, uid, gid, and the Python it can run
    (the test's own interpreter may live where only root can read, e.g. under /root)."""

    def __init__(self, name: str) -> None:
        entry = pwd.getpwnam(name)
        self.name = name
        self.uid = entry.pw_uid
        self.gid = entry.pw_gid
        self.python = self._usable_python()  # None: the tests that need it skip
        self.listeners: list[ForeignListener] = []

    def _popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            args,
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            stdin=subprocess.DEVNULL,
            **kwargs,
        )

    def _usable_python(self) -> str | None:
        candidates = [sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3"]
        candidates += [shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or ""]
        for exe in dict.fromkeys(c for c in candidates if c):
            try:
                proc = self._popen([exe, "-I", "-c", "pass"], stdout=subprocess.DEVNULL)
            except OSError:
                continue
            if proc.wait(DEADLINE) == 0:
                return exe
        return None

    def listen(self, port: int = 0, *, uids: tuple[int, int, int] | None = None) -> ForeignListener:
        """Start a listener as this user on `port` (0: one the OS picks). With `uids`, it is
        started as root and takes those real, effective and saved uids before it listens."""
        assert self.python is not None, "no Python this user may run"
        args = [self.python, "-I", "-c", FOREIGN_LISTENER, str(port), ",".join(RECORDED_SIGNALS)]
        if uids is None:
            proc = self._popen(args, stdout=subprocess.PIPE)
        else:
            args.append(",".join(map(str, uids)))
            proc = subprocess.Popen(args, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        try:
            listener = ForeignListener(proc)
        except BaseException:
            proc.kill()
            proc.wait(DEADLINE)
            raise
        self.listeners.append(listener)
        return listener

    def stop_all(self) -> None:
        for listener in self.listeners:
            listener.stop()


def _run_retrying(args: list[str], ok: tuple[int, ...] = (0,)) -> int:
    """Run an account tool, again for a while if another one holds /etc/passwd's lock (runs
    of this suite in parallel create and delete their users at the same time)."""
    deadline = time.monotonic() + DEADLINE
    delay = 0.05
    while True:
        done = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode in ok:
            return done.returncode
        locked = "lock" in done.stderr.lower()
        if not locked or time.monotonic() > deadline:
            raise OSError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        time.sleep(delay)  # back off while another tool holds the lock
        delay = min(delay * 2, 0.5)


@contextmanager
def foreign_user() -> Iterator[ForeignUser]:
    """A fresh system account (no home, no login shell, a group of its own) for the span of
    the block; its listeners are ended by pid and the account is deleted on the way out."""
    name = USER_PREFIX + secrets.token_hex(4)
    _run_retrying(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "portd test stranger, deleted after the test",
            name,
        ]
    )
    user: ForeignUser | None = None
    try:
        user = ForeignUser(name)
        yield user
    finally:
        if user is not None:
            user.stop_all()
        _run_retrying(["userdel", name])
        # userdel drops the user's own group when USERGROUPS_ENAB is on; make sure of it.
        if _group_exists(name):
            _run_retrying(["groupdel", name])


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
