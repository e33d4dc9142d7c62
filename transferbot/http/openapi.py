"""The OpenAPI document: FastAPI's, with every error answered as what it is, a problem document.

FastAPI describes error responses as ``application/json`` and adds a 422 of its own shape to every
operation that takes parameters; here the API's errors become ``application/problem+json`` with
the Problem schema (FastAPI's own 422, for a parameter that does not validate, included). The document is committed as ``docs/openapi.json``; a test fails
when it drifts from what the server serves. To write it again after changing the API::

    python -m transferbot.http.export > docs/openapi.json
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM = "application/problem+json"
FASTAPI_422 = ("HTTPValidationError", "ValidationError")


def install(api: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if api.openapi_schema is None:
            document = get_openapi(title=api.title, version=api.version, openapi_version=api.openapi_version,
                                   description=api.description, routes=api.routes)
            api.openapi_schema = tidy(document)
        return api.openapi_schema

    api.openapi = build  # type: ignore[method-assign]


def _ref(response: dict[str, Any]) -> str:
    return str(response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", ""))


def tidy(document: dict[str, Any]) -> dict[str, Any]:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            for code, response in list(responses.items()):
                ref = _ref(response)
                if code == "422" and ref.endswith("/HTTPValidationError"):
                    responses[code] = {"description": "a parameter is not valid (errors lists it)",
                                       "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
                elif code.isdigit() and int(code) >= 400 and ref.endswith("/Problem"):
                    response["content"] = {PROBLEM: response["content"]["application/json"]}
    text = json.dumps(document.get("paths", {}))
    schemas = document.get("components", {}).get("schemas", {})
    for name in FASTAPI_422:
        if f'"#/components/schemas/{name}"' not in text and name in schemas:
            del schemas[name]
    return document
