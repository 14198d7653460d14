"""Specification of portd.plan_export: a port plan as Compose, Nomad and Kubernetes files.

The subject is AnyChat's port table (tests/fixtures/anychat/ports.toml); odd plans check that
names are made valid for each tool. The Nomad job is read back with a small parser for the
HCL this module writes (blocks, labels, one attribute a line), and with python-hcl2 where it is
installed; the YAML is read back with PyYAML, and those tests are skipped where it is not.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

try:
    from portd import plan_export
except ModuleNotFoundError:  # running from a checkout where portd is not installed yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sidecar"))
    from portd import plan_export

from portd import plan as plan_mod
from portd.cli import build_parser
from portd.plan import Plan, load_plan, parse_plan
from portd.plan_export import FORMATS, default_job_name, export_plan

ANYCHAT = Path(__file__).resolve().parents[1] / "fixtures" / "anychat" / "ports.toml"
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
IANA_SVC_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
NOMAD_LABEL = re.compile(r"[A-Za-z0-9_]+")
NOMAD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# Service and port names that no tool takes as they are.
ODD_PLAN = """\
[categories]
http = "1-65535"

[services."Auth_Service"]
http = 8001
"HTTP Admin Interface Port" = { port = 8101, category = "http" }

[services.auth-service]
http = 8002
http-admin = { port = 8102, category = "http" }
http_admin = { port = 8103, category = "http" }
"8080" = { port = 8080, category = "http" }

[services."9lives"]
http = 8003

[services."yes"]
on = { port = 8004, category = "http" }

[services."my app/with a name far longer than the sixty-three characters that kubernetes allows"]
"" = { port = 8005, category = "http" }

[services."my app/with a name far longer than the sixty-three characters that kubernetes allows!"]
http = 8006
"""


@pytest.fixture(scope="module")
def seed() -> Plan:
    return load_plan(ANYCHAT)


@pytest.fixture(scope="module")
def odd() -> Plan:
    return parse_plan(ODD_PLAN, "odd.toml")


# ---------------------------------------------------------------------------- the module


def test_the_plan_module_still_offers_export_plan() -> None:
    assert plan_mod.export_plan is export_plan
    assert "export_plan" in plan_mod.__all__


def test_every_format_is_one_the_cli_offers_and_only_those() -> None:
    assert set(FORMATS) == {"env", "json", "compose", "nomad", "k8s"}
    for fmt in FORMATS:
        assert build_parser().parse_args(["plan", "export", "--format", fmt]).format == fmt
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["plan", "export", "--format", "yaml"])
    assert exit_info.value.code == 2


def test_an_unknown_format_or_a_job_name_for_another_format_is_a_value_error(seed: Plan) -> None:
    with pytest.raises(ValueError, match="'hcl': use env, json, compose, nomad, k8s"):
        export_plan(seed, "hcl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="job name is for the nomad format, not k8s"):
        export_plan(seed, "k8s", job="chat")


# ---------------------------------------------------------------------------- nomad


@dataclass
class Block:
    type: str
    labels: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def all(self, type_: str) -> list[Block]:
        return [b for b in self.blocks if b.type == type_]

    def one(self, type_: str, *labels: str) -> Block:
        [block] = [b for b in self.all(type_) if b.labels[: len(labels)] == list(labels)]
        return block


def parse_hcl(text: str) -> Block:
    """The HCL this module writes: `TYPE "LABEL"... {` / `}` / `NAME = VALUE`, one a line.

    Values that are JSON (strings, numbers, lists of strings) are decoded; expressions such as
    `map(string)` are kept as their text. Anything else fails the test.
    """
    root = Block("", [])
    stack = [root]
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "}":
            stack.pop()
            assert stack, f"line {number}: a closing brace too many"
            continue
        opening = re.fullmatch(r'([a-z_]+)((?:\s+"(?:[^"\\]|\\.)*")*)\s*\{', line)
        if opening:
            labels = [json.loads(s) for s in re.findall(r'"(?:[^"\\]|\\.)*"', opening.group(2))]
            block = Block(opening.group(1), labels)
            stack[-1].blocks.append(block)
            stack.append(block)
            continue
        attribute = re.fullmatch(r"([a-z_]+)\s*=\s*(.+)", line)
        assert attribute, f"line {number} is neither a block nor an attribute: {raw!r}"
        name, value = attribute.groups()
        assert name not in stack[-1].attrs, f"line {number}: {name} is set twice"
        try:
            stack[-1].attrs[name] = json.loads(value)
        except json.JSONDecodeError:
            stack[-1].attrs[name] = value
    assert stack == [root], "a block is never closed"
    return root


def client_config(text: str) -> str:
    """The commented-out client block at the end of the Nomad export, uncommented."""
    start = text.index("# client {")
    lines = text[start:].splitlines()
    assert all(line.startswith("#") for line in lines), "the client block is all comments"
    return "\n".join(line[2:] for line in lines) + "\n"


def test_nomad_export_gives_each_planned_port_a_static_port_in_its_services_group(
    seed: Plan,
) -> None:
    [job] = parse_hcl(export_plan(seed, "nomad")).all("job")
    assert job.labels == ["anychat"]
    assert [g.labels[0] for g in job.all("group")] == seed.services()
    for group in job.all("group"):
        [network] = group.all("network")
        ports = {b.labels[0]: b.attrs for b in network.all("port")}
        planned = seed.ports_of(group.labels[0])
        assert ports == {p.name: {"static": p.port} for p in planned}
    assert job.one("group", "auth-service").one("network").one("port", "grpc").attrs == {
        "static": 9001
    }


def test_nomad_tasks_publish_their_groups_ports_and_take_their_image_from_a_variable(
    seed: Plan,
) -> None:
    root = parse_hcl(export_plan(seed, "nomad"))
    assert root.one("variable", "images").attrs["type"] == "map(string)"
    for group in root.one("job").all("group"):
        name = group.labels[0]
        [task] = group.all("task")
        assert task.labels == [name] and task.attrs == {"driver": "docker"}
        labels = [b.labels[0] for b in group.one("network").all("port")]
        assert task.one("config").attrs == {
            "image": f'var.images["{name}"]',
            "ports": labels,
        }


def test_nomad_client_block_reserves_every_planned_port_and_stays_a_comment(seed: Plan) -> None:
    text = export_plan(seed, "nomad")
    job_end = text.rindex("\n}\n") + 3
    assert text[job_end:].strip().startswith("#"), "after the job, only comments"
    assert "client" not in [b.type for b in parse_hcl(text).blocks], "the job file stays a job"

    reserved = parse_hcl(client_config(text)).one("client").one("reserved").attrs
    ports: set[int] = set()
    for part in reserved["reserved_ports"].split(","):
        low, _, high = part.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    assert ports == {p.port for p in seed.ports}
    assert "8001-8011" in reserved["reserved_ports"].split(",")


def test_nomad_reserved_ports_are_sorted_with_runs_written_as_ranges() -> None:
    plan = parse_plan(
        '[categories]\nhttp = "1-65535"\n'
        '[services.a]\nhttp = 8005\nb = { port = 8001, category = "http" }\n'
        '[services.b]\nhttp = 8003\nc = { port = 8002, category = "http" }\n'
        'd = { port = 9000, category = "http" }\n'
    )
    reserved = parse_hcl(client_config(export_plan(plan, "nomad"))).one("client").one("reserved")
    assert reserved.attrs == {"reserved_ports": "8001-8003,8005,9000"}


def test_nomad_job_is_named_after_the_project_folder_for_ports_toml_else_after_the_file(
    tmp_path: Path, seed: Plan
) -> None:
    assert default_job_name(seed) == "anychat"
    other = tmp_path / "chat ports.v2.toml"
    other.write_text(ANYCHAT.read_text(encoding="utf-8"), encoding="utf-8")
    assert default_job_name(load_plan(other)) == "chat-ports.v2"
    named = parse_hcl(export_plan(seed, "nomad", job="anychat-dev"))
    assert named.one("job").labels == ["anychat-dev"]
    with pytest.raises(ValueError, match="'two words' is not a Nomad job name"):
        export_plan(seed, "nomad", job="two words")


def test_nomad_labels_and_names_are_made_valid_and_unique(odd: Plan) -> None:
    text = export_plan(odd, "nomad")
    job = parse_hcl(text).one("job")
    assert job.labels == ["odd"]
    groups = [g.labels[0] for g in job.all("group")]
    assert len(groups) == len(odd.services()) == len(set(groups))
    assert all(NOMAD_NAME.fullmatch(g) for g in groups), groups
    for group in job.all("group"):
        labels = [b.labels[0] for b in group.one("network").all("port")]
        assert len(labels) == len(set(labels)) and all(map(NOMAD_LABEL.fullmatch, labels))
        assert group.one("task").labels == group.labels
    auth = job.one("group", "auth-service").one("network")
    assert {b.labels[0]: b.attrs["static"] for b in auth.all("port")} == {
        "http": 8002,
        "http_admin_2": 8102,
        "http_admin": 8103,
        "8080": 8080,
    }


def test_nomad_export_is_hcl_that_a_real_hcl2_parser_reads(seed: Plan) -> None:
    hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is not installed")
    parsed = hcl2.loads(export_plan(seed, "nomad"))
    [job] = parsed["job"]
    [(name, body)] = job.items()
    assert name.strip('"') == "anychat" and len(body["group"]) == len(seed.services())
    client = hcl2.loads(client_config(export_plan(seed, "nomad")))
    assert "client" in client


def test_nomad_export_of_a_plan_without_services_is_one_comment() -> None:
    empty = parse_plan('[categories]\nhttp = "8000-8999"\n', "empty.toml")
    assert export_plan(empty, "nomad") == (
        "# empty.toml plans no ports: there is no Nomad job to write.\n"
    )


# ---------------------------------------------------------------------------- kubernetes


def yaml_documents(text: str) -> list[Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (a dev dependency)")
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def assert_valid_services(docs: list[Any]) -> None:
    """What the Kubernetes API server checks of these Services' names and ports."""
    names = [doc["metadata"]["name"] for doc in docs]
    assert len(names) == len(set(names)), "Service names are unique in a namespace"
    for doc in docs:
        assert doc["apiVersion"] == "v1" and doc["kind"] == "Service"
        name = doc["metadata"]["name"]
        assert isinstance(name, str) and DNS_1035.fullmatch(name) and len(name) <= 63, name
        assert doc["spec"]["selector"] == {"app": name}
        ports = doc["spec"]["ports"]
        port_names = [p["name"] for p in ports]
        assert len(port_names) == len(set(port_names)), f"{name}: port names are unique"
        for port in ports:
            assert set(port) == {"name", "port", "targetPort", "protocol"}
            svc = port["name"]
            assert isinstance(svc, str) and IANA_SVC_NAME.fullmatch(svc), svc
            assert len(svc) <= 15 and "--" not in svc and re.search("[a-z]", svc), svc
            assert 1 <= port["port"] <= 65535 and port["targetPort"] == port["port"]
            assert port["protocol"] == "TCP"


def test_k8s_export_is_one_service_per_planned_service_with_its_ports_by_name(
    seed: Plan,
) -> None:
    docs = yaml_documents(export_plan(seed, "k8s"))
    assert_valid_services(docs)
    assert [doc["metadata"]["name"] for doc in docs] == seed.services()
    for doc in docs:
        planned = seed.ports_of(doc["metadata"]["name"])
        assert doc["spec"]["ports"] == [
            {"name": p.name, "port": p.port, "targetPort": p.port, "protocol": "TCP"}
            for p in planned
        ]


def test_k8s_names_follow_the_kubernetes_rules_whatever_the_plan_calls_things(odd: Plan) -> None:
    text = export_plan(odd, "k8s")
    docs = yaml_documents(text)
    assert len(docs) == len(odd.services())
    assert_valid_services(docs)
    names = [doc["metadata"]["name"] for doc in docs]
    assert names[:4] == ["auth-service-2", "auth-service", "svc-9lives", "yes"], "valid names stay"
    assert len(names[4]) == 63 and names[5] == names[4][:61] + "-2"
    auth = {p["name"]: p["port"] for p in docs[1]["spec"]["ports"]}
    assert auth == {"http": 8002, "http-admin": 8102, "http-admin-2": 8103, "port-8080": 8080}
    assert [p["name"] for p in docs[0]["spec"]["ports"]] == ["http", "http-admin-inte"]
    assert [p["name"] for p in docs[3]["spec"]["ports"]] == ["on"], "not the boolean true"
    assert [p["name"] for p in docs[4]["spec"]["ports"]] == ["port"]
    comments = [line for line in text.splitlines() if line.startswith("# service ")]
    assert comments[0] == '# service "Auth_Service" in the plan'
    assert len(comments) == 4, "a comment for each renamed service, and only for those"


def test_k8s_export_of_a_plan_without_services_has_no_documents() -> None:
    empty = parse_plan('[categories]\nhttp = "8000-8999"\n')
    assert yaml_documents(export_plan(empty, "k8s")) == []


# ---------------------------------------------------------------------------- compose


def test_compose_export_is_an_override_with_ports_only_and_says_how_to_use_it(seed: Plan) -> None:
    text = export_plan(seed, "compose")
    assert "#   docker compose -f compose.yaml -f THIS_FILE up" in text.splitlines()
    assert yaml_documents(text) == [
        {
            "services": {
                service: {"ports": [f"{p.port}:{p.port}" for p in seed.ports_of(service)]}
                for service in seed.services()
            }
        }
    ]


def test_module_docstring_explains_each_format() -> None:
    doc = plan_export.__doc__ or ""
    for fmt in FORMATS:
        assert f"- **{fmt}**" in doc, fmt
