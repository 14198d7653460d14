"""The sidecar's port-plan methods, over the pipes, with the seed's own plan."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.sidecar import RpcError, Sidecar

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ANYCHAT = FIXTURES / "anychat" / "ports.toml"
BROKEN = FIXTURES / "anychat" / "ports-before-minio-fix.toml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_load_port_plan_summarises_the_seeds_table(spawn_sidecar: Callable[..., Sidecar]) -> None:
    summary = spawn_sidecar().call("load_port_plan", path=str(ANYCHAT))
    assert summary["errors"] == 0
    assert summary["services"]["auth-service"] == {"http": 8001, "grpc": 9001}
    assert summary["categories"]["grpc"] == [9000, 9999]
    assert [f["code"] for f in summary["findings"]] == ["well-known-port"]


def test_a_plan_with_a_clash_is_refused_naming_both_services(
    spawn_sidecar: Callable[..., Sidecar],
) -> None:
    with pytest.raises(RpcError) as refused:
        spawn_sidecar().call("load_port_plan", path=str(BROKEN))
    assert refused.value.code == -32005
    (clash,) = [f for f in refused.value.data if f["severity"] == "error"]
    assert set(clash["services"]) == {"minio", "auth-service"} and clash["line"] == 42


def test_check_port_plan_reports_without_loading(spawn_sidecar: Callable[..., Sidecar]) -> None:
    sidecar = spawn_sidecar()
    assert sidecar.call("check_port_plan", path=str(BROKEN))["errors"] == 1
    with pytest.raises(RpcError) as none_loaded:
        sidecar.call("check_port_plan")
    assert none_loaded.value.code == -32005


def test_a_malformed_plan_names_file_and_line(
    spawn_sidecar: Callable[..., Sidecar], tmp_path: Path
) -> None:
    bad = tmp_path / "ports.toml"
    bad.write_text('[categories]\nhttp = "8999-8000"\n')
    with pytest.raises(RpcError) as refused:
        spawn_sidecar().call("load_port_plan", path=str(bad))
    assert refused.value.code == -32005 and refused.value.data == {"path": str(bad), "line": 2}


def test_next_plan_port_follows_the_seeds_rule(spawn_sidecar: Callable[..., Sidecar]) -> None:
    sidecar = spawn_sidecar()
    sidecar.call("load_port_plan", path=str(ANYCHAT))
    assert sidecar.call("next_plan_port", category="http") >= 8012
    with pytest.raises(RpcError) as unknown:
        sidecar.call("next_plan_port", category="nope")
    assert unknown.value.code == -32005


def test_allocation_uses_the_loaded_plans_port_first(
    spawn_sidecar: Callable[..., Sidecar], tmp_path: Path
) -> None:
    planned = free_port()
    plan = tmp_path / "ports.toml"
    plan.write_text(f'[categories]\nhttp = "1024-65535"\n\n[services.api]\nhttp = {planned}\n')
    sidecar = spawn_sidecar()
    sidecar.call("load_port_plan", path=str(plan))
    assert sidecar.call("allocate_port", service_name="api") == planned
    assert sidecar.call("allocate_port", service_name="other") != planned
