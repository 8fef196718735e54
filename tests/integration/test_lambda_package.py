"""What the functions ship, measured honestly, and what they import.

Each function's code package is its own folder (CodeUri `functions/<name>/` in template.yaml):
the handler only. The service package (src/, the core layer) and the runtime requirements (the
runtime layer, built from infrastructure/layers/runtime/requirements.txt) are two layers shared
by all functions. Lambda's limits: 50 MB for what a function ships is this project's own target;
250 MB unzipped for a function and its layers together is Lambda's. A real `sam build` of this
layout (SAM CLI 1.170, Python 3.12) gave 8-12 KB per function, 340 KB for the core layer and
203 MB for the runtime layer (docs/deploy.md).
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

from tests.aws_fixtures import load_template

REPO = Path(__file__).resolve().parents[2]
MB = 1_000_000
LAMBDA_UNZIPPED_LIMIT = 262_144_000  # 250 MiB: function code and all of its layers
HEADROOM = 0.9  # keep a tenth of the limit for the next dependency bump
OWN_FILES_LIMIT = 5 * MB
# what a clean checkout lacks (.gitignore) and the builder leaves out
NOT_SHIPPED = {
    ".git",
    ".venv",
    "venv",
    ".trainyard",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
}
NOT_SHIPPED_SUFFIXES = (".egg-info", ".pyc")
HEAVY_MODULES = {"tensorflow", "keras", "torch", "torchvision", "sleap", "sleap_nn", "sleap_io"}


def tree_size(root: Path) -> int:
    total = 0
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [
            name
            for name in subdirectories
            if name not in NOT_SHIPPED and not name.endswith(NOT_SHIPPED_SUFFIXES)
        ]
        total += sum(
            (Path(directory) / name).stat().st_size
            for name in files
            if not name.endswith(NOT_SHIPPED_SUFFIXES)
        )
    return total


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_distributions() -> dict[str, metadata.Distribution]:
    """requirements.txt's packages and everything they pull in, as installed in this venv (the
    same pins `sam build` installs), without requirements-dev.txt's tools."""
    found: dict[str, metadata.Distribution] = {}
    pending = [
        Requirement(line)
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    while pending:
        requirement = pending.pop()
        if normalized(requirement.name) in found:
            continue
        distribution = metadata.distribution(requirement.name)
        found[normalized(requirement.name)] = distribution
        extras = requirement.extras or {""}
        for declared in distribution.requires or []:
            dependency = Requirement(declared)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras):
                pending.append(dependency)
    return found


def installed_size(distribution: metadata.Distribution) -> int:
    total = 0
    for file in distribution.files or []:
        path = Path(str(distribution.locate_file(file)))
        if "__pycache__" not in path.parts and path.is_file():
            total += path.stat().st_size
    return total


CODE_PACKAGE_LIMIT = 50 * MB


def template_code_uris() -> dict[str, str]:
    resources = load_template()["Resources"]
    return {
        name: resource["Properties"]["CodeUri"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def test_every_function_ships_only_its_own_folder_and_under_50_mb() -> None:
    code_uris = template_code_uris()
    assert code_uris, "no functions in template.yaml"
    for name, code_uri in code_uris.items():
        assert code_uri.startswith("functions/"), (name, code_uri)
        size = tree_size(REPO / code_uri)
        assert 0 < size < CODE_PACKAGE_LIMIT, f"{name} ships {size / MB:.2f} MB from {code_uri}"
        assert not (REPO / code_uri / "requirements.txt").exists(), "dependencies belong in the layer"


def test_the_runtime_layer_installs_exactly_the_service_requirements() -> None:
    layer = REPO / "infrastructure" / "layers" / "runtime" / "requirements.txt"
    assert layer.read_text() == (REPO / "requirements.txt").read_text(), (
        "infrastructure/layers/runtime/requirements.txt must be a copy of requirements.txt"
    )


def test_a_function_and_its_layers_fit_lambda_with_headroom() -> None:
    largest_function = max(tree_size(REPO / uri) for uri in template_code_uris().values())
    core_layer = tree_size(REPO / "src")
    dependencies = {name: installed_size(d) for name, d in runtime_distributions().items()}
    total = largest_function + core_layer + sum(dependencies.values())
    largest = sorted(dependencies.items(), key=lambda item: -item[1])[:4]
    summary = f"total {total / MB:.1f} MB; core layer {core_layer / MB:.2f} MB; largest: " + ", ".join(
        f"{name} {size / MB:.1f} MB" for name, size in largest
    )
    print(summary)
    assert core_layer < OWN_FILES_LIMIT, summary
    assert total < LAMBDA_UNZIPPED_LIMIT * HEADROOM, summary


def test_the_dev_tools_are_not_runtime_dependencies() -> None:
    shipped = set(runtime_distributions())
    assert not shipped & {"pytest", "moto", "ruff", "mypy", "cfn-lint", "aws-sam-translator"}


def test_no_function_imports_the_training_frameworks(tmp_path: Path) -> None:
    """Import every handler and serve one API request (which builds the app and its adapters);
    no training framework may be loaded on the way."""
    script = """
import json, sys
import functions.api.handler as api
import functions.authorizer.handler, functions.job_events.handler
import functions.reaper.handler, functions.webhooks.handler, functions.dataset_import.handler
from tests.helpers import LambdaContext
response = api.handler(json.load(open("events/apigw_http_health.json")), LambdaContext())
assert response["statusCode"] == 200, response
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""
    env = {**os.environ, "TRAINYARD_HOME": str(tmp_path / "home"), "TRAINYARD_BACKEND": "local"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "trainyard" in loaded and "aws_lambda_powertools" in loaded
    assert not loaded & HEAVY_MODULES
