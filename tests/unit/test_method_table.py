"""protocol/table.py: the dispatcher's view of METHODS, generated from the models, which
checks flat params with pydantic-core alone, exactly as the models do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from portd.protocol import models as m
from portd.protocol.errors import InvalidParams, wire_errors
from portd.protocol.methods import METHODS
from portd.protocol.schema import flat_params_schema, method_table_source
from portd.protocol.table import FLAT_PARAMS, METHOD_NAMES, SLOW_METHODS
from portd.rpc.dispatch import Dispatcher, Params

TABLE = Path(__file__).parents[2] / "sidecar/portd/protocol/table.py"

# Good and bad params for each flat method: names and aliases, missing, unknown and
# mistyped fields, bounds, lax-mode lookalikes ("1421", 1421.0, true) that strict fields
# refuse, nulls and wrong containers.
SAMPLES: list[Any] = [
    {},
    {"service_name": "vite"},
    {"serviceName": "vite"},
    {"service_name": "vite", "serviceName": "api"},
    {"service_name": "vite", "preferred_port": 1500},
    {"serviceName": "vite", "preferredPort": None},
    {"service_name": ""},
    {"service_name": "x" * 200},
    {"service_name": "x" * 201},
    {"service_name": "é" * 200},
    {"service_name": 7},
    {"service_name": None},
    {"service_name": b"vite"},
    {"service_name": "vite", "preferred_port": 70000},
    {"service_name": "vite", "preferred_port": 0},
    {"service_name": "vite", "preferred_port": "1421"},
    {"service_name": "vite", "preferred_port": 1421.0},
    {"service_name": "vite", "preferred_port": True},
    {"service_name": "vite", "extra": 1},
    {"port": 1421},
    {"port": "1421"},
    {"port": 1421.0},
    {"port": 65535, "host": "127.0.0.1"},
    {"port": 65536},
    {"port": -1, "host": 5},
    {"preferred": 2000, "range": [2000, 2010]},
    {"preferred": "2000"},
    {"range": [2000]},
    {"range": [2000, 2010, 2020]},
    {"range": [2000, "2010"]},
    {"range": ["2000", 2010]},
    {"range": {"low": 1}},
    {"preferred": None, "range": None},
]


def outcome(validate: Any, params: Any) -> tuple[str, Any]:
    try:
        return "ok", validate(params)
    except ValidationError as exc:
        return "error", (exc.title, wire_errors(exc))


def test_the_table_is_generated_from_the_models() -> None:
    assert TABLE.read_text() == method_table_source(), (
        "protocol/table.py drifted from the models: "
        "portd schema --method-table > sidecar/portd/protocol/table.py"
    )


def test_portd_schema_prints_the_method_table() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "portd", "schema", "--method-table"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == method_table_source()


def test_the_table_names_every_method_and_the_slow_ones() -> None:
    assert tuple(METHODS) == METHOD_NAMES
    assert {name for name, spec in METHODS.items() if spec.slow} == SLOW_METHODS


def test_the_quick_calls_of_an_apps_start_have_flat_params() -> None:
    assert {"allocate_port", "release_port", "is_port_available"} <= set(FLAT_PARAMS)
    assert not set(FLAT_PARAMS) & SLOW_METHODS


def test_params_with_nested_models_or_validators_are_not_flat() -> None:
    class Checked(m.WireModel):
        name: str

        @field_validator("name")
        @classmethod
        def _upper(cls, value: str) -> str:
            return value.upper()

    assert flat_params_schema(m.InitPortManagerParams) is None  # a nested PortConfigUpdate
    assert flat_params_schema(m.PortConfig) is None  # a model validator
    assert flat_params_schema(Checked) is None
    assert "init_port_manager" not in FLAT_PARAMS


@pytest.mark.parametrize("method", sorted(FLAT_PARAMS))
def test_flat_params_are_validated_exactly_as_the_model_does(method: str) -> None:
    model: type[BaseModel] = METHODS[method].params
    flat = Dispatcher({name: print for name in METHOD_NAMES})._flat[method]
    accepted = 0
    for params in SAMPLES:
        kind, flat_value = outcome(flat.validate_python, params)
        model_kind, model_value = outcome(model.model_validate, params)
        assert kind == model_kind, params
        if kind == "ok":
            accepted += 1
            fields, _, _ = flat_value
            assert fields == model_value.model_dump(), params
        else:
            assert flat_value == model_value, params
    assert accepted  # each method saw good params, not only bad ones


def test_the_dispatcher_hands_flat_params_to_handlers_as_fields() -> None:
    seen: list[Any] = []
    handlers: dict[str, Any] = {name: seen.append for name in METHOD_NAMES}
    dispatcher = Dispatcher(handlers)
    dispatcher.answer_now(
        {"jsonrpc": "2.0", "id": 1, "method": "allocate_port", "params": {"serviceName": "vite"}}
    )
    dispatcher.answer_now({"jsonrpc": "2.0", "id": 2, "method": "init_port_manager"})
    flat, nested = seen
    assert isinstance(flat, Params) and (flat.service_name, flat.preferred_port) == ("vite", None)
    assert isinstance(nested, m.InitPortManagerParams) and nested.config is None


def test_flat_params_errors_are_invalid_params_with_pydantics_list() -> None:
    dispatcher = Dispatcher({name: print for name in METHOD_NAMES})
    with pytest.raises(InvalidParams) as raised:
        dispatcher._accept(
            {"jsonrpc": "2.0", "id": 1, "method": "release_port", "params": {"service_name": 3}}
        )
    assert raised.value.data == outcome(m.ServiceParams.model_validate, {"service_name": 3})[1][1]
