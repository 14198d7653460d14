"""`portd plan export`: a port plan as what other tools read, in the plan's order.

- **env**: `SERVICE_NAME_PORT=N` lines, sorted, for shells and `.env` files.
- **json**: `{service: {port name: port}}`.
- **compose**: a Compose *override* file, `ports: ["N:N"]` for each service. It names no image,
  since the plan knows none: it goes on top of the project's own Compose file
  (`docker compose -f compose.yaml -f ports.yaml up`), whose images it leaves alone. A
  placeholder image would make it a file Compose accepts on its own, but would also replace
  the real image of every service it overrides.
- **nomad**: a Nomad job, one `group` per service whose `network` block gives each planned
  port as a static port, labelled with the port's name. Each group has a Docker `task` stub
  whose image comes from the input variable `images` (a map of group name to image): a group
  needs a task to be a job Nomad validates, and an image left out is an error when the job is
  read (`nomad job validate -var-file=FILE`), not a pull failure on a client. Users who keep
  their own job paste the network blocks. After the job comes a commented-out
  `client { reserved { reserved_ports } }` block: it is agent configuration, which a job file
  cannot hold (so it stays a comment, and the file stays a valid job), and it is for the other
  case, services that run outside Nomad on a host. It is never for the clients that run this
  job: Nomad does not place a static port that the client reserves ("reserved port collision").
- **k8s**: one `v1` `Service` per service, `---` separated, selecting the pods labelled
  `app: NAME`, with a named TCP port (port = targetPort = the planned port) per planned port.

Names are made valid for each tool: Nomad port labels ([A-Za-z0-9_]) and names, Kubernetes
DNS-1035 Service names (63 characters) and IANA service names for ports (15 characters), each
unique in its scope; a name that is valid as the plan writes it is kept, the others yield.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from portd.plan import Plan, PlannedPort

__all__ = ["FORMATS", "ExportFormat", "default_job_name", "export_plan", "nomad_job_name"]

ExportFormat = Literal["env", "json", "compose", "nomad", "k8s"]
FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)
_DEFAULT_STEM = "ports"  # the default plan file, ports.toml, says nothing about the project
_NOMAD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Plain YAML scalars that YAML 1.1 (Kubernetes' parser, and PyYAML) reads as booleans or null.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})


def export_plan(plan: Plan, fmt: ExportFormat, *, job: str | None = None) -> str:
    """The plan in format `fmt`; `job` names the Nomad job (default: `default_job_name`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use {', '.join(FORMATS)}")
    if job is not None and fmt != "nomad":
        raise ValueError(f"a job name is for the nomad format, not {fmt}")
    if fmt == "env":
        lines = sorted(f"{_env_name(p)}={p.port}" for p in plan.ports)
        return "".join(line + "\n" for line in lines)
    if fmt == "json":
        table = {s: {p.name: p.port for p in plan.ports_of(s)} for s in plan.services()}
        return json.dumps(table, indent=2) + "\n"
    if fmt == "compose":
        return _compose(plan)
    if fmt == "nomad":
        return _nomad(plan, default_job_name(plan) if job is None else nomad_job_name(job))
    return _k8s(plan)


def _source(plan: Plan) -> str:
    name = os.path.basename(plan.path)
    return name if name.isprintable() else json.dumps(name)  # it goes into a comment line


# ---------------------------------------------------------------------------- env, compose


def _env_name(p: PlannedPort) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "_", f"{p.service}_{p.name}").strip("_").upper() + "_PORT"
    return f"_{name}" if name[0].isdigit() else name  # shells reject names starting with a digit


def _compose(plan: Plan) -> str:
    out = [
        f"# Port mappings from {_source(plan)} (host port = container port): an override",
        "# for the project's Compose file, which names the images:",
        "#   docker compose -f compose.yaml -f THIS_FILE up",
        "services:",
    ]
    for service in plan.services():
        out += [f"  {_yaml_key(service)}:", "    ports:"]
        out += [f'      - "{p.port}:{p.port}"' for p in plan.ports_of(service)]
    return "\n".join(out) + "\n"


def _yaml_key(name: str) -> str:
    # Compose service names are [a-zA-Z0-9._-]; anything else is quoted (JSON strings are YAML).
    return name if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) else json.dumps(name)


# ---------------------------------------------------------------------------- nomad


def nomad_job_name(name: str) -> str:
    """`name` if Nomad takes it as a job name (we keep to [A-Za-z0-9._-]), else ValueError."""
    if not _NOMAD_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a Nomad job name: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def default_job_name(plan: Plan) -> str:
    """The plan file's stem, or for `ports.toml` the name of the folder it is in."""
    stem = os.path.splitext(os.path.basename(plan.path))[0]
    if stem == _DEFAULT_STEM:
        stem = os.path.basename(os.path.dirname(os.path.abspath(plan.path))) or stem
    return _nomad_name(stem) or _DEFAULT_STEM


def _nomad_name(name: str) -> str:
    return _clean(name, r"[^A-Za-z0-9._-]+", "-", "._-")


def _nomad(plan: Plan, job: str) -> str:
    services = plan.services()
    if not services:
        return f"# {_source(plan)} plans no ports: there is no Nomad job to write.\n"
    groups = _unique([_nomad_name(s) or "service" for s in services], services)
    out = [
        f"# Nomad job from {_source(plan)}: a group per service, each planned port a static port.",
        "# Paste the network blocks into your own job, or run this one with a variable file",
        '# that gives each group\'s image, images = { "GROUP" = "IMAGE", ... }:',
        "#   nomad job run -var-file=images.vars.hcl THIS_FILE",
        "",
        'variable "images" {',
        "  type        = map(string)",
        '  description = "The container image of each group, by group name."',
        "}",
        "",
        f"job {_hcl(job)} {{",
    ]
    for index, (service, group) in enumerate(zip(services, groups, strict=True)):
        ports = plan.ports_of(service)
        names = [p.name for p in ports]
        labels = _unique(
            [_clean(n, r"[^A-Za-z0-9_]+", "_", "_") or "port" for n in names], names, sep="_"
        )
        out += [""] if index else []
        out += [f"  group {_hcl(group)} {{", "    network {"]
        for p, label in zip(ports, labels, strict=True):
            out += [f"      port {_hcl(label)} {{", f"        static = {p.port}", "      }"]
        out += [
            "    }",
            "",
            f"    task {_hcl(group)} {{",
            '      driver = "docker"',
            "",
            "      config {",
            f"        image = var.images[{_hcl(group)}]",
            f"        ports = [{', '.join(map(_hcl, labels))}]",
            "      }",
            "    }",
            "  }",
        ]
    out += [
        "}",
        "",
        "# Where these services run outside Nomad on a host, its client's agent configuration",
        "# can keep Nomad from giving their ports to any task. Not on the clients that run the",
        "# job above: Nomad never places a static port the client reserves.",
        "# client {",
        "#   reserved {",
        f"#     reserved_ports = {_hcl(_port_ranges(p.port for p in plan.ports))}",
        "#   }",
        "# }",
    ]
    return "\n".join(out) + "\n"


def _port_ranges(ports: Iterable[int]) -> str:
    """Sorted ports, runs written as LOW-HIGH: "2112,8001-8011,9090-9091"."""
    runs: list[list[int]] = []
    for port in sorted(set(ports)):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)


def _hcl(text: str) -> str:
    # A JSON string is an HCL string once template sequences (${, %{) are escaped.
    return json.dumps(text).replace("${", "$${").replace("%{", "%%{")


# ---------------------------------------------------------------------------- kubernetes


def _k8s(plan: Plan) -> str:
    services = plan.services()
    out = [
        f"# Kubernetes Services from {_source(plan)}: one per service, each planned port a named",
        "# TCP port (port = targetPort = the planned port), selecting the pods labelled app: NAME.",
    ]
    names = _unique(map(_dns_label, services), services, limit=63)
    for service, name in zip(services, names, strict=True):
        ports = plan.ports_of(service)
        port_names = _unique((_port_name(p.name) for p in ports), (p.name for p in ports), limit=15)
        out += ["---"]
        if name != service:
            out += [f"# service {json.dumps(service)} in the plan"]
        out += [
            "apiVersion: v1",
            "kind: Service",
            "metadata:",
            f"  name: {_yaml_str(name)}",
            "spec:",
            "  selector:",
            f"    app: {_yaml_str(name)}",
            "  ports:",
        ]
        for p, port_name in zip(ports, port_names, strict=True):
            out += [
                f"    - name: {_yaml_str(port_name)}",
                f"      port: {p.port}",
                f"      targetPort: {p.port}",
                "      protocol: TCP",
            ]
    return "\n".join(out) + "\n"


def _dns_label(name: str) -> str:
    """A DNS-1035 label: [a-z]([-a-z0-9]*[a-z0-9])?, at most 63 characters."""
    label = _clean(name.lower(), r"[^a-z0-9]+", "-", "-")
    if not label[:1].isalpha():
        label = f"svc-{label}" if label else "service"
    return label[:63].rstrip("-")


def _port_name(name: str) -> str:
    """An IANA_SVC_NAME: [a-z0-9-], a letter among them, no "--", at most 15 characters."""
    label = _clean(name.lower(), r"[^a-z0-9]+", "-", "-")[:15].rstrip("-")
    if not re.search(r"[a-z]", label):
        label = f"port-{label}"[:15].rstrip("-") if label else "port"
    return label


def _yaml_str(text: str) -> str:
    plain = re.fullmatch(r"[a-z][a-z0-9-]*", text) and text not in _YAML_WORDS
    return text if plain else json.dumps(text)


# ---------------------------------------------------------------------------- names


def _clean(name: str, bad: str, replacement: str, strip: str) -> str:
    return re.sub(bad, replacement, name).strip(strip)


def _unique(
    names: Iterable[str], originals: Iterable[str], *, sep: str = "-", limit: int | None = None
) -> list[str]:
    """`names` (made from `originals`, which are unique) made unique: a name that is its original
    keeps it; any other that is taken gets a suffix (-2, -3, ...), kept within `limit`."""
    pairs = list(zip(names, originals, strict=True))
    taken = {name for name, original in pairs if name == original}
    result: list[str] = []
    for name, original in pairs:
        candidate, n = name, 1
        while name != original and candidate in taken:
            n += 1
            suffix = f"{sep}{n}"
            base = name if limit is None else name[: limit - len(suffix)].rstrip(sep)
            candidate = base + suffix
        taken.add(candidate)
        result.append(candidate)
    return result
