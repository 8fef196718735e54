"""Cold start of the Lambda API handler vs a bare FastAPI + Mangum handler.

Each sample is a fresh interpreter (as a Lambda cold start is) that measures
  import: importing the handler module, and
  first request: import + handling one API Gateway event (GET /v1/health), which for
  Trainyard includes building the app and its adapters on first use.
Samples alternate between the two handlers so that machine noise hits both alike.
Run: .venv/bin/python bench/cold_start.py [samples]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVENT = ROOT / "events" / "apigw_http_health.json"
PROBE = """
import json, sys, time
class Context:  # what Powertools reads from Lambda's context object
    function_name, memory_limit_in_mb, aws_request_id = "bench", 1024, "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
start = time.perf_counter()
module = __import__(sys.argv[1], fromlist=["handler"])
imported = time.perf_counter()
response = module.handler(json.load(open(sys.argv[2])), Context())
done = time.perf_counter()
assert response["statusCode"] == 200, response
print(json.dumps({"import": imported - start, "first_request": done - start}))
"""
HANDLERS = {"trainyard": "functions.api.handler", "bare": "bench.bare_handler"}


def sample(module: str, home: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRAINYARD_HOME": home, "PYTHONDONTWRITEBYTECODE": "0"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, module, str(EVENT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    results: dict[str, list[dict[str, float]]] = {name: [] for name in HANDLERS}
    with tempfile.TemporaryDirectory() as home:
        for module in HANDLERS.values():  # warm the bytecode caches once
            sample(module, home)
        for _ in range(samples):
            for name, module in HANDLERS.items():
                results[name].append(sample(module, home))
    print(f"cold start, {samples} fresh interpreters each, median (p90) in ms")
    medians: dict[str, dict[str, float]] = {}
    for name in HANDLERS:
        medians[name] = {}
        for phase in ("import", "first_request"):
            values = sorted(r[phase] * 1000 for r in results[name])
            medians[name][phase] = statistics.median(values)
            p90 = values[int(0.9 * (len(values) - 1))]
            print(f"  {name:10s} {phase:14s} {medians[name][phase]:8.1f} ({p90:.1f})")
    for phase in ("import", "first_request"):
        ratio = medians["trainyard"][phase] / medians["bare"][phase]
        print(f"  ratio trainyard/bare, {phase}: {ratio:.2f}x (target <= 1.3x)")


if __name__ == "__main__":
    main()
