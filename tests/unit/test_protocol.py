"""protocol/: the wire contract and its JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from portd.protocol import ERRORS_BY_CODE, PortdError
from portd.protocol.defaults import AllocationConfig
from portd.protocol.methods import METHODS, NOTIFICATIONS
from portd.protocol.models import AllocatePortParams, PortConfig, PortConfigUpdate, PortEvent
from portd.protocol.schema import protocol_schema


def test_port_config_defaults_are_the_original_systems() -> None:
    config = PortConfig()
    assert (config.preferred_port, config.port_range, config.max_retries) == (
        1421,
        (1421, 1500),
        10,
    )
    assert (config.health_check_interval, config.conflict_scan_interval) == (30.0, 2.0)
    assert config.auto_resolve is True and config.app_id == "default"
    assert AllocationConfig.of(config) == AllocationConfig()  # what allocation reads


def test_params_accept_camel_case_as_tauri_invoke_sends_it() -> None:
    params = AllocatePortParams.model_validate({"serviceName": "vite", "preferredPort": 1500})
    assert (params.service_name, params.preferred_port) == ("vite", 1500)


@pytest.mark.parametrize(
    "params",
    [
        {"service_name": "x", "bogus": 1},
        {"service_name": "x", "preferred_port": 0},
        {"service_name": "x", "preferred_port": 70000},
        {"service_name": "x", "preferred_port": "80"},
        {"service_name": ""},
        {},
    ],
)
def test_params_reject_unknown_missing_and_out_of_range_values(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AllocatePortParams.model_validate(params)


def test_port_config_rejects_a_backwards_range() -> None:
    with pytest.raises(ValidationError, match="backwards"):
        PortConfig(port_range=(1500, 1421))


def test_config_update_carries_only_the_fields_given() -> None:
    update = PortConfigUpdate.model_validate({"autoResolve": False})
    assert update.model_dump(exclude_unset=True) == {"auto_resolve": False}


def test_events_leave_out_fields_they_do_not_carry() -> None:
    event = PortEvent(type="PortAvailable", port=1421, timestamp=1)
    assert event.model_dump(exclude_none=True) == {
        "type": "PortAvailable",
        "port": 1421,
        "timestamp": 1,
    }


def test_every_error_code_has_exactly_one_class() -> None:
    assert len(ERRORS_BY_CODE) == len({cls for cls in ERRORS_BY_CODE.values()})
    for code, cls in ERRORS_BY_CODE.items():
        assert issubclass(cls, PortdError) and cls.code == code and cls.title


def test_every_method_names_a_params_model_and_errors_it_may_raise() -> None:
    for name, spec in METHODS.items():
        assert name.islower() and spec.params.model_config.get("extra") == "forbid"
        assert all(err in ERRORS_BY_CODE.values() for err in spec.errors)


def test_schema_documents_every_method_and_notification_with_snake_case_names() -> None:
    schema = protocol_schema()
    methods = schema["properties"]["methods"]["properties"]
    assert set(methods) == set(METHODS)
    assert set(schema["properties"]["notifications"]["properties"]) == set(NOTIFICATIONS)
    allocate = schema["$defs"]["AllocatePortParams"]
    assert set(allocate["properties"]) == {"service_name", "preferred_port"}
    assert allocate["required"] == ["service_name"]
    refs = json.dumps(schema)
    for name in (
        "PortConfig",
        "PortInfo",
        "PortEvent",
        "PortOwner",
        "SystemHealthStatus",
        "HealthCheckResult",
        "Ready",
    ):
        assert f'"#/$defs/{name}"' in refs and name in schema["$defs"]


def test_portd_schema_prints_the_same_document() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "portd", "schema"], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == json.loads(json.dumps(protocol_schema()))


def test_schema_names_each_methods_errors_and_purpose() -> None:
    methods = protocol_schema()["properties"]["methods"]["properties"]
    assert methods["allocate_port"]["x-errors"] == [-32001, -32004]
    assert methods["reclaim_orphan"]["x-errors"] == [-32003]
    assert "lease" in methods["allocate_port"]["description"].lower()
