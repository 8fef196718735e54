"""schemathesis over every operation of the app's OpenAPI (core /v1 and the /seeds/NNN copies),
in process with the default tenant's key: no answer is a 5xx and every answer matches the
schema its route declares. See openapi_fuzzing.py for what is real and what is recorded (no
training is started, no storage URL contacted).

The example count per operation and mode is bounded (FUZZ_EXAMPLES) and the generation is
derandomised, so `make test` runs the same cases in about a minute; bench/openapi_fuzz.py runs
many more with fresh randomness."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.integration.openapi_fuzzing import build_fuzzed_app, fuzz_every_operation

FUZZ_EXAMPLES = 8
TENANT = "default"


def test_no_server_errors_and_answers_match_their_schemas(tmp_path: Path) -> None:
    fuzzed = build_fuzzed_app(tmp_path / "home")
    report = fuzz_every_operation(fuzzed, FUZZ_EXAMPLES)
    assert report.operations >= 40, "every route of the schema is fuzzed"
    assert report.requests > report.operations * FUZZ_EXAMPLES, "most generated cases were sent"
    assert not report.findings, report.describe()
    assert not any(status >= 500 for status in report.status_counts)


def test_seed_routes_declare_their_own_error_form_not_fastapis(tmp_path: Path) -> None:
    """Regression: the seed routes answer a refused request in their seed's form, but the
    OpenAPI declared FastAPI's {"detail": [...]} for 422, so a seed 003 refusal
    ({"status": "error", "message": ..., "detail": "<text>"}) broke its own schema."""
    fuzzed = build_fuzzed_app(tmp_path / "home")
    paths = fuzzed.app.openapi()["paths"]
    assign = paths["/seeds/003/custom/assign/{image_id}/{sample_type}/{tag}"]["get"]["responses"]
    declared = assign["422"]["content"]["application/json"]["schema"]
    assert declared["properties"]["detail"] == {"type": "string"}
    assert set(declared["required"]) == {"status", "message", "detail"}
    assert assign["4XX"] == assign["422"], "404s and 400s come in the same form"
    # a form that is not JSON (seed 004's training page renders HTML) is declared as such
    html_routes = [
        operation
        for path, methods in paths.items()
        if path.startswith("/seeds/004/")
        for operation in methods.values()
        if "text/html" in operation.get("responses", {}).get("422", {}).get("content", {})
    ]
    assert html_routes


def test_core_routes_declare_the_error_body_they_send(tmp_path: Path) -> None:
    """Regression: the core routes declared FastAPI's 422 {"detail": [...]} while every refusal
    is {"error": code, "message": text}; the fuzzer's schema check could not see it because
    `detail` is optional there. Now the declared body is the one sent, with both keys required."""
    fuzzed = build_fuzzed_app(tmp_path / "home")
    spec = fuzzed.app.openapi()
    refused = spec["paths"]["/v1/jobs"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert refused == {"$ref": "#/components/schemas/ErrorBody"}
    assert set(spec["components"]["schemas"]["ErrorBody"]["required"]) == {"error", "message"}


@pytest.mark.parametrize("dataset_id", ["", "d" * 101, "²"])
def test_seed000_train_refuses_impossible_dataset_ids_with_4xx(tmp_path: Path, dataset_id: str) -> None:
    """Regression (found by the long fuzz run): an empty or over-long string dataset_id reached
    the core request's own validation inside the handler and answered 500; "²" passes
    str.isdigit() but not int(). Now each is a 4xx in seed 000's form, and nothing is recorded."""
    fuzzed = build_fuzzed_app(tmp_path / "home")
    with TestClient(fuzzed.app) as client:
        answer = client.post(
            "/seeds/000/models/train",
            json={"dataset_id": dataset_id, "model_name": "m"},
            headers={"Authorization": f"Bearer {fuzzed.api_key}"},
        )
    assert 400 <= answer.status_code < 500, answer.text
    assert "dataset" in answer.json()["message"]
    assert fuzzed.launcher.launched == []
    assert fuzzed.services.store.list_jobs(TENANT, 10, None).items == []
