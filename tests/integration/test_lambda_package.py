"""What the functions ship, measured honestly, and what they import.

`sam build` gives each function (CodeUri `.`) the repository as a clean checkout has it (its
python builder drops virtualenvs, .git and caches) plus requirements.txt's packages, and the
core layer (ContentUri src/). Lambda's limit is 250 MB unzipped for a function and its layers
together. The runtime requirements (numpy and onnxruntime for prediction, mostly) are the bulk;
the project's own files must stay small, so a container's virtualenv or weights leaking into the
package fails here first.
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


def test_the_function_package_fits_lambda_with_headroom() -> None:
    own_files = tree_size(REPO)  # handlers, src, and the rest of a clean checkout
    core_layer = tree_size(REPO / "src")
    dependencies = {name: installed_size(d) for name, d in runtime_distributions().items()}
    total = own_files + core_layer + sum(dependencies.values())
    largest = sorted(dependencies.items(), key=lambda item: -item[1])[:4]
    summary = f"total {total / MB:.1f} MB; own files {own_files / MB:.2f} MB; largest: " + ", ".join(
        f"{name} {size / MB:.1f} MB" for name, size in largest
    )
    print(summary)
    assert own_files < OWN_FILES_LIMIT, summary
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
import functions.reaper.handler, functions.webhooks.handler
response = api.handler(json.load(open("events/apigw_http_health.json")), None)
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
