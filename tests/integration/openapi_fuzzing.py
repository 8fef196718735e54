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
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.helpers import RecordingLauncher
from trainyard.api.app import create_app
from trainyard.bootstrap import Services, _local_adapters, _wire
from trainyard.settings import Settings

CHECKS = [not_a_server_error, response_schema_conformance]


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
    settings = Settings(home=home)
    settings = settings.model_copy(update={"home": settings.home.resolve()})
    launcher = RecordingLauncher()
    adapters = dataclasses.replace(
        _local_adapters(settings), launcher=launcher, import_runner=RecordingImports()
    )
    services = _wire(settings, adapters)
    api_key = services.tenants.ensure_default_key(None, settings.home / "api_key")
    # no background work: the reaper and webhook threads would race the fuzzer for no gain
    return FuzzedApp(create_app(services), services, api_key, launcher)


def schema_for(fuzzed: FuzzedApp) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)


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
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)
    auth = {"Authorization": f"Bearer {fuzzed.api_key}"}
    report = FuzzReport()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        report.operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, auth, examples, findings_per_operation, seed, report)
    report.seconds = time.monotonic() - started
    return report


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
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
            response = case.call_and_validate(headers=auth, checks=CHECKS)
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
