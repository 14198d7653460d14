"""The commands people type, run as `python -m portd ...` subprocesses against real listening
sockets, real owner processes and a temporary registry (never the user's).

Tables are compared with golden files in tests/golden after the volatile cells (pids, ports,
times, interpreter names) are replaced by placeholders and runs of spaces are collapsed; the
alignment itself is checked on the raw output. `PORTD_UPDATE_GOLDEN=1` rewrites the goldens.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import FakeApp, Listener

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
NO_SUCH_PID = 9_999_999  # above Linux's largest pid_max (4194304)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def portd(
    *args: object,
    registry: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Run `python -m portd ARGS` and check what every command promises: no traceback."""
    argv = [sys.executable, "-m", "portd", *map(str, args)]
    if registry is not None:
        argv += ["--registry", str(registry)]
    environ = {k: v for k, v in os.environ.items() if k not in ("PORTD_REGISTRY", "PORTD_LOG")}
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env={**environ, **(env or {})},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return Result(proc.returncode, proc.stdout, proc.stderr)


def free_port() -> int:
    """A port the OS says is free now (the test leases or binds it right away)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("0.0.0.0", 0))
        port: int = s.getsockname()[1]
    return port


def lease_for(app: FakeApp, service: str, registry: Path) -> int:
    """Lease `service` to the app through the CLI, at a port free now: the port."""
    result = portd(
        "allocate", service, "--owner-pid", app.pid, "--preferred", free_port(), registry=registry
    )
    assert result.code == 0, result.stderr
    return int(result.stdout)


# --- golden files ------------------------------------------------------------------------


def normalise(text: str, replace: dict[object, str]) -> str:
    """Volatile values to placeholders (longest first, whole numbers only), interpreter names
    to `python`, times to `<time>`, and runs of spaces to two (placeholders change widths)."""
    for value, token in sorted(replace.items(), key=lambda kv: -len(str(kv[0]))):
        text = re.sub(rf"(?<![\w.]){re.escape(str(value))}(?![\w])", token, text)
    text = re.sub(r"\bpython[0-9.]*\b", "python", text)
    text = re.sub(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b|\b\d\d:\d\d:\d\d\b", "<time>", text)
    text = re.sub(r"^command +.*$", "command  <command>", text, flags=re.M)
    return "\n".join(re.sub(r" {2,}", "  ", line.lstrip()) for line in text.split("\n"))


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PORTD_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"no golden file {path}; run with PORTD_UPDATE_GOLDEN=1 to write it"
    assert actual == path.read_text(encoding="utf-8"), f"output differs from {path}"


def transcript(result: Result) -> str:
    """A command's whole behaviour as one golden text: exit code, stdout, stderr."""
    return f"exit: {result.code}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"


def assert_aligned(table: str, right: tuple[int, ...] = ()) -> None:
    """Every row's cells start where their header starts, or for the columns in `right` end
    where it ends (column 0 is not checked: it starts every line)."""
    lines = table.rstrip("\n").split("\n")
    header = lines[0]
    columns = [(m.start(), m.end()) for m in re.finditer(r"\S+", header)][1:]
    assert columns, header
    for line in lines[1:]:
        for index, (start, end) in enumerate(columns, start=1):
            if index in right:
                ok = line[end - 1] != " " and (len(line) == end or line[end] == " ")
            else:
                ok = len(line) <= start or (line[start - 1] == " " and line[start] != " ")
            assert ok, f"column {index} misaligned:\n{header}\n{line}"


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def app_with_server(
    start_app: Callable[[], FakeApp], registry_path: Path
) -> tuple[FakeApp, int, int]:
    """An app that leased `web` through the CLI and whose own child listens on the port."""
    app = start_app()
    port = lease_for(app, "web", registry_path)
    server = app.start_server(port)
    return app, port, server


# --- who -----------------------------------------------------------------------------------


def test_who_names_the_listener_of_a_port(
    start_listener: Callable[..., Listener], registry_path: Path
) -> None:
    listener = start_listener(0)
    result = portd("who", listener.port, registry=registry_path)
    assert result.code == 0, result.stderr
    assert re.search(rf"^pid\s+{listener.pid}$", result.stdout, re.M)
    assert re.search(r"^lease\s+none: no lease names this port$", result.stdout, re.M)
    owner = portd("who", listener.port, "--json", registry=registry_path).json()
    assert owner["pid"] == listener.pid and owner["port"] == listener.port
    assert owner["lease"] is None and owner["orphan"] is False
    assert any(LISTENER_MARK in part for part in owner["cmdline"])


LISTENER_MARK = "sock.listen(16)"  # a line of tests.support.processes.LISTENER


def test_who_on_a_free_port_exits_1(registry_path: Path) -> None:
    port = free_port()
    result = portd("who", port, registry=registry_path)
    assert result.code == 1
    assert result.stdout == f"port {port} is free: nothing listens and no lease names it\n"
    assert portd("who", port, "--json", registry=registry_path).stdout == "null\n"
    assert not registry_path.exists(), "a command that only reads created the registry"


def test_allocate_then_who_names_the_lease(
    app_with_server: tuple[FakeApp, int, int], registry_path: Path
) -> None:
    app, port, server = app_with_server
    result = portd("who", port, registry=registry_path)
    assert result.code == 0, result.stderr
    assert_pairs_aligned(result.stdout)
    assert re.search(
        r"^command +\S+python\S* -c '\\nimport socket, sys\\nport = ", result.stdout, re.M
    )
    check_golden(
        "who-listening.txt",
        normalise_who(result.stdout, port, app, server),
    )
    owner = portd("who", port, "--json", registry=registry_path).json()
    assert owner["pid"] == server and owner["orphan"] is False
    assert owner["lease"]["service"] == "web" and owner["lease"]["app_id"] == "cli"
    assert owner["lease"]["owner_pid"] == app.pid and owner["lease"]["state"] == "listening"
    assert owner["lease"]["holder_pids"] == [server], "who records the rightful listener"


def test_who_says_when_the_holder_is_an_orphan(
    app_with_server: tuple[FakeApp, int, int], registry_path: Path
) -> None:
    app, port, server = app_with_server
    assert portd("who", port, registry=registry_path).code == 0  # sees and records the server
    app.kill()  # the app crashes; the dev server it started lives on
    result = portd("who", port, registry=registry_path)
    assert result.code == 0, result.stderr
    check_golden(
        "who-orphan.txt",
        normalise_who(result.stdout, port, app, server),
    )
    owner = portd("who", port, "--json", registry=registry_path).json()
    assert owner["orphan"] is True and owner["lease"]["state"] == "orphan"
    assert owner["pid"] == server


def test_who_reports_a_stranger_on_a_leased_port_as_a_conflict(
    start_app: Callable[[], FakeApp], start_listener: Callable[..., Listener], registry_path: Path
) -> None:
    app = start_app()
    port = lease_for(app, "api", registry_path)
    stranger = start_listener(port)
    result = portd("who", port, registry=registry_path)
    assert result.code == 0
    assert re.search(rf"^state\s+conflict: pid {stranger.pid} is neither", result.stdout, re.M)
    assert (
        portd("who", port, "--json", registry=registry_path).json()["lease"]["state"] == "conflict"
    )


def assert_pairs_aligned(text: str) -> None:
    values = {len(m.group(1)) for m in re.finditer(r"^(\w+\s+)\S", text, re.M)}
    assert len(values) == 1, f"values do not start in one column:\n{text}"


def normalise_who(text: str, port: int, app: FakeApp, server: int) -> str:
    return normalise(
        text, {port: "<port>", app.pid: "<app>", server: "<server>", _user(): "<user>"}
    )


def _user() -> str:
    import getpass

    return getpass.getuser()


# --- ls --------------------------------------------------------------------------------------


def test_ls_lists_leases_beside_their_listeners(
    app_with_server: tuple[FakeApp, int, int], start_app: Callable[[], FakeApp], registry_path: Path
) -> None:
    app, port, server = app_with_server
    other = start_app()
    idle = lease_for(other, "db", registry_path)
    result = portd("ls", registry=registry_path)
    assert result.code == 0, result.stderr
    assert_aligned(result.stdout)
    rows = sorted(result.stdout.splitlines()[1:], key=lambda row: "web" in row)  # db, then web
    table = "\n".join([result.stdout.splitlines()[0], *rows]) + "\n"
    check_golden(
        "ls.txt",
        normalise(
            table,
            {
                port: "<web-port>",
                idle: "<db-port>",
                app.pid: "<app>",
                other.pid: "<other-app>",
                server: "<server>",
            },
        ),
    )

    data = portd("ls", "--json", registry=registry_path).json()
    assert data["registry"] == str(registry_path)
    by_service = {lease["service"]: lease for lease in data["leases"]}
    assert set(by_service) == {"web", "db"}
    assert by_service["web"]["port"] == port and by_service["web"]["state"] == "listening"
    assert by_service["web"]["owner_pid"] == app.pid and by_service["web"]["owner_alive"] is True
    assert by_service["web"]["listeners"] == [{"pid": server, "name": _name(server)}]
    assert by_service["db"]["port"] == idle and by_service["db"]["state"] == "leased"
    assert by_service["db"]["listeners"] == [] and data["unleased"] == []


def test_ls_all_adds_listeners_without_a_lease(
    start_listener: Callable[..., Listener], registry_path: Path
) -> None:
    listener = start_listener(0)
    result = portd("ls", "--all", registry=registry_path)
    assert result.code == 0
    assert result.stdout.startswith(f"no leases in {registry_path}\nlistening, no lease:\n")
    assert re.search(rf"^\s*{listener.port}  {listener.pid} \(", result.stdout, re.M)
    data = portd("ls", "--all", "--json", registry=registry_path).json()
    assert {"port": listener.port, "pid": listener.pid, "name": _name(listener.pid)} in data[
        "unleased"
    ]


def test_ls_on_an_empty_registry(registry_path: Path) -> None:
    assert portd("ls", registry=registry_path).stdout == f"no leases in {registry_path}\n"
    assert portd("ls", "--json", registry=registry_path).json() == {
        "registry": str(registry_path),
        "leases": [],
        "unleased": [],
    }


def _name(pid: int) -> str:
    import psutil

    return psutil.Process(pid).name()


# --- free ------------------------------------------------------------------------------------


def test_free_skips_a_port_that_is_listened_on(
    start_listener: Callable[..., Listener], registry_path: Path
) -> None:
    try:
        listener = start_listener(41000)
    except OSError:
        pytest.skip("port 41000 is busy on this machine")
    result = portd("free", "--count", 3, "--range", "41000-41100", registry=registry_path)
    assert result.code == 0, result.stderr
    ports = [int(line) for line in result.stdout.split()]
    assert len(ports) == 3 and ports == sorted(set(ports))
    assert listener.port not in ports and all(41001 <= p <= 41100 for p in ports)
    data = portd(
        "free", "--count", 3, "--range", "41000-41100", "--json", registry=registry_path
    ).json()
    assert data["range"] == [41000, 41100] and len(data["ports"]) == 3
    assert 41000 not in data["ports"]


def test_free_skips_a_leased_port(start_app: Callable[[], FakeApp], registry_path: Path) -> None:
    app = start_app()
    port = lease_for(app, "web", registry_path)
    result = portd("free", "--range", f"{port}-{port}", registry=registry_path)
    assert result.code == 1 and result.stdout == ""
    assert result.stderr == (
        f"portd free: only 0 of the 1 port(s) asked for are free in {port}-{port}\n"
    )


def test_free_reports_too_few_ports_with_exit_1(
    start_listener: Callable[..., Listener], registry_path: Path
) -> None:
    listener = start_listener(0)
    port = listener.port
    result = portd("free", "--range", f"{port}-{port}", registry=registry_path)
    assert result.code == 1 and result.stdout == ""
    assert "only 0 of the 1 port(s)" in result.stderr


# --- allocate and release ----------------------------------------------------------------


def test_allocate_is_owned_by_the_calling_process_and_released_by_name(registry_path: Path) -> None:
    want = free_port()
    first = portd("allocate", "api", "--preferred", want, registry=registry_path)
    assert first.code == 0, first.stderr
    assert first.stdout == f"{want}\n" and first.stderr == ""
    again = portd("allocate", "api", registry=registry_path)
    assert again.stdout == first.stdout, "the same owner asking again gets its lease back"
    [lease] = portd("ls", "--json", registry=registry_path).json()["leases"]
    assert lease["owner_pid"] == os.getpid(), "the owner is the calling process (the shell)"
    assert lease["app_id"] == "cli" and lease["service"] == "api"

    released = portd("release", "api", registry=registry_path)
    assert released.code == 0 and released.stdout == f"released api: port {want}\n"
    assert portd("ls", "--json", registry=registry_path).json()["leases"] == []
    gone = portd("release", "api", registry=registry_path)
    assert gone.code == 1
    assert gone.stderr == (
        f"portd release: no lease for api (app cli) owned by pid "
        f"{os.getpid()}; `portd ls` lists the leases\n"
    )


def test_allocate_json_and_app_id(start_app: Callable[[], FakeApp], registry_path: Path) -> None:
    app = start_app()
    want = free_port()
    data = portd(
        "allocate",
        "web",
        "--owner-pid",
        app.pid,
        "--app-id",
        "chat",
        "--preferred",
        want,
        "--json",
        registry=registry_path,
    ).json()
    assert data == {
        "service": "web",
        "port": want,
        "app_id": "chat",
        "owner_pid": app.pid,
        "renewed": False,
    }
    miss = portd("release", "web", registry=registry_path)
    assert miss.code == 1 and miss.stderr == (
        f"portd release: no lease for web (app cli) owned by pid {os.getpid()}; web is leased "
        f"to pid {app.pid} (app chat) on port {want}: pass --owner-pid and --app-id\n"
    )
    done = portd(
        "release",
        "web",
        "--owner-pid",
        app.pid,
        "--app-id",
        "chat",
        "--json",
        registry=registry_path,
    )
    assert done.code == 0 and done.json() == {"service": "web", "port": want, "released": True}


def test_allocate_moves_off_a_taken_preferred_port(
    start_listener: Callable[..., Listener], start_app: Callable[[], FakeApp], registry_path: Path
) -> None:
    taken = start_listener(0).port
    app = start_app()
    result = portd(
        "allocate", "web", "--owner-pid", app.pid, "--preferred", taken, registry=registry_path
    )
    assert result.code == 0
    assert int(result.stdout) != taken
    assert result.stderr == (
        f"portd allocate: port {taken} is not free; leased {int(result.stdout)} instead\n"
    )


def test_a_lease_dies_with_its_owner(start_app: Callable[[], FakeApp], registry_path: Path) -> None:
    app = start_app()
    want = free_port()
    assert (
        portd(
            "allocate", "web", "--owner-pid", app.pid, "--preferred", want, registry=registry_path
        ).code
        == 0
    )
    assert portd("who", want, registry=registry_path).code == 0  # leased: held
    app.kill()
    result = portd("who", want, registry=registry_path)
    assert result.code == 1, "a lease whose owner is gone holds nothing"
    assert re.search(
        rf"^state\s+stale: the lease's owner \(pid {app.pid}\) is gone", result.stdout, re.M
    )
    [row] = portd("ls", registry=registry_path).stdout.splitlines()[1:]
    assert row.split()[:6] == [str(want), "web", "cli", str(app.pid), "(gone)", "stale"]
    [lease] = portd("ls", "--json", registry=registry_path).json()["leases"]
    assert lease["state"] == "leased" and lease["owner_alive"] is False
    other = start_app()
    again = portd(
        "allocate", "web2", "--owner-pid", other.pid, "--preferred", want, registry=registry_path
    )
    assert again.stdout == f"{want}\n", "the next claim reclaims the dead owner's port"


def test_allocate_uses_the_plan_port_first(
    tmp_path: Path, start_app: Callable[[], FakeApp], registry_path: Path
) -> None:
    planned = free_port()
    plan = tmp_path / "ports.toml"
    plan.write_text(f'[categories]\nhttp = "1-65535"\n\n[services.web]\nhttp = {planned}\n')
    app = start_app()
    result = portd(
        "allocate", "web", "--owner-pid", app.pid, "--plan", plan, registry=registry_path
    )
    assert result.code == 0 and result.stdout == f"{planned}\n"


# --- health --------------------------------------------------------------------------------


def test_health_is_a_table_and_json(
    start_listener: Callable[..., Listener], registry_path: Path
) -> None:
    frontend = start_listener(0, http=True)
    result = portd(
        "health", "--frontend-port", frontend.port, "--frontend-path", "/", registry=registry_path
    )
    assert result.code in (0, 1), result.stderr  # 1 if this busy machine is over a threshold
    assert_aligned(result.stdout.split("\n\n")[0], right=(2,))
    components = [line.split()[0] for line in result.stdout.splitlines()[1:7]]
    assert components == [
        "port_manager",
        "registry",
        "frontend_server",
        "app",
        "system_resources",
        "network",
    ]
    assert re.search(
        r"^frontend_server\s+healthy\s+[\d.]+ ms\s+GET / answered 200$", result.stdout, re.M
    )
    overall = result.stdout.splitlines()[-1]
    assert overall == ("overall: healthy" if result.code == 0 else "overall: unhealthy")

    report = portd("health", "--json", registry=registry_path).json()
    assert {c["component"] for c in report["components"]} == set(components)
    assert report["status"] in ("healthy", "unhealthy")
    by_name = {c["component"]: c for c in report["components"]}
    assert by_name["registry"]["status"] == "healthy"
    assert by_name["app"]["details"]["pid"] == os.getpid()


def test_health_reports_a_corrupt_registry(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"this is not a database" * 100)
    result = portd("health", "--json", registry=corrupt)
    assert result.code == 1
    by_name = {c["component"]: c for c in result.json()["components"]}
    assert by_name["registry"]["status"] == "unhealthy"
    assert "in-memory" in by_name["registry"]["message"]


# --- bad input: one line, exit 2, never a traceback --------------------------------------

BAD_INPUT = [
    (["who", "70000"], "portd who: error: argument PORT: 70000 is not a port: ports are 1-65535"),
    (["who", "0"], "portd who: error: argument PORT: 0 is not a port: ports are 1-65535"),
    (["who", "http"], "portd who: error: argument PORT: 'http' is not a port number"),
    (
        ["free", "--range", "5000-4000"],
        "portd free: error: argument --range: 5000-4000 is written backwards; did you mean "
        "4000-5000?",
    ),
    (
        ["free", "--range", "5000"],
        "portd free: error: argument --range: '5000' is not a range: write LOW-HIGH, e.g. "
        "41000-41100",
    ),
    (
        ["free", "--range", "1-70000"],
        "portd free: error: argument --range: 70000 is not a port: ports are 1-65535",
    ),
    (["free", "--count", "0"], "portd free: error: argument --count: 0 must be 1 or more"),
    (
        ["free", "--count", "200", "--range", "41000-41100"],
        "portd free: --count 200 is more than the 101 port(s) in 41000-41100",
    ),
    (
        ["allocate", "web", "--preferred", "65536"],
        "portd allocate: error: argument --preferred: 65536 is not a port: ports are 1-65535",
    ),
    (
        ["allocate", "web", "--owner-pid", str(NO_SUCH_PID)],
        f"portd allocate: --owner-pid {NO_SUCH_PID}: no such process",
    ),
    (
        ["allocate", " "],
        "portd allocate: error: argument SERVICE: ' ' is not a name: 1-200 printable characters",
    ),
    (
        ["release", "web", "--owner-pid", "-3"],
        "portd release: error: argument --owner-pid: -3 is not a pid: pids are 1 or more",
    ),
    (["health", "--frontend-path", "/"], "portd health: --frontend-path needs --frontend-port"),
    (["frobnicate"], "portd: error: argument COMMAND: invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, registry_path: Path
) -> None:
    result = portd(*args, registry=registry_path if args[0] != "frobnicate" else None)
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr


def test_an_unusable_registry_is_exit_3(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"this is not a database" * 100)
    result = portd("ls", registry=corrupt)
    assert result.code == 3 and result.stdout == ""
    assert result.stderr.startswith(f"portd ls: the registry is unusable: {corrupt}: ")
    assert result.stderr.count("\n") == 1


def test_portd_registry_environment_variable(
    tmp_path: Path, start_app: Callable[[], FakeApp]
) -> None:
    registry = tmp_path / "from-env.sqlite3"
    app = start_app()
    port = portd(
        "allocate",
        "web",
        "--owner-pid",
        app.pid,
        "--preferred",
        free_port(),
        env={"PORTD_REGISTRY": str(registry)},
    ).stdout
    assert registry.exists()
    assert portd("ls", "--json", registry=registry).json()["leases"][0]["port"] == int(port)


# --- the sidecar does not pay for the CLI --------------------------------------------------


def test_serve_imports_no_cli_table_or_plan_code(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "portd",
            "serve",
            "--registry",
            str(tmp_path / "registry.sqlite3"),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "portd.rpc.server" in imported, "importtime not read"
    heavy = sorted(
        m
        for m in imported
        if m.startswith(("portd.cli", "portd.commands", "portd.plan", "portd._plan_lines"))
        or m == "argparse"
    )
    assert heavy == [], f"`portd serve` imported CLI or plan code: {heavy}"


def test_schema_still_prints_the_protocol_schema() -> None:
    result = portd("schema")
    assert result.code == 0
    assert isinstance(result.json(), dict)


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    """`portd plan export | head -1`: the reader is gone, so stop without a word (141, as a
    shell reports a command ended by SIGPIPE). The read end is closed before portd starts,
    so its first write fails whatever the timing."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "portd",
                "plan",
                "export",
                "--plan",
                str(REPO / "tests" / "fixtures" / "anychat" / "ports.toml"),
            ],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141
    assert proc.stderr == ""


def test_no_command_prints_the_help_and_exits_2() -> None:
    result = portd()
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.startswith("usage: portd")
