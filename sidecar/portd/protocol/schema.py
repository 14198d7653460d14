"""The protocol as one JSON Schema document, from which the TypeScript types are generated."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from . import models as m
from .errors import ERRORS_BY_CODE
from .methods import METHODS, NOTIFICATIONS, MethodSpec

_REF = "#/$defs/{model}"


def protocol_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}

    def schema_of(tp: Any) -> dict[str, Any]:
        if tp is None:
            return {"type": "null"}
        schema = TypeAdapter(tp).json_schema(ref_template=_REF, by_alias=False)
        defs.update(schema.pop("$defs", {}))
        if isinstance(tp, type) and issubclass(tp, m.WireModel):
            defs[tp.__name__] = schema
            return {"$ref": _REF.format(model=tp.__name__)}
        return schema

    def call(spec: MethodSpec) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "object",
            "properties": {"params": schema_of(spec.params), "result": schema_of(spec.result)},
            "required": ["params", "result"],
            "additionalProperties": False,
            "x-errors": [cls.code for cls in spec.errors],
        }
        if spec.doc:
            entry["description"] = spec.doc
        return entry

    methods = {name: call(spec) for name, spec in METHODS.items()}
    notifications = {name: schema_of(model) for name, model in NOTIFICATIONS.items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "PortdProtocol",
        "type": "object",
        "properties": {
            "methods": _object("PortdMethods", methods),
            "notifications": _object("PortdNotifications", notifications),
        },
        "required": ["methods", "notifications"],
        "additionalProperties": False,
        "x-error-codes": {str(code): cls.title for code, cls in ERRORS_BY_CODE.items()},
        "$defs": dict(sorted(defs.items())),
    }


def _object(title: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }


# --- the method table: what the dispatcher knows of METHODS before pydantic is imported ---

_METHOD_TABLE_HEADER = '''"""What the dispatcher needs of `methods.METHODS` without importing
pydantic (about 40 ms of a frozen start-up): each method's name, which ones are slow, and,
for the quick methods whose params are flat, pydantic-core's own schema of them and the
model's config. `pydantic_core.SchemaValidator(schema, config)` validates exactly as the
model does.

Generated from the models by `portd schema --method-table`: do not edit. A unit test fails
when this file drifts from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic_core import CoreConfig, CoreSchema

'''


def method_table_source() -> str:
    flat = {
        name: schema
        for name, spec in METHODS.items()
        if not spec.slow and (schema := flat_params_schema(spec.params)) is not None
    }
    slow = sorted(name for name, spec in METHODS.items() if spec.slow)
    return (
        _METHOD_TABLE_HEADER
        + f"METHOD_NAMES = {_literal(tuple(METHODS))}\n\n"
        + f"SLOW_METHODS = frozenset(\n    {_literal(slow, 1)}\n)\n\n"
        + "FLAT_PARAMS: dict[str, tuple[CoreSchema, CoreConfig]] = "
        + f"{_literal(flat)}\n"
    )


def _literal(value: Any, depth: int = 0) -> str:
    """Python source for plain data, one item a line as `ruff format` leaves it."""
    if isinstance(value, dict | list | tuple) and value:
        opening, closing = {dict: ("{", "}"), list: ("[", "]"), tuple: ("(", ")")}[type(value)]
        pad = "    " * (depth + 1)
        items = (
            [f"{_literal(k)}: {_literal(v, depth + 1)}" for k, v in value.items()]
            if isinstance(value, dict)
            else [_literal(v, depth + 1) for v in value]
        )
        body = "".join(f"{pad}{item},\n" for item in items)
        return f"{opening}\n{body}{'    ' * depth}{closing}"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def flat_params_schema(model: type[m.WireModel]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The model's fields schema and config as plain data, or None if validating them takes
    more than data (a nested model's class, a validator function)."""
    model.model_rebuild()
    schema: Any = model.__pydantic_core_schema__
    if schema["type"] != "model" or schema.get("post_init") or schema.get("custom_init"):
        return None
    fields, config = _without_metadata(schema["schema"]), dict(schema["config"])
    return (fields, config) if _is_plain_data(fields) and _is_plain_data(config) else None


def _without_metadata(value: Any) -> Any:
    # `metadata` holds JSON Schema hooks (functions), nothing validation reads.
    if isinstance(value, dict):
        return {k: _without_metadata(v) for k, v in value.items() if k != "metadata"}
    if isinstance(value, list):
        return [_without_metadata(v) for v in value]
    return value


def _is_plain_data(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_data(v) for k, v in value.items())
    if isinstance(value, list):
        return all(map(_is_plain_data, value))
    return value is None or isinstance(value, str | int | float | bool)
