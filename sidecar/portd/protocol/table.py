"""What the dispatcher needs of `methods.METHODS` without importing
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

METHOD_NAMES = (
    "init_port_manager",
    "find_available_port",
    "allocate_port",
    "release_port",
    "is_port_available",
    "port_health_check",
    "check_port_conflicts",
    "handle_port_conflict",
    "get_port_info",
    "get_port_stats",
    "perform_health_check",
    "get_port_owner",
    "attach_process",
    "reclaim_orphan",
    "get_stats",
    "shutdown",
    "load_port_plan",
    "check_port_plan",
    "next_plan_port",
    "resolve_service",
    "watch_service",
    "unwatch_service",
)

SLOW_METHODS = frozenset(
    [
        "attach_process",
        "check_port_conflicts",
        "check_port_plan",
        "get_port_info",
        "get_port_owner",
        "get_port_stats",
        "handle_port_conflict",
        "load_port_plan",
        "next_plan_port",
        "perform_health_check",
        "port_health_check",
        "reclaim_orphan",
        "resolve_service",
        "unwatch_service",
        "watch_service",
    ]
)

FLAT_PARAMS: dict[str, tuple[CoreSchema, CoreConfig]] = {
    "find_available_port": (
        {
            "type": "model-fields",
            "fields": {
                "preferred": {
                    "type": "model-field",
                    "schema": {
                        "type": "default",
                        "schema": {
                            "type": "nullable",
                            "schema": {
                                "type": "int",
                                "strict": True,
                                "ge": 1,
                                "le": 65535,
                            },
                        },
                        "default": None,
                    },
                    "validation_alias": "preferred",
                    "serialization_alias": "preferred",
                },
                "range": {
                    "type": "model-field",
                    "schema": {
                        "type": "default",
                        "schema": {
                            "type": "nullable",
                            "schema": {
                                "type": "tuple",
                                "items_schema": [
                                    {
                                        "type": "int",
                                        "strict": True,
                                        "ge": 1,
                                        "le": 65535,
                                    },
                                    {
                                        "type": "int",
                                        "strict": True,
                                        "ge": 1,
                                        "le": 65535,
                                    },
                                ],
                            },
                        },
                        "default": None,
                    },
                    "validation_alias": "range",
                    "serialization_alias": "range",
                },
            },
            "model_name": "FindAvailablePortParams",
            "computed_fields": [],
        },
        {
            "loc_by_alias": False,
            "extra_fields_behavior": "forbid",
            "validate_by_alias": True,
            "validate_by_name": True,
            "title": "FindAvailablePortParams",
        },
    ),
    "allocate_port": (
        {
            "type": "model-fields",
            "fields": {
                "service_name": {
                    "type": "model-field",
                    "schema": {
                        "type": "str",
                        "strict": True,
                        "min_length": 1,
                        "max_length": 200,
                    },
                    "validation_alias": "serviceName",
                    "serialization_alias": "serviceName",
                },
                "preferred_port": {
                    "type": "model-field",
                    "schema": {
                        "type": "default",
                        "schema": {
                            "type": "nullable",
                            "schema": {
                                "type": "int",
                                "strict": True,
                                "ge": 1,
                                "le": 65535,
                            },
                        },
                        "default": None,
                    },
                    "validation_alias": "preferredPort",
                    "serialization_alias": "preferredPort",
                },
            },
            "model_name": "AllocatePortParams",
            "computed_fields": [],
        },
        {
            "loc_by_alias": False,
            "extra_fields_behavior": "forbid",
            "validate_by_alias": True,
            "validate_by_name": True,
            "title": "AllocatePortParams",
        },
    ),
    "release_port": (
        {
            "type": "model-fields",
            "fields": {
                "service_name": {
                    "type": "model-field",
                    "schema": {
                        "type": "str",
                        "strict": True,
                        "min_length": 1,
                        "max_length": 200,
                    },
                    "validation_alias": "serviceName",
                    "serialization_alias": "serviceName",
                },
            },
            "model_name": "ServiceParams",
            "computed_fields": [],
        },
        {
            "loc_by_alias": False,
            "extra_fields_behavior": "forbid",
            "validate_by_alias": True,
            "validate_by_name": True,
            "title": "ServiceParams",
        },
    ),
    "is_port_available": (
        {
            "type": "model-fields",
            "fields": {
                "port": {
                    "type": "model-field",
                    "schema": {
                        "type": "int",
                        "strict": True,
                        "ge": 1,
                        "le": 65535,
                    },
                    "validation_alias": "port",
                    "serialization_alias": "port",
                },
                "host": {
                    "type": "model-field",
                    "schema": {
                        "type": "default",
                        "schema": {
                            "type": "nullable",
                            "schema": {
                                "type": "str",
                            },
                        },
                        "default": None,
                    },
                    "validation_alias": "host",
                    "serialization_alias": "host",
                },
            },
            "model_name": "IsPortAvailableParams",
            "computed_fields": [],
        },
        {
            "loc_by_alias": False,
            "extra_fields_behavior": "forbid",
            "validate_by_alias": True,
            "validate_by_name": True,
            "title": "IsPortAvailableParams",
        },
    ),
    "get_stats": (
        {
            "type": "model-fields",
            "fields": {},
            "model_name": "NoParams",
            "computed_fields": [],
        },
        {
            "loc_by_alias": False,
            "extra_fields_behavior": "forbid",
            "validate_by_alias": True,
            "validate_by_name": True,
            "title": "NoParams",
        },
    ),
    "shutdown": (
        {
            "type": "model-fields",
            "fields": {},
            "model_name": "NoParams",
            "computed_fields": [],
        },
        {
            "loc_by_alias": False,
            "extra_fields_behavior": "forbid",
            "validate_by_alias": True,
            "validate_by_name": True,
            "title": "NoParams",
        },
    ),
}
