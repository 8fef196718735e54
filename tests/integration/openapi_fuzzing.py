"""schemathesis against the app's own OpenAPI, in process (ASGI), with the default tenant's
key; shared by tests/integration/test_openapi_fuzz.py (bounded) and bench/openapi_fuzz.py
(long). Every operation in the schema (core /v1 and the /seeds/NNN copies; the root copies of the
seed routes are hidden from the schema and are the same handlers) gets generated requests,
valid and invalid, and each answer must be no 5xx and must match the schema the route declares.

The app is the real one (SQLite, files under a temp dir, the real services) except for two
ports that would start work outside the request, which a fuzzer must not do hundreds of times:
the JobLauncher (a training per accepted job: minutes of CPU and a process per job) and seed
002's ImportRunner (a thread pulling from whatever storage URL was generated). Both are
replaced by recorders; what the API records up to the launch is exercised as in production.

Each operation is fuzzed on its own with hypothesis, positive (schema-valid) and negative
(schema-invalid) cases; a failed check is recorded and generation goes on, so one run lists
every operation that fails rather than stopping at the first."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import RecordingLauncher
from trainyard.api.app import create_app
from trainyard.api.seeds import SHARED_ROOT_PATHS
from trainyard.bootstrap import Services, _local_adapters, _wire
from trainyard.settings import Settings

# Every check of schemathesis that judges one answer to one generated request. The others need
# what this per-operation run does not make: use_after_free and ensure_resource_availability
# follow a created resource through OpenAPI links (stateful runs; the schema declares none),
# missing_required_header and unsupported_method act only on the coverage phase's cases,
# allow_header_conformance only on OPTIONS, ignored_auth and object_level_authorization only on
# operations with declared security schemes (the app reads its keys itself and declares none;
# tests/integration/test_jobs_api.py and the tenant tests cover keys and other tenants' ids).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]

# Operations (named by path, a seed's without its /seeds/NNN prefix: its root copy is the same)
# whose schema-valid requests are refused for what their schema does not say, so
# positive_data_acceptance cannot apply to them; each refusal is a 4xx naming the problem, and
# every other check holds. Mostly the content of a file, or an id that must exist. Not here:
# POST /v1/datasets/{id}/images and /v1/models/{id}/predict, whose schemas say the body's shape
# (base64 as decoded, bounds, options) and whose routes check an image's content only once the
# dataset or model is found: a generated id names none (404), so the check judges the shape.
SCHEMA_CANNOT_SAY = {
    "/v1/datasets": "an archive of images in class folders (or a .slp); a cursor this API issued",
    "/v1/jobs": "params: a JSON object sent as form text; a decodable video; a cursor this API issued",
    "/v1/models": "a cursor this API issued",
    "/v1/uploads": "size_bytes within the setting max_upload_bytes (a larger one is a 413)",
    "/v1/webhook-endpoints": "a public https URL (no loopback, private or link-local address)",
    "/models/train": "a stored dataset's id; parameters within the core's bounds (ClassifierParams)",
    "/models/feed/{model_id}": "each image either new (image_b64 of an image file, label) or stored (id)",
    "/api/train-network": "base64 of a SLEAP package",
    "/custom/add": "an image file",
    "/custom/train/{tag}": "a tag with at least one positive and one negative image",
    "/predict/custom/{tag}": "an image file",
    "/predict/custom": "an image file",
    "/predict": "an image file (seed 003), base64 of a PNG (seed 004, the root's)",
    "/set_state": "a state tar as /get_state gives",
    "/training": "two CSVs of digit images (785 integer columns)",
    "/starttraining/": "batch_size within the setting seed002_max_batch_size; webhook_url and the"
    " Azure connection string's blob endpoint public https URLs (no loopback, private or link-local"
    " address)",
}


@dataclass
class RecordingImports:
    """Records seed 002's imports instead of contacting the generated storage URLs."""

    submitted: list[str] = field(default_factory=list)

    def submit(
        self, job_id: str, plan: dict[str, Any], credentials: dict[str, str], run_here: Callable[[], None]
    ) -> None:
        self.submitted.append(job_id)


@dataclass
class FuzzedApp:
    app: FastAPI
    services: Services
    api_key: str
    launcher: RecordingLauncher


def build_fuzzed_app(home: Path) -> FuzzedApp:
    """The full app on a fresh home directory, wired through the composition root with the
    two recorders in place of the launcher and the import runner."""
    # Routes that wait for a training (seed 004's /training) or for seed 003's embedder answer at
    # once: nothing is ever trained here.
    settings = Settings(home=home, digits_training_wait_seconds=0, tags_embedder_wait_seconds=0)
    settings = settings.model_copy(update={"home": settings.home.resolve()})
    launcher = RecordingLauncher()
    adapters = dataclasses.replace(
        _local_adapters(settings), launcher=launcher, import_runner=RecordingImports()
    )
    services = _wire(settings, adapters)
    api_key = services.tenants.ensure_default_key(None, settings.home / "api_key")
    # no background work: the reaper and webhook threads would race the fuzzer for no gain
    return FuzzedApp(create_app(services), services, api_key, launcher)


SEED_PREFIX = re.compile(r"^/seeds/(?P<seed>\d{3})(?P<root_path>/.*)$")


def schema_for(fuzzed: FuzzedApp) -> Any:
    """The app's OpenAPI plus the root copies of the seed routes, which the app hides from its
    schema (they are the /seeds/NNN handlers again, but clients call them, so they are fuzzed
    too). The root POST /predict belongs to the seed the setting root_predict names only."""
    spec = json.loads(json.dumps(fuzzed.app.openapi()))  # a copy: the app caches its own
    root_predict = fuzzed.services.settings.root_predict
    for path, operations in list(spec["paths"].items()):
        match = SEED_PREFIX.match(path)
        if match is None:
            continue
        root_path = match["root_path"]
        if root_path in SHARED_ROOT_PATHS and match["seed"] != root_predict:
            continue
        assert root_path not in spec["paths"], f"two seeds serve {root_path} at the root"
        spec["paths"][root_path] = operations
    schema = schemathesis.openapi.from_dict(spec)
    schema.app = fuzzed.app
    return schema


@dataclass
class Finding:
    operation: str
    mode: str
    message: str  # the failed check's message: a 5xx or how the answer breaks its schema
    reproduce: str  # the request as a curl command


@dataclass
class FuzzReport:
    requests: int = 0
    operations: int = 0
    seconds: float = 0.0
    status_counts: dict[int, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def describe(self) -> str:
        return "\n\n".join(f"{f.operation} ({f.mode}): {f.message}\n  {f.reproduce}" for f in self.findings)


def fuzz_every_operation(
    fuzzed: FuzzedApp, examples: int, findings_per_operation: int = 3, seed: int | None = 0
) -> FuzzReport:
    """Fuzzes each operation of the schema, positive then negative, `examples` cases each."""
    schema = schema_for(fuzzed)
    auth = {"Authorization": f"Bearer {fuzzed.api_key}"}
    report = FuzzReport()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        report.operations += 1
        checks = checks_for(operation)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, checks, auth, examples, findings_per_operation, seed, report)
    report.seconds = time.monotonic() - started
    return report


def checks_for(operation: Any) -> list[Any]:
    """CHECKS, less those that cannot apply to this operation. A route that documents a 5xx
    (seed 003's 503 base_model_not_ready, seed 004's chat API errors) is not held to
    not_a_server_error; status_code_conformance still fails any 5xx it does not declare."""
    checks = list(CHECKS)
    if any(str(status).startswith("5") for status in operation.definition.raw.get("responses", {})):
        checks.remove(not_a_server_error)
    match = SEED_PREFIX.match(operation.path)
    if (match["root_path"] if match else operation.path) in SCHEMA_CANNOT_SAY:
        checks.remove(positive_data_acceptance)
    return checks


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    checks: list[Any],
    auth: dict[str, str],
    examples: int,
    findings_per_operation: int,
    seed: int | None,
    report: FuzzReport,
) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    found: list[Finding] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,  # nothing left on disk between runs
        derandomize=seed is not None,  # the bounded run in `make test` is the same every time
        phases=[Phase.explicit, Phase.generate],  # findings are recorded, not shrunk
        suppress_health_check=list(HealthCheck),  # generated bodies are large and often filtered
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            response = case.call_and_validate(headers=auth, checks=checks)
        except (AssertionError, FailureGroup) as failure:  # a failed check, or several
            if len(found) < findings_per_operation:
                found.append(Finding(label, mode.value, str(failure)[:2000], case.as_curl_command(auth)))
            return
        report.requests += 1
        report.status_counts[response.status_code] = report.status_counts.get(response.status_code, 0) + 1

    try:
        run()
    except Unsatisfiable:
        # negative mode on an operation with nothing to make invalid (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE, label
    report.findings.extend(found)
