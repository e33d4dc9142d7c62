"""The OpenAPI document: the committed copy is what the server serves, and the whole API keeps to it
(schemathesis against the running daemon over HTTP: no 5xx, every status, content type, header and body
as the document says, invalid requests refused)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import make_config
from tests.helpers import RunningDaemon, http_base
from tests.paths import ROOT
from transferbot.app import apikeys, registry
from transferbot.app.context import App
from transferbot.app.transfers import request_transfer
from transferbot.config import Config
from transferbot.devtools.sink import MailSink

COMMITTED = ROOT / "docs" / "openapi.json"
EXAMPLES = 25  # per operation and generation mode: about 700 requests
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


@pytest.fixture
def config(tmp_path: Path, sink: MailSink) -> Config:
    return make_config(tmp_path, sink.port, api={"rate_limit_per_minute": 0})



def test_the_committed_document_is_the_served_one(daemon: RunningDaemon) -> None:
    served = httpx.get(http_base(daemon) + "/openapi.json").json()
    assert served == json.loads(COMMITTED.read_text()), (
        "docs/openapi.json is out of date: python -m transferbot.http.export > docs/openapi.json")


def test_every_operation_lists_its_problems_as_problem_documents() -> None:
    document = json.loads(COMMITTED.read_text())
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "429"} <= codes, (method, path)
            if method in ("post", "put"):
                assert {"413", "422"} <= codes, (method, path)
            for code, response in operation["responses"].items():
                if int(code) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (method, path, code)
    assert "HTTPValidationError" not in json.dumps(document)
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer", "description": document["components"]["securitySchemes"]["apiKey"][
            "description"]}


@pytest.fixture
def api_schema(world: App) -> Iterator[Any]:
    """The committed document, aimed at a running daemon, calling as an admin key (the case that leaves the
    key out, in negative mode, is sent without it)."""
    registry.add_account(world, "other-isv", "isv", "Other", ["o@other.example.com"])
    request_transfer(world, "ent-r1", "r2")
    key = apikeys.create_key(world, None)[1]
    d = RunningDaemon(world).start()
    try:
        schema = schemathesis.openapi.from_dict(json.loads(COMMITTED.read_text()))
        schema.config.update(base_url=http_base(d), headers={"Authorization": f"Bearer {key}"})
        yield schema
    finally:
        d.stop()


def test_the_api_keeps_to_its_document(api_schema: Any) -> None:
    """Every operation, with data generated from the document (valid and invalid), as an admin would call it.

    The cases are drawn per operation with Hypothesis directly: schemathesis' own pytest fixture loader
    does not run under pytest 9."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14
    for operation, mode in itertools.product(operations, GenerationMode):
        if mode is GenerationMode.NEGATIVE and not operation.path.startswith("/v1/"):
            continue  # nothing to make invalid: no parameters, no body, no key

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  phases=[Phase.explicit, Phase.generate])
        def call(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        call()
