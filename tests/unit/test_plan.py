"""Specification of portd.plan: port plans as TOML, checked, extended and exported.

The main subject is AnyChat's hand-kept port table (tests/fixtures/anychat), kept as a plan,
and its state before the 2024-02-15 fix, when MinIO Console and auth-service shared 9001.
next_port is tested against real sockets (no mocks).
"""

from __future__ import annotations

import json
import pickle
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

try:
    from portd import plan as plan_mod
except ModuleNotFoundError:  # running from a checkout where portd is not installed yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sidecar"))
    from portd import plan as plan_mod

from portd._known_ports import BROWSER_RESTRICTED_PORTS
from portd.plan import (
    Finding,
    Plan,
    PlanError,
    check_plan,
    export_plan,
    load_plan,
    next_port,
    parse_plan,
    starter_plan,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ANYCHAT = FIXTURES / "anychat" / "ports.toml"
ANYCHAT_BEFORE_FIX = FIXTURES / "anychat" / "ports-before-minio-fix.toml"
MALFORMED = FIXTURES / "plans"
LINUX_EPHEMERAL = (32768, 60999)
WINDOWS_EPHEMERAL = (49152, 65535)

MICROSERVICES = {
    "auth-service": (8001, 9001),
    "user-service": (8002, 9002),
    "friend-service": (8003, 9003),
    "group-service": (8004, 9004),
    "message-service": (8005, 9005),
    "session-service": (8006, 9006),
    "file-service": (8007, 9007),
    "push-service": (8008, 9008),
    "rtc-service": (8009, 9009),
    "sync-service": (8010, 9010),
    "admin-service": (8011, 9011),
}


def line_of(path: Path, text: str, *, after: str | None = None) -> int:
    """1-based line of the first line containing `text` (below the line containing `after`)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = 0 if after is None else next(i for i, ln in enumerate(lines) if after in ln)
    return next(i for i in range(start, len(lines)) if text in lines[i]) + 1


def bind_is_free(port: int) -> bool:
    """A port is free when a listening socket can bind it on 127.0.0.1 right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def always_free(port: int) -> bool:
    return True


@contextmanager
def listening_on(port: int) -> Iterator[socket.socket]:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        yield s


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


# ---------------------------------------------------------------------------- the seed's table


def test_seed_table_loads_with_every_row_of_the_hand_kept_table() -> None:
    plan = load_plan(ANYCHAT)
    assert plan.path == str(ANYCHAT)
    by_label = {(p.service, p.name): p.port for p in plan.ports}
    for service, (http, grpc) in MICROSERVICES.items():
        assert by_label[(service, "http")] == http
        assert by_label[(service, "grpc")] == grpc
    assert by_label == {
        **{(s, "http"): h for s, (h, _) in MICROSERVICES.items()},
        **{(s, "grpc"): g for s, (_, g) in MICROSERVICES.items()},
        ("postgres", "database"): 5432,
        ("redis", "cache"): 6379,
        ("nats", "client"): 4222,
        ("nats", "monitoring"): 8222,
        ("minio", "api"): 9000,
        ("minio", "console"): 9091,
        ("gateway-service", "http"): 8080,
        ("prometheus", "http"): 9090,
        ("grafana", "http"): 3000,
        ("jaeger", "ui"): 16686,
        ("jaeger", "collector"): 14268,
        ("metrics", "metrics"): 2112,
        ("livekit", "ws"): 7880,
    }
    assert {n: (c.low, c.high) for n, c in plan.categories.items()} == {
        "queue": (4000, 4999),
        "database": (5000, 5999),
        "cache": (6000, 6999),
        "http": (8000, 8999),
        "grpc": (9000, 9999),
        "infra": (9000, 9099),
        "monitoring": (9100, 9199),
        "observability": (2000, 3999),
        "tracing": (14000, 16999),
        "realtime": (7000, 7999),
    }
    minio = {p.name: p for p in plan.ports_of("minio")}
    assert minio["console"].category == "infra"
    assert minio["console"].line == line_of(ANYCHAT, "console =", after="[services.minio]")


def test_port_for_prefers_the_port_named_http_else_the_first_written() -> None:
    plan = load_plan(ANYCHAT)
    assert plan.port_for("auth-service") == 8001
    assert plan.port_for("prometheus") == 9090
    assert plan.port_for("minio") == 9000
    assert plan.port_for("jaeger") == 16686
    assert plan.port_for("nobody") is None
    assert (
        parse_plan(
            '[categories]\nhttp = "8000-8999"\ngrpc = "9000-9999"\n'
            "[services.a]\ngrpc = 9001\nhttp = 8001\n"
        ).port_for("a")
        == 8001
    )


def test_seed_table_checks_without_errors_and_warns_only_about_minio_console_on_9091() -> None:
    # The one warning: 9091 is the Prometheus Pushgateway's default port, and the table already
    # runs Prometheus. Nothing sits in the Linux or Windows ephemeral range, no HTTP port is one
    # browsers refuse, and every other well-known port (5432, 6379, 4222, 8222, 9000, 9090, 3000,
    # 16686, 14268, 7880, 8080) is held by the service it is known for.
    plan = load_plan(ANYCHAT)
    for ephemeral in (LINUX_EPHEMERAL, WINDOWS_EPHEMERAL, None):
        findings = check_plan(plan, ephemeral_range=ephemeral)
        assert errors(findings) == []
        assert [(f.severity, f.code, f.services, f.line) for f in findings] == [
            (
                "warning",
                "well-known-port",
                ("minio",),
                line_of(ANYCHAT, "console =", after="[services.minio]"),
            ),
        ]
        assert "9091" in findings[0].message
        assert "pushgateway" in findings[0].message
        assert findings[0].path == str(ANYCHAT)


def test_check_reports_two_services_on_one_port_with_both_names_and_line() -> None:
    plan = load_plan(ANYCHAT_BEFORE_FIX)
    findings = errors(check_plan(plan, ephemeral_range=LINUX_EPHEMERAL))
    minio_line = line_of(ANYCHAT_BEFORE_FIX, "console =", after="[services.minio]")
    auth_line = line_of(ANYCHAT_BEFORE_FIX, "grpc = 9001", after="[services.auth-service]")
    assert minio_line < auth_line
    assert len(findings) == 1
    (clash,) = findings
    assert clash.code == "duplicate-port"
    assert clash.services == ("minio", "auth-service")
    assert clash.path == str(ANYCHAT_BEFORE_FIX)
    # Reported where the clash appears reading top-down; the message points at the other line.
    assert clash.line == auth_line
    assert "9001" in clash.message
    assert "minio.console" in clash.message and "auth-service.grpc" in clash.message
    assert f"line {minio_line}" in clash.message


def test_check_reports_two_entries_of_one_service_on_one_port_naming_it_once() -> None:
    plan = parse_plan(
        '[categories]\nhttp = "8000-8999"\n'
        '[services.web]\nhttp = 8001\nadmin = { port = 8001, category = "http" }\n'
    )
    (clash,) = check_plan(plan, ephemeral_range=None)
    assert (clash.code, clash.services, clash.line) == ("duplicate-port", ("web",), 5)
    assert "web.admin" in clash.message and "web.http" in clash.message


# ---------------------------------------------------------------------------- malformed plans


@pytest.mark.parametrize(
    ("fixture", "line", "words"),
    [
        ("bad-toml.toml", 3, ["not valid TOML"]),
        ("range-backwards.toml", 4, ["5999-5000", "backwards", "5000-5999"]),
        ("port-zero.toml", 9, ["user-service.http", "port 0"]),
        ("no-category.toml", 9, ["auth-service.metrics", "no category", "'metrics'"]),
    ],
)
def test_malformed_plan_raises_plan_error_with_path_and_line(
    fixture: str, line: int, words: list[str]
) -> None:
    path = MALFORMED / fixture
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    err = caught.value
    assert (err.path, err.line) == (str(path), line)
    for word in words:
        assert word in err.message
    assert str(err).startswith(f"{path}:{line}: ")


def test_partly_overlapping_categories_load_but_check_reports_an_error_at_the_later_one() -> None:
    path = MALFORMED / "partial-overlap.toml"
    findings = check_plan(load_plan(path), ephemeral_range=None)
    assert [(f.severity, f.code, f.path, f.line) for f in findings] == [
        ("error", "partial-overlap", str(path), line_of(path, "admin = "))
    ]
    assert "grpc (9000-9999)" in findings[0].message
    assert "admin (9500-10499)" in findings[0].message


def test_nested_and_identical_category_ranges_are_allowed() -> None:
    plan = parse_plan(
        '[categories]\ngrpc = "9000-9999"\ninfra = "9000-9099"\nmonitoring = "9100-9199"\n'
        'edge = "9999-9999"\nrpc = "9000-9999"\n'
    )
    assert check_plan(plan, ephemeral_range=None) == []


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[categories]\nhttp = "0-999"\n', 2, ["0-999", "1-65535"]),
        ('[categories]\nhttp = "8000-70000"\n', 2, ["8000-70000", "1-65535"]),
        ("[categories]\nhttp = 8000\n", 2, ['"LOW-HIGH"', "8000"]),
        ('[categories]\nhttp = "8000..8999"\n', 2, ['"LOW-HIGH"']),
        ('[categories]\nhttp = "8000-8999"\n[services.a]\nhttp = 70000\n', 4, ["70000"]),
        ('[categories]\nhttp = "8000-8999"\n[services.a]\nhttp = "8001"\n', 4, ["'8001'"]),
        ('[categories]\nhttp = "8000-8999"\n[services.a]\nhttp = 8001.0\n', 4, ["8001.0"]),
        ('[categories]\nhttp = "8000-8999"\n[services.a]\nhttp = true\n', 4, ["True"]),
        ('[categories]\nhttp = "8000-8999"\n[services.a]\nhttp = -1\n', 4, ["-1"]),
        ('[categories]\nhttp = "8000-8999"\n[services]\na = 8001\n', 4, ["'a'", "table"]),
        (
            '[categories]\nhttp = "8000-8999"\n[services.a]\nweb = { category = "http" }\n',
            4,
            ["no port"],
        ),
        (
            '[categories]\nhttp = "8000-8999"\n[services.a]\nweb = { port = 8001, cat = "http" }\n',
            4,
            ["'cat'"],
        ),
        (
            '[categories]\nhttp = "8000-8999"\n[services.a]\nweb = { port = 8001, category = 1 }\n',
            4,
            ["category"],
        ),
        (
            '[categories]\nhttp = "8000-8999"\n\n[service.a]\nhttp = 8001\n',
            4,
            ["unknown section 'service'"],
        ),
        ('categories = ["8000-8999"]\n', 1, ["categories must be a table"]),
        (
            '[categories]\nhttp = "8000-8999"\n[services.a]\n'
            'web = { port = 8001, category = "www" }\n',
            4,
            ["'www'", "no category"],
        ),
    ],
)
def test_values_no_plan_can_hold_raise_plan_error_at_their_line(
    text: str, line: int, words: list[str]
) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "ports.toml")
    assert (caught.value.path, caught.value.line) == ("ports.toml", line)
    for word in words:
        assert word in caught.value.message


def test_plan_error_for_an_unreadable_file_names_the_file() -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(MALFORMED / "no-such-plan.toml")
    assert caught.value.path == str(MALFORMED / "no-such-plan.toml")
    assert caught.value.line is None


def test_plan_error_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(PlanError("p.toml", 3, "bad")))
    assert (err.path, err.line, err.message, str(err)) == ("p.toml", 3, "bad", "p.toml:3: bad")


def test_lines_are_found_for_headers_dotted_quoted_and_inline_table_keys() -> None:
    text = """\
# a comment with [services.fake] and http = 1 in it
[categories]
"http" = "8000-8999"
'grpc' = "9000-9999"   # quoted keys

[services."auth service"]
http = 8001

[services]
web.http = 8002
api = { http = 8003, grpc = { port = 9003, category = "grpc" } }
list = { http = 8004 }

[services.minio]
console = { port = 9091, category = "grpc" }
"""
    plan = parse_plan(text)
    assert {(p.service, p.name): p.line for p in plan.ports} == {
        ("auth service", "http"): 7,
        ("web", "http"): 10,
        ("api", "http"): 11,
        ("api", "grpc"): 11,
        ("list", "http"): 12,
        ("minio", "console"): 15,
    }
    assert plan.categories["http"].line == 3
    assert plan.categories["grpc"].line == 4


def test_windows_line_endings_and_byte_order_mark_keep_the_same_lines(tmp_path: Path) -> None:
    path = tmp_path / "ports.toml"
    path.write_bytes(b"\xef\xbb\xbf" + ANYCHAT.read_bytes().replace(b"\n", b"\r\n"))
    assert [p.line for p in load_plan(path).ports] == [p.line for p in load_plan(ANYCHAT).ports]


def test_scanner_skips_strings_arrays_and_comments_it_does_not_need() -> None:
    from portd._plan_lines import key_lines

    text = (
        'a = """x\n[fake]\ny = 1\n"""\n'
        "b = ['''\n''', \"q\\\"]\", [1,\n 2]]\n"
        '[t."k.1"]  # header\n'
        "c.d = 1979-05-27 07:32:00  # a date with a space\n"
        "e = { f = 'g', h = { i = 1 } }\n"
        "[u]\nv = { w = 1,\n  x = 2 }\n"  # TOML 1.1 lets inline tables span lines
    )
    lines = key_lines(text)
    assert lines[("a",)] == 1
    assert ("fake",) not in lines and ("y",) not in lines
    assert lines[("b",)] == 5
    assert lines[("t", "k.1")] == 8
    assert lines[("t", "k.1", "c", "d")] == 9
    assert lines[("t", "k.1", "e", "h", "i")] == 10
    assert (lines[("u", "v", "w")], lines[("u", "v", "x")]) == (12, 13)


# ---------------------------------------------------------------------------- warnings


def plan_of(service: str, port: int, *, name: str = "db", category: str = "any") -> Plan:
    return parse_plan(
        f'[categories]\n{category} = "1-65535"\n'
        f'[services.{service}]\n{name} = {{ port = {port}, category = "{category}" }}\n'
    )


def codes(plan: Plan, ephemeral: tuple[int, int] | None = None) -> list[str]:
    return [f.code for f in check_plan(plan, ephemeral_range=ephemeral)]


def test_well_known_port_warns_for_another_service_and_not_for_the_service_itself() -> None:
    (warning,) = check_plan(plan_of("auth-service", 5432), ephemeral_range=None)
    assert (warning.severity, warning.code, warning.services) == (
        "warning",
        "well-known-port",
        ("auth-service",),
    )
    assert "postgresql" in warning.message and "5432" in warning.message
    assert warning.line == 4
    for same in ("postgres", "postgresql", "postgres16", "my-postgres", "PostgreSQL", "pg"):
        assert codes(plan_of(same, 5432)) == [], same
    assert codes(plan_of("nats-server", 4222)) == []
    assert codes(plan_of("cache", 6379)) == ["well-known-port"]
    assert codes(plan_of("cache", 6379, name="redis")) == []  # the port's name says what it is
    assert codes(plan_of("postgres-exporter", 9187)) == []  # not a well-known port at all
    assert codes(plan_of("pgadmin", 5432)) == ["well-known-port"]  # a prefix is not a match


def test_ephemeral_range_warning_appears_only_with_a_range_that_holds_the_port() -> None:
    plan = plan_of("api", 50000, name="http")
    assert codes(plan) == []
    assert codes(plan, LINUX_EPHEMERAL) == ["ephemeral-port"]
    assert codes(plan, WINDOWS_EPHEMERAL) == ["ephemeral-port"]
    assert codes(plan, (50001, 60000)) == []
    (warning,) = check_plan(plan, ephemeral_range=(49152, 65535))
    assert "49152-65535" in warning.message and warning.line == 4


def test_browser_restricted_port_warns_only_for_http_ports() -> None:
    assert 6666 in BROWSER_RESTRICTED_PORTS
    for name in ("http", "https", "web", "ws"):
        assert codes(plan_of("chat", 6666, name=name)) == ["browser-restricted"], name
    assert codes(plan_of("chat", 6666, name="ui", category="http")) == ["browser-restricted"]
    assert codes(plan_of("chat", 6666, name="irc")) == []


def test_port_outside_its_category_is_an_error() -> None:
    plan = parse_plan(
        '[categories]\nhttp = "8000-8999"\ngrpc = "9000-9999"\n'
        '[services.a]\nhttp = 8001\ngrpc = { port = 8002, category = "grpc" }\n'
    )
    (finding,) = check_plan(plan, ephemeral_range=None)
    assert (finding.severity, finding.code, finding.line, finding.services) == (
        "error",
        "outside-category",
        6,
        ("a",),
    )
    assert "a.grpc = 8002" in finding.message and "9000-9999" in finding.message


def test_findings_come_sorted_by_line() -> None:
    plan = parse_plan(
        '[categories]\nhttp = "8000-8999"\nweb = "8500-9500"\ngrpc = "9000-9999"\n'
        '[services.b]\nhttp = { port = 9001, category = "http" }\n'
        "[services.a]\nhttp = 8080\n[services.c]\nhttp = 8080\n"
    )
    findings = check_plan(plan, ephemeral_range=None)
    assert [f.line for f in findings] == sorted(f.line or 0 for f in findings)
    assert {f.code for f in findings} == {"partial-overlap", "outside-category", "duplicate-port"}


# ---------------------------------------------------------------------------- next port


def test_next_port_for_the_seed_table_is_8012_for_http_and_9012_for_grpc() -> None:
    # The table's own rule (添加新服务): HTTP from 8012 upward, gRPC from 9012 upward. grpc's
    # range holds infra's 9000, 9090 and 9091 too: they must neither lower its start nor be
    # handed out again.
    plan = load_plan(ANYCHAT)
    assert next_port(plan, "http", always_free) == 8012
    assert next_port(plan, "grpc", always_free) == 9012
    assert next_port(plan, "monitoring", always_free) == 9100  # nothing planned: its low end
    assert next_port(plan, "database", always_free) == 5433


@pytest.mark.parametrize(("category", "first"), [("http", 8012), ("grpc", 9012)])
def test_next_port_for_the_seed_table_with_real_sockets_is_the_first_free_from_the_rule(
    category: str, first: int
) -> None:
    plan = load_plan(ANYCHAT)
    used = {p.port for p in plan.ports}
    got = next_port(plan, category, bind_is_free)
    assert got >= first and got not in used and bind_is_free(got)
    # Whatever lies between was taken on this machine.
    assert all(p in used or not bind_is_free(p) for p in range(first, got))


def free_block(size: int, start: int = 41000) -> int:
    """The low end of `size` consecutive ports that bind right now, at or above `start`."""
    for low in range(start, 60000 - size):
        if all(bind_is_free(p) for p in range(low, low + size)):
            return low
    pytest.skip("no block of free ports on this machine")


def test_next_port_skips_a_candidate_a_real_listener_holds() -> None:
    low = free_block(4)
    plan = parse_plan(f'[categories]\nhigh = "{low}-{low + 100}"\n[services.a]\nhigh = {low}\n')
    assert next_port(plan, "high", bind_is_free) == low + 1
    with listening_on(low + 1):
        assert not bind_is_free(low + 1)
        assert next_port(plan, "high", bind_is_free) == low + 2
    assert next_port(plan, "high", bind_is_free) == low + 1


def test_next_port_skips_browser_restricted_ports_in_http_categories() -> None:
    plan = parse_plan(
        '[categories]\nhttp = "6660-6700"\nirc = "6660-6700"\n'
        "[services.a]\nhttp = 6660\nb = 6661\nc = 6662\nd = 6663\ne = 6664\n".replace(
            "b = 6661", 'b = { port = 6661, category = "http" }'
        )
        .replace("c = 6662", 'c = { port = 6662, category = "http" }')
        .replace("d = 6663", 'd = { port = 6663, category = "http" }')
        .replace("e = 6664", 'e = { port = 6664, category = "irc" }')
    )
    assert next_port(plan, "http", always_free) == 6670  # 6665-6669 are refused by browsers
    assert next_port(plan, "irc", always_free) == 6665


def test_next_port_rejects_an_unknown_or_exhausted_category() -> None:
    plan = parse_plan('[categories]\nhttp = "8000-8001"\n[services.a]\nhttp = 8000\n')
    with pytest.raises(PlanError, match="unknown category 'grpc'"):
        next_port(plan, "grpc", always_free)
    with pytest.raises(PlanError, match="no unused free port") as caught:
        next_port(plan, "http", lambda port: False)
    assert caught.value.line == 2
    full = parse_plan(
        '[categories]\nhttp = "8000-8001"\n[services.a]\nhttp = 8000\n[services.b]\nhttp = 8001\n'
    )
    with pytest.raises(PlanError):
        next_port(full, "http", always_free)


# ---------------------------------------------------------------------------- export


def test_export_json_parses_to_service_name_port() -> None:
    plan = load_plan(ANYCHAT)
    table = json.loads(export_plan(plan, "json"))
    assert table["auth-service"] == {"http": 8001, "grpc": 9001}
    assert table["minio"] == {"api": 9000, "console": 9091}
    assert sum(len(v) for v in table.values()) == len(plan.ports)
    assert list(table) == plan.services()


def test_export_env_has_one_sorted_upper_snake_line_per_port() -> None:
    plan = load_plan(ANYCHAT)
    lines = export_plan(plan, "env").splitlines()
    assert lines == sorted(lines)
    env = dict(line.split("=", 1) for line in lines)
    assert env["AUTH_SERVICE_HTTP_PORT"] == "8001"
    assert env["MINIO_CONSOLE_PORT"] == "9091"
    assert env["GATEWAY_SERVICE_HTTP_PORT"] == "8080"
    expected = {
        f"{p.service}_{p.name}".replace("-", "_").upper() + "_PORT": str(p.port) for p in plan.ports
    }
    assert env == expected


def test_export_compose_maps_each_port_to_itself_under_its_service() -> None:
    plan = load_plan(ANYCHAT)
    text = export_plan(plan, "compose")
    lines = text.splitlines()
    assert "services:" in lines
    at = lines.index("  auth-service:")
    assert lines[at + 1 : at + 4] == ["    ports:", '      - "8001:8001"', '      - "9001:9001"']
    assert text.count(":\n    ports:") == len(plan.services())
    assert sum(1 for ln in lines if ln.startswith("      - ")) == len(plan.ports)
    odd = parse_plan('[categories]\nhttp = "8000-8999"\n[services."my app"]\nhttp = 8001\n')
    assert '  "my app":' in export_plan(odd, "compose").splitlines()


def test_export_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="yaml"):
        export_plan(load_plan(ANYCHAT), "yaml")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- starter plan


def test_starter_plan_loads_and_checks_clean_with_the_seed_categories(tmp_path: Path) -> None:
    path = tmp_path / "ports.toml"
    path.write_text(starter_plan(), encoding="utf-8")
    plan = load_plan(path)
    for ephemeral in (LINUX_EPHEMERAL, WINDOWS_EPHEMERAL, None):
        assert check_plan(plan, ephemeral_range=ephemeral) == []
    assert {n: (c.low, c.high) for n, c in plan.categories.items()} == {
        "queue": (4000, 4999),
        "database": (5000, 5999),
        "cache": (6000, 6999),
        "http": (8000, 8999),
        "grpc": (9000, 9999),
        "infra": (9000, 9099),
        "monitoring": (9100, 9199),
    }
    assert len(plan.services()) == 1
    # The commented-out example is clean too once a user uncomments it.
    uncommented = starter_plan().replace(
        "# [services.postgres]\n# database", "[services.postgres]\ndatabase"
    )
    assert check_plan(parse_plan(uncommented), ephemeral_range=LINUX_EPHEMERAL) == []


def test_module_surface_is_what_the_cli_and_sidecar_import() -> None:
    names: list[Callable[..., object] | type] = [
        plan_mod.load_plan,
        plan_mod.parse_plan,
        plan_mod.check_plan,
        plan_mod.next_port,
        plan_mod.export_plan,
        plan_mod.starter_plan,
        plan_mod.Plan,
        plan_mod.PlannedPort,
        plan_mod.Category,
        plan_mod.Finding,
        plan_mod.PlanError,
    ]
    assert all(n.__name__ in plan_mod.__all__ for n in names)
