"""`portd plan check|next|status|export|init`, run as `python -m portd` subprocesses.

The main subject is AnyChat's hand-kept port table (tests/fixtures/anychat/ports.toml) and its
state before the MinIO fix, when MinIO Console and auth-service's gRPC shared 9001. Output that
depends only on the plan is compared byte for byte with tests/golden; `plan check` is pinned to
Linux's default ephemeral range with --ephemeral-range so that it reads the same everywhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.test_cli import (
    assert_aligned,
    check_golden,
    free_port,
    normalise,
    portd,
    transcript,
)
from tests.support.processes import FakeApp, Listener

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ANYCHAT = FIXTURES / "anychat"
PLANS = FIXTURES / "plans"
LINUX_EPHEMERAL = "32768-60999"


def check(plan: str, *extra: str, cwd: Path = ANYCHAT) -> str:
    result = portd(
        "plan", "check", "--plan", plan, "--ephemeral-range", LINUX_EPHEMERAL, *extra, cwd=cwd
    )
    return transcript(result)


# --- check -----------------------------------------------------------------------------------


def test_the_seed_plan_checks_clean_with_its_warnings() -> None:
    out = check("ports.toml")
    check_golden("plan-check-anychat.txt", out)
    assert out.startswith("exit: 0\n")
    assert (
        "ports.toml:34: warning: minio.console = 9091 takes the well-known port of "
        "prometheus-pushgateway" in out
    )


def test_the_seed_plan_fails_with_strict_because_of_its_warning() -> None:
    check_golden("plan-check-anychat-strict.txt", check("ports.toml", "--strict"))


def test_the_plan_before_the_minio_fix_fails_naming_both_services() -> None:
    out = check("ports-before-minio-fix.toml")
    check_golden("plan-check-before-minio-fix.txt", out)
    assert out.startswith("exit: 1\n")
    [error] = [line for line in out.splitlines() if ": error: " in line]
    assert re.fullmatch(r"ports-before-minio-fix\.toml:\d+: error: .*", error)
    assert "auth-service" in error and "minio" in error and "9001" in error


def test_check_json_for_scripts() -> None:
    result = portd(
        "plan",
        "check",
        "--plan",
        "ports-before-minio-fix.toml",
        "--json",
        "--ephemeral-range",
        LINUX_EPHEMERAL,
        cwd=ANYCHAT,
    )
    assert result.code == 1
    data = result.json()
    assert data["ok"] is False and data["errors"] == 1 and data["warnings"] == 0
    assert data["ephemeral_range"] == [32768, 60999]
    [finding] = data["findings"]
    assert finding["code"] == "duplicate-port" and finding["severity"] == "error"
    assert set(finding["services"]) == {"minio", "auth-service"}
    assert finding["path"] == "ports-before-minio-fix.toml" and isinstance(finding["line"], int)


def test_check_warns_about_the_ephemeral_range_it_is_given() -> None:
    result = portd(
        "plan", "check", "--plan", "ports.toml", "--ephemeral-range", "9000-9010", cwd=ANYCHAT
    )
    assert result.code == 0
    assert (
        "ports.toml:33: warning: minio.api = 9000 is in the OS's ephemeral range 9000-9010"
        in result.stdout
    )


def test_check_reads_the_ephemeral_range_from_the_os() -> None:
    result = portd("plan", "check", "--plan", "ports.toml", "--json", cwd=ANYCHAT)
    assert result.code == 0
    if sys.platform.startswith("linux"):
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        assert result.json()["ephemeral_range"] == [low, high]


def test_partly_overlapping_categories_are_a_finding_with_exit_1() -> None:
    check_golden("plan-check-partial-overlap.txt", check("partial-overlap.toml", cwd=PLANS))


# A file that is not a plan at all is bad input: one line, FILE:LINE: error: ..., exit 2.
MALFORMED = ["bad-toml", "range-backwards", "port-zero", "no-category"]


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_plan_is_one_line_with_file_and_line(name: str) -> None:
    out = check(f"{name}.toml", cwd=PLANS)
    check_golden(f"plan-check-{name}.txt", out)
    code, stdout, stderr = _parts(out)
    assert code == 2 and stdout == ""
    assert re.fullmatch(rf"{name}\.toml:\d+: error: [^\n]+\n", stderr), stderr


def _parts(out: str) -> tuple[int, str, str]:
    match = re.fullmatch(r"exit: (\d+)\n--- stdout\n(.*)--- stderr\n(.*)", out, re.S)
    assert match, out
    return int(match.group(1)), match.group(2), match.group(3)


def test_a_missing_plan_file_is_one_line(tmp_path: Path) -> None:
    for action in (["check"], ["next", "http"], ["status"], ["export"]):
        result = portd("plan", *action, cwd=tmp_path)
        assert result.code == 2 and result.stdout == ""
        assert result.stderr == (
            f"portd plan {action[0]}: ports.toml: no such plan file; `portd plan init` writes a "
            "starter plan, or pass --plan FILE\n"
        )


def test_plan_without_an_action_is_a_usage_error() -> None:
    result = portd("plan")
    assert result.code == 2
    assert result.stderr.startswith("portd plan: error: the following arguments are required")


# --- next ----------------------------------------------------------------------------------


def test_next_http_in_the_seed_starts_after_its_last_planned_port(registry_path: Path) -> None:
    # The table says "HTTP from 8012 upward": 8012 unless something on this machine holds it.
    result = portd("plan", "next", "http", "--plan", ANYCHAT / "ports.toml", registry=registry_path)
    assert result.code == 0, result.stderr
    port = int(result.stdout)
    assert 8012 <= port <= 8999 and port not in (8080, 8222)
    grpc = portd(
        "plan", "next", "grpc", "--plan", ANYCHAT / "ports.toml", "--json", registry=registry_path
    )
    assert grpc.json()["category"] == "grpc" and 9012 <= grpc.json()["port"] <= 9999


def test_next_skips_ports_that_are_listened_on_or_leased(
    tmp_path: Path,
    start_listener: Callable[..., Listener],
    start_app: Callable[[], FakeApp],
    registry_path: Path,
) -> None:
    taken = start_listener(0).port
    plan = tmp_path / "ports.toml"
    plan.write_text(
        f'[categories]\nweb = "{taken - 1}-{taken + 50}"\n\n[services.site]\nweb = {taken - 1}\n'
    )
    first = int(portd("plan", "next", "web", "--plan", plan, registry=registry_path).stdout)
    assert first > taken, "the planned port and the listened-on one are skipped"
    app = start_app()
    leased = portd(
        "allocate", "other", "--owner-pid", app.pid, "--preferred", first, registry=registry_path
    )
    assert leased.stdout == f"{first}\n"
    second = int(portd("plan", "next", "web", "--plan", plan, registry=registry_path).stdout)
    assert second > first, "a port another app leased is not proposed"


def test_next_with_no_free_port_left_exits_1(
    tmp_path: Path, start_listener: Callable[..., Listener]
) -> None:
    taken = start_listener(0).port
    plan = tmp_path / "ports.toml"
    plan.write_text(
        f'[categories]\nweb = "{taken - 1}-{taken}"\n\n[services.site]\nweb = {taken - 1}\n'
    )
    result = portd("plan", "next", "web", "--plan", plan)
    assert result.code == 1 and result.stdout == ""
    assert result.stderr == (
        f"{plan}:2: error: category web ({taken - 1}-{taken}) has no unused "
        f"free port from {taken - 1} upward\n"
    )


def test_next_of_an_unknown_category_is_bad_input() -> None:
    result = portd("plan", "next", "htp", "--plan", "ports.toml", cwd=ANYCHAT)
    assert result.code == 2
    assert result.stderr == (
        "portd plan next: ports.toml: no category 'htp' (categories: queue, database, cache, "
        "http, grpc, infra, monitoring, observability, tracing, realtime)\n"
    )


# --- status ----------------------------------------------------------------------------------


@pytest.fixture
def status_plan(
    tmp_path: Path, start_listener: Callable[..., Listener]
) -> tuple[Path, Listener, int]:
    """A plan with one port a process listens on and one that is free."""
    listener = start_listener(0)
    idle = free_port()
    plan = tmp_path / "ports.toml"
    plan.write_text(
        '[categories]\nhttp = "1024-65535"\ngrpc = "1024-65535"\n\n'
        f"[services.api]\nhttp = {listener.port}\ngrpc = {idle}\n"
    )
    return plan, listener, idle


def test_status_shows_each_planned_port_free_or_taken_and_by_whom(
    status_plan: tuple[Path, Listener, int], registry_path: Path
) -> None:
    plan, listener, idle = status_plan
    result = portd("plan", "status", "--plan", plan.name, registry=registry_path, cwd=plan.parent)
    assert result.code == 0, result.stderr
    table = result.stdout.split("\n\n")[0]
    assert_aligned(table, right=(1,))
    check_golden(
        "plan-status.txt",
        normalise(
            result.stdout,
            {
                listener.port: "<taken>",
                idle: "<idle>",
                listener.pid: "<pid>",
            },
        ),
    )
    assert result.stderr == "portd plan status: checked 2 ports\n"

    data = portd("plan", "status", "--plan", plan, "--json", registry=registry_path).json()
    taken, free = data["ports"]
    assert taken["port"] == listener.port and taken["state"] == "taken"
    assert taken["pids"] == [listener.pid] and taken["processes"][0].startswith("python")
    assert taken["service"] == "api" and taken["name"] == "http" and taken["line"] == 6
    assert free["port"] == idle and free["state"] == "free" and free["pids"] == []


def test_status_names_the_lease_on_a_planned_port(
    status_plan: tuple[Path, Listener, int], start_app: Callable[[], FakeApp], registry_path: Path
) -> None:
    plan, _, idle = status_plan
    app = start_app()
    assert (
        portd(
            "allocate",
            "api-grpc",
            "--owner-pid",
            app.pid,
            "--preferred",
            idle,
            registry=registry_path,
        ).stdout
        == f"{idle}\n"
    )
    data = portd("plan", "status", "--plan", plan, "--json", registry=registry_path).json()
    row = data["ports"][1]
    assert row["state"] == "leased"
    assert row["lease"] == {"service": "api-grpc", "app_id": "cli", "owner_pid": app.pid}


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_status_progress_is_redrawn_in_place_on_a_terminal(
    status_plan: tuple[Path, Listener, int], registry_path: Path
) -> None:
    import pty

    plan, _, _ = status_plan
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "portd",
                "plan",
                "status",
                "--plan",
                str(plan),
                "--registry",
                str(registry_path),
            ],
            stdout=subprocess.PIPE,
            stderr=follower,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        os.close(follower)
        follower = -1
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert proc.returncode == 0
    text = seen.decode()
    assert "\rportd plan status: checked 1/2 ports" in text
    assert text.endswith("\rportd plan status: checked 2 ports\x1b[K\r\n")
    assert "Traceback" not in text


# --- export and init ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["env", "json", "compose"])
def test_export_the_seed_plan(fmt: str) -> None:
    result = portd("plan", "export", "--format", fmt, cwd=ANYCHAT)
    assert result.code == 0 and result.stderr == ""
    check_golden(f"plan-export-anychat.{fmt}", result.stdout)


def test_init_writes_the_starter_plan_and_will_not_overwrite_it(tmp_path: Path) -> None:
    from portd.plan import starter_plan

    result = portd("plan", "init", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.stdout == (
        "wrote ports.toml: a starter plan; edit it, then run `portd plan check`\n"
    )
    written = tmp_path / "ports.toml"
    assert written.read_text(encoding="utf-8") == starter_plan()
    assert portd("plan", "check", "--strict", cwd=tmp_path).code == 0, "the starter is clean"

    written.write_text("# mine\n")
    again = portd("plan", "init", cwd=tmp_path)
    assert again.code == 2
    assert again.stderr == (
        "portd plan init: ports.toml already exists; pass --force to overwrite it\n"
    )
    assert written.read_text() == "# mine\n"
    forced = portd("plan", "init", "--force", cwd=tmp_path)
    assert forced.code == 0 and written.read_text(encoding="utf-8") == starter_plan()


def test_init_elsewhere(tmp_path: Path) -> None:
    target = tmp_path / "deploy" / "ports.toml"
    missing = portd("plan", "init", "--plan", target)
    assert missing.code == 2
    assert missing.stderr == (
        f"portd plan init: {target}: cannot write the plan: No such file or directory\n"
    )
    target.parent.mkdir()
    made = portd("plan", "init", "--plan", target)
    assert made.code == 0
    assert made.stdout.endswith(f"`portd plan check --plan {target}`\n")
    assert "[categories]" in target.read_text(encoding="utf-8")


# --- export for the cluster: Nomad, Kubernetes, and Compose checked by Compose --------------

CLUSTER_GOLDEN = {"nomad": "plan-export-anychat.nomad.hcl", "k8s": "plan-export-anychat.k8s.yaml"}


@pytest.mark.parametrize("fmt", sorted(CLUSTER_GOLDEN))
def test_export_the_seed_plan_for_the_cluster(fmt: str) -> None:
    result = portd("plan", "export", "--format", fmt, cwd=ANYCHAT)
    assert result.code == 0 and result.stderr == ""
    check_golden(CLUSTER_GOLDEN[fmt], result.stdout)


def test_export_job_names_the_nomad_job() -> None:
    result = portd("plan", "export", "--format", "nomad", "--job", "anychat-dev", cwd=ANYCHAT)
    assert result.code == 0 and result.stderr == ""
    assert '\njob "anychat-dev" {\n' in result.stdout
    assert '\njob "anychat" {\n' in portd("plan", "export", "--format", "nomad", cwd=ANYCHAT).stdout


def test_export_with_a_job_nomad_would_refuse_or_for_another_format_is_bad_input() -> None:
    bad = portd("plan", "export", "--format", "nomad", "--job", "two words", cwd=ANYCHAT)
    assert bad.code == 2 and bad.stdout == ""
    assert bad.stderr == (
        "portd plan export: --job: 'two words' is not a Nomad job name: use letters, digits, "
        "'.', '_' and '-', starting with a letter or digit\n"
    )
    other = portd("plan", "export", "--format", "k8s", "--job", "chat", cwd=ANYCHAT)
    assert other.code == 2 and other.stdout == ""
    assert other.stderr == (
        "portd plan export: --job names the Nomad job: use it with --format nomad, not k8s\n"
    )


def test_export_to_an_unknown_format_is_a_usage_error() -> None:
    result = portd("plan", "export", "--format", "yaml", cwd=ANYCHAT)
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.startswith(
        "portd plan export: error: argument --format: invalid choice: 'yaml' (choose from "
    )
    assert "nomad" in result.stderr and "k8s" in result.stderr
    assert result.stderr.count("\n") == 1


def _compose() -> list[str] | None:
    """`docker compose` (the plugin), else a standalone `docker-compose`, if either runs."""
    for command in (["docker", "compose"], ["docker-compose"]):
        try:
            probe = subprocess.run(
                [*command, "version"], capture_output=True, timeout=60, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return command
    return None


def test_the_exported_compose_file_is_an_override_that_docker_compose_accepts(
    tmp_path: Path,
) -> None:
    command = _compose()
    if command is None:
        pytest.skip(
            "neither `docker compose` nor `docker-compose` runs here: "
            "the Compose export cannot be checked with `docker compose config`"
        )
    from portd.plan import load_plan

    plan = load_plan(ANYCHAT / "ports.toml")
    exported = tmp_path / "ports.compose.yaml"
    exported.write_text(portd("plan", "export", "--format", "compose", cwd=ANYCHAT).stdout)
    base = tmp_path / "compose.yaml"  # the project's own file, which names the images
    base.write_text(
        "services:\n" + "".join(f"  {s}:\n    image: busybox\n" for s in plan.services())
    )

    def config(*files: Path) -> subprocess.CompletedProcess[str]:
        argv = [*command, "-p", "portd-plan-export"]
        for file in files:
            argv += ["-f", str(file)]
        return subprocess.run(
            [*argv, "config"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )

    merged = config(base, exported)
    assert merged.returncode == 0, merged.stderr
    for p in plan.ports:
        assert f"target: {p.port}\n" in merged.stdout, p.label
        assert re.search(rf'published: "?{p.port}"?\n', merged.stdout), p.label
    alone = config(exported)
    assert alone.returncode != 0 and "image" in alone.stderr, "alone it is an override"
