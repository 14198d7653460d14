"""The protocol as one JSON Schema document, from which the TypeScript types are generated."""

from __future__ import annotations

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
