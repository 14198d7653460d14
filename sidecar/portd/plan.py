"""Port plans: a project's hand-kept port table as a checked, machine-readable TOML file.

The format is in DESIGN.md, "Port plans": `[categories]` maps names to "LOW-HIGH" ranges, and
`[services.NAME]` maps port names to a port (`http = 8001`: its category is its name) or to
`{ port = N, category = "..." }`.

`load_plan`/`parse_plan` reject what cannot be a plan (PlanError, with file and line);
`check_plan` reports what is a plan but a bad one (Findings); `next_port` proposes a port;
`export_plan` (from portd.plan_export) writes what other tools read; `starter_plan` is what
`portd plan init` writes.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from portd._iana import IANA_PORTS
from portd._known_ports import BROWSER_RESTRICTED_PORTS
from portd._plan_lines import KeyPath, key_lines, line_of, toml_error_line, toml_error_reason
from portd.plan_export import export_plan

__all__ = [
    "Category",
    "Finding",
    "Plan",
    "PlanError",
    "PlannedPort",
    "check_plan",
    "export_plan",
    "load_plan",
    "next_port",
    "parse_plan",
    "starter_plan",
]

MIN_PORT, MAX_PORT = 1, 65535
# A port under one of these names (or in such a category) is opened by browsers and webviews.
HTTP_NAMES = frozenset({"http", "https", "web", "ws", "wss"})
_RANGE = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")
_SECTIONS = ("categories", "services")
_ENTRY_KEYS = frozenset({"port", "category"})
_Fail = Callable[[str], "PlanError"]


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    low: int
    high: int
    line: int | None

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high

    def contains_range(self, other: Category) -> bool:
        return self.low <= other.low and other.high <= self.high

    @property
    def range_text(self) -> str:
        return f"{self.low}-{self.high}"


@dataclass(frozen=True, slots=True)
class PlannedPort:
    service: str
    name: str
    port: int
    category: str
    line: int | None

    @property
    def label(self) -> str:
        return f"{self.service}.{self.name}"


@dataclass(frozen=True, slots=True)
class Plan:
    path: str
    categories: dict[str, Category]
    ports: list[PlannedPort]

    def services(self) -> list[str]:
        return list(dict.fromkeys(p.service for p in self.ports))

    def ports_of(self, service: str) -> list[PlannedPort]:
        return [p for p in self.ports if p.service == service]

    def port_for(self, service: str) -> int | None:
        """The service's primary port: the one named "http", else the first one written."""
        ports = self.ports_of(service)
        http = [p for p in ports if p.name == "http"]
        return (http or ports)[0].port if ports else None


class PlanError(Exception):
    """The file is not a plan: unreadable, not TOML, or a value no plan can hold."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[type[PlanError], tuple[str, int | None, str]]:
        return (PlanError, (self.path, self.line, self.message))


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Literal["error", "warning"]
    code: str
    message: str
    path: str
    line: int | None
    services: tuple[str, ...]


# ---------------------------------------------------------------------------- loading


def load_plan(path: str | os.PathLike[str]) -> Plan:
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8-sig") as f:  # -sig: Windows editors add a BOM
            text = f.read()
    except OSError as err:
        raise PlanError(name, None, f"cannot read the plan: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise PlanError(name, None, f"the plan is not UTF-8 text: {err.reason}") from err
    return parse_plan(text, name)


def parse_plan(text: str, path: str = "<string>") -> Plan:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        line = toml_error_line(err, text)
        reason = _toml_hint(toml_error_reason(err), text, line)
        raise PlanError(path, line, f"not valid TOML: {reason}") from None
    lines = key_lines(text)

    def fail(key: KeyPath, message: str) -> PlanError:
        return PlanError(path, line_of(lines, key), message)

    for section in data:
        if section not in _SECTIONS:
            raise fail(
                (section,),
                f"unknown section {section!r}: a plan has only [categories] and [services.NAME]",
            )
    raw_categories = data.get("categories", {})
    if not isinstance(raw_categories, dict):
        raise fail(("categories",), 'categories must be a table of NAME = "LOW-HIGH"')
    categories: dict[str, Category] = {}
    for name, value in raw_categories.items():
        low, high = _parse_range(value, partial(fail, ("categories", name)))
        categories[name] = Category(name, low, high, lines.get(("categories", name)))

    raw_services = data.get("services", {})
    if not isinstance(raw_services, dict):
        raise fail(("services",), "services must be tables: [services.NAME] with PORT_NAME = PORT")
    ports: list[PlannedPort] = []
    for service, entries in raw_services.items():
        if not isinstance(entries, dict):
            raise fail(
                ("services", service),
                f"service {service!r} must be a table "
                f"([services.{service}] with PORT_NAME = PORT lines), not {entries!r}",
            )
        for name, value in entries.items():
            key = ("services", service, name)
            at = f"{service}.{name}"
            port, category = _parse_entry(at, name, value, categories, partial(fail, key))
            ports.append(PlannedPort(service, name, port, category, line_of(lines, key)))
    return Plan(path, categories, ports)


def _toml_hint(reason: str, text: str, line: int) -> str:
    """tomllib's reason, and what it usually means when that is not obvious."""
    lines = text.splitlines()
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    if reason == r"Illegal character '\n'" and (source.count('"') % 2 or source.count("'") % 2):
        return f"a string is missing its closing quote ({reason})"
    return reason


def _parse_range(value: Any, fail: _Fail) -> tuple[int, int]:
    match = _RANGE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise fail(f'a category is a range written "LOW-HIGH" (e.g. "8000-8999"), not {value!r}')
    low, high = int(match.group(1)), int(match.group(2))
    if not (MIN_PORT <= low <= MAX_PORT and MIN_PORT <= high <= MAX_PORT):
        raise fail(f"range {low}-{high} leaves the ports {MIN_PORT}-{MAX_PORT}")
    if low > high:
        raise fail(f"range {low}-{high} is written backwards; did you mean {high}-{low}?")
    return low, high


def _parse_entry(
    label: str, name: str, value: Any, categories: dict[str, Category], fail: _Fail
) -> tuple[int, str]:
    category: Any = name
    if isinstance(value, dict):
        unknown = sorted(set(value) - _ENTRY_KEYS)
        if unknown:
            raise fail(
                f"{label}: unknown key {unknown[0]!r}; an entry is "
                '{ port = N, category = "NAME" }'
            )
        if "port" not in value:
            raise fail(f'{label}: the entry has no port; write {{ port = N, category = "NAME" }}')
        category = value.get("category", name)
        value = value["port"]
        if not isinstance(category, str):
            raise fail(f"{label}: category must be a category's name, not {category!r}")
    # bool is an int subclass: `http = true` must not become port 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"{label}: a port is a whole number {MIN_PORT}-{MAX_PORT}, not {value!r}")
    if not MIN_PORT <= value <= MAX_PORT:
        raise fail(f"{label}: port {value} is not a usable port ({MIN_PORT}-{MAX_PORT})")
    if category not in categories:
        raise fail(
            f"{label} = {value} is in no category: [categories] declares no "
            f'{category!r}; add {category} = "LOW-HIGH" there or write '
            f'{name} = {{ port = {value}, category = "..." }}'
        )
    return value, category


# ---------------------------------------------------------------------------- checking


def check_plan(plan: Plan, *, ephemeral_range: tuple[int, int] | None) -> list[Finding]:
    """Errors and warnings about a loaded plan, sorted by line.

    Categories may nest (infra 9000-9099 inside grpc 9000-9999), and identical ranges count as
    nested: two names for one range leave no port with an ambiguous owner. Only a partial
    overlap does, and that is the error.
    """
    findings: list[Finding] = []
    cats = list(plan.categories.values())
    for i, first in enumerate(cats):
        for later in cats[i + 1 :]:
            overlap = first.low <= later.high and later.low <= first.high
            if overlap and not (first.contains_range(later) or later.contains_range(first)):
                msg = (
                    f"categories {first.name} ({first.range_text}) and {later.name} "
                    f"({later.range_text}) partly overlap: nest one in the other or part them"
                )
                findings.append(Finding("error", "partial-overlap", msg, plan.path, later.line, ()))

    first_on: dict[int, PlannedPort] = {}
    for p in sorted(plan.ports, key=_line_order):
        earlier = first_on.setdefault(p.port, p)
        if earlier is not p:
            where = f" at line {earlier.line}" if earlier.line is not None else ""
            msg = f"port {p.port} is planned twice: {p.label} here and {earlier.label}{where}"
            names = tuple(dict.fromkeys((earlier.service, p.service)))
            findings.append(Finding("error", "duplicate-port", msg, plan.path, p.line, names))

    for p in plan.ports:
        for severity, code, msg in _port_problems(plan, p, ephemeral_range):
            findings.append(Finding(severity, code, msg, plan.path, p.line, (p.service,)))
    return sorted(findings, key=_line_order)


def _port_problems(
    plan: Plan, p: PlannedPort, ephemeral: tuple[int, int] | None
) -> Iterator[tuple[Literal["error", "warning"], str, str]]:
    entry = f"{p.label} = {p.port}"
    cat = plan.categories[p.category]
    if p.port not in cat:
        msg = f"{entry} is outside its category {cat.name} ({cat.range_text})"
        yield "error", "outside-category", msg
    if ephemeral and ephemeral[0] <= p.port <= ephemeral[1]:
        msg = f"{entry} is in the OS's ephemeral range {ephemeral[0]}-{ephemeral[1]}"
        yield "warning", "ephemeral-port", msg + ": any outgoing connection may be holding it"
    if _is_http(p) and p.port in BROWSER_RESTRICTED_PORTS:
        msg = f"{entry} is an HTTP port that browsers refuse to open (ERR_UNSAFE_PORT)"
        yield "warning", "browser-restricted", msg + ": a webview could not load it"
    owner = _other_owner(p)
    if owner is not None:
        msg = f"{entry} takes the well-known port of {owner}"
        yield "warning", "well-known-port", msg + f": a local {owner} would collide with it"


def _line_order(item: PlannedPort | Finding) -> tuple[bool, int]:
    return (item.line is None, item.line or 0)


def _words(text: str) -> set[str]:
    """A name's words and all of them run together: auth-service -> auth, service, authservice."""
    parts = [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]
    return {*parts, "".join(parts)}


def _is_http(p: PlannedPort) -> bool:
    return bool((_words(p.name) | _words(p.category)) & HTTP_NAMES)


def _other_owner(p: PlannedPort) -> str | None:
    """The well-known service `p.port` belongs to, unless `p` is (an instance of) that service."""
    known = IANA_PORTS.get(p.port)
    if known is None:
        return None
    owner, aliases = known
    names = {re.sub(r"[^a-z0-9]", "", n.lower()) for n in (owner, *aliases)}
    ours = _words(p.service) | _words(p.name) | _words(p.category)
    for word in ours:
        for name in names:
            # "postgres16" and "redis7" are still postgres and redis.
            if word == name or (word.startswith(name) and word[len(name) :].isdigit()):
                return None
    return owner


# ---------------------------------------------------------------------------- next port


def next_port(plan: Plan, category: str, is_free: Callable[[int], bool]) -> int:
    """The lowest port of `category`, at or above its lowest planned port, unused and free.

    "Its planned ports" are those whose category is exactly `category`: grpc's range also holds
    infra's 9000 and 9090, which must not drag grpc's start below its own 9001. Every port the
    plan uses, whatever its category, is skipped. HTTP categories also skip the ports browsers
    refuse, since check_plan would warn about the port proposed.
    """
    cat = plan.categories.get(category)
    if cat is None:
        known = ", ".join(plan.categories) or "none"
        raise PlanError(plan.path, None, f"unknown category {category!r} (categories: {known})")
    own = [p.port for p in plan.ports if p.category == category and p.port in cat]
    start = min(own, default=cat.low)
    used = {p.port for p in plan.ports}
    http = bool(_words(category) & HTTP_NAMES)
    for port in range(start, cat.high + 1):
        if port in used or (http and port in BROWSER_RESTRICTED_PORTS):
            continue
        if is_free(port):
            return port
    raise PlanError(
        plan.path,
        cat.line,
        f"category {category} ({cat.range_text}) has no unused free port from {start} upward",
    )


# ---------------------------------------------------------------------------- starter


_STARTER = """\
# Port plan: which port each service of this project listens on.
#   portd plan check         errors (two services on one port, a port outside its category,
#                            categories that partly overlap) and warnings
#   portd plan next http     the next free port of a category
#   portd plan export        what configs read: env, json, Compose, Nomad, Kubernetes
#
# A category is a range "LOW-HIGH". A range may sit inside another one (infra inside grpc):
# that is how a sub-range is carved out. Ranges that only partly overlap are an error, since a
# port in the overlap would belong to two categories at once.
[categories]
queue = "4000-4999"       # message queues
database = "5000-5999"
cache = "6000-6999"
http = "8000-8999"        # services' HTTP/REST APIs
grpc = "9000-9999"        # services' gRPC APIs
infra = "9000-9099"       # infrastructure admin ports, carved out of grpc
monitoring = "9100-9199"  # metrics and dashboards, carved out of grpc

# One table per service. `http = 8001` names the port "http" and puts it in category "http".
# The long form names the category separately, so one service can hold two ports of one
# category: `console = { port = 9050, category = "infra" }`.
[services.example-service]
http = 8001
grpc = 9201               # above 9000-9199, which infra and monitoring keep
metrics = { port = 9101, category = "monitoring" }

# [services.postgres]
# database = 5432
"""


def starter_plan() -> str:
    return _STARTER
