"""The long schemathesis run: every operation of the app's OpenAPI and the seed routes' root
copies, in process, with the same checks as the bounded run in `make test`
(tests/integration/test_openapi_fuzz.py; openapi_fuzzing.CHECKS) but many more examples and fresh
randomness each time. Prints the checks, requests, status counts, time and every finding (an
undeclared 5xx, status, content type or header, a body that breaks its schema, an invalid
request accepted or a valid one refused); exits 1 when there is one.

    .venv/bin/python bench/openapi_fuzz.py [examples per operation and mode, default 100]
"""

from __future__ import annotations

import platform
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from tests.integration.openapi_fuzzing import CHECKS, build_fuzzed_app, fuzz_every_operation  # noqa: E402


def main() -> int:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    home = Path(tempfile.mkdtemp(prefix="trainyard-fuzz-"))
    try:
        report = fuzz_every_operation(build_fuzzed_app(home / "home"), examples, seed=None)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"date: {datetime.now(UTC):%Y-%m-%d}, machine: {platform.machine()}, {platform.platform()}")
    print(f"examples per operation and mode: {examples}")
    print("checks:", ", ".join(check.__name__ for check in CHECKS))
    print(f"operations: {report.operations}, requests: {report.requests}, seconds: {report.seconds:.0f}")
    print("status counts:", dict(sorted(report.status_counts.items())))
    print(f"findings: {len(report.findings)}")
    if report.findings:
        print(report.describe())
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
