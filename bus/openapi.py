"""The HTTP port's OpenAPI 3.1 document, generated from the dispatcher's routes and their request schemas.

Path parameters come from the route template; for GET routes the remaining string, integer, number and
boolean fields are query parameters (the action's schema parses and checks them, ``schemas.base.parse_text``);
other methods take a JSON body described by the action's schema. Actions marked public need no token; the rest need
``Authorization: Bearer <JWT>``. Every error is ``{"error": {code, message, retryable, ...}}``.
"""
from __future__ import annotations

import re
from typing import Any

from bus.dispatch import Dispatcher
from bus.errors import ERROR_CODES, HTTP_STATUS
from schemas.base import field_json_schema

QUERY_TYPES = (str, int, float, bool)     # what schemas.base.parse_text reads from a query string
_PARAM = re.compile(r"\{(\w+)(?::path)?\}")

ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "enum": list(ERROR_CODES)}, "message": {"type": "string"},
        "retryable": {"type": "boolean"}, "retry_after_ms": {"type": "integer"}, "details": {"type": "object"}}}},
}


def openapi_document(title: str, version: str, dispatcher: Dispatcher) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {
        "/health": {"get": {"summary": "Health report", "security": [], "operationId": "hub_health",
                            "responses": {"200": _json_response("healthy or degraded"),
                                          "503": _json_response("down")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "operationId": "hub_metrics",
                             "responses": {"200": {"description": "text exposition format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    }
    for method, template, agent, action_name, spec in dispatcher.route_table():
        path = _PARAM.sub(r"{\1}", template)
        paths.setdefault(path, {})[method.lower()] = _operation(method, template, agent, action_name, spec)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
                       "schemas": {"Error": ERROR_SCHEMA}},
        "security": [{"bearer": []}],
    }


def _operation(method: str, template: str, agent: str, action_name: str, spec: Any) -> dict[str, Any]:
    fields = spec.schema.fields
    in_path = _PARAM.findall(template)
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": _string_only(fields[name]) if name in fields else {"type": "string"}}
                  for name in in_path]
    operation: dict[str, Any] = {"operationId": f"{agent}.{action_name}", "tags": [agent],
                                 "summary": spec.doc.splitlines()[0] if spec.doc else f"{agent}.{action_name}",
                                 "parameters": parameters, "responses": _responses()}
    rest = {name: f for name, f in fields.items() if name not in in_path}
    if method == "GET":
        parameters += [{"name": name, "in": "query", "required": f.required, "schema": _query_schema(f)}
                       for name, f in rest.items() if _in_query(f)]
    elif rest:
        body = spec.schema.json_schema()
        body["properties"] = {k: v for k, v in body["properties"].items() if k in rest}
        body["required"] = [k for k in body.get("required", []) if k in rest]
        operation["requestBody"] = {"required": bool(body["required"]),
                                    "content": {"application/json": {"schema": body}}}
    if spec.public:
        operation["security"] = []
    return operation


def _in_query(field: Any) -> bool:
    return field.type in QUERY_TYPES


def _query_schema(field: Any) -> dict[str, Any]:
    """A query value is never null: the field's schema without the null alternative."""
    schema = _string_only(field)
    options = [option for option in schema.get("anyOf", []) if option.get("type") != "null"]
    return {**options[0], **({"description": schema["description"]} if "description" in schema else {})} \
        if len(options) == 1 else schema


def _string_only(field: Any) -> dict[str, Any]:
    schema = field_json_schema(field)
    return next((s for s in schema.get("anyOf", []) if s.get("type") == "string"), schema)


def _responses() -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _json_response("the action's result")}
    for status in sorted({str(s) for s in HTTP_STATUS.values()} | {"408"}):
        responses[status] = {"description": "error", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}}
    return responses


def _json_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {}}}}
