"""PoseProbe that runs `python -m pose.probe` in the pose container's virtualenv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ...errors import InvalidInput, Unavailable
from .subprocess_launcher import ContainerCommand

INSTALL_HINT = "pose support needs the pose container's virtualenv (make venvs creates it)"


class SubprocessPoseProbe:
    def __init__(self, command: ContainerCommand, timeout_seconds: float = 300.0) -> None:
        self._command = command
        self._timeout = timeout_seconds

    def _run(self, *args: str) -> dict[str, Any]:
        if not self._command.python.exists():
            raise Unavailable(f"{INSTALL_HINT}; {self._command.python} does not exist")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(str(p.resolve()) for p in self._command.pythonpath),
        }
        try:
            finished = subprocess.run(
                [str(self._command.python), "-m", f"{self._command.module}.probe", *args],
                cwd=self._command.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self._timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise InvalidInput(f"checking the upload took longer than {self._timeout:.0f} s") from None
        lines = finished.stdout.decode(errors="replace").strip().splitlines()
        try:
            result = json.loads(lines[-1])
        except (IndexError, ValueError):
            tail = finished.stderr.decode(errors="replace").strip()[-500:]
            raise Unavailable(f"the pose checker failed (exit {finished.returncode}): {tail}") from None
        if not result.get("ok"):
            raise InvalidInput(str(result.get("error") or "the upload could not be read"))
        return dict(result)

    def probe_dataset(self, root: Path, min_frames: int) -> dict[str, Any]:
        return self._run("dataset", str(root.resolve()), "--min-frames", str(min_frames))

    def probe_video(self, path: Path, filename: str) -> dict[str, Any]:
        # under its uploaded name (the decoder goes by the extension), without copying it
        with tempfile.TemporaryDirectory(prefix="probe-", dir=path.parent) as scratch:
            named = Path(scratch) / Path(filename).name
            try:
                os.link(path, named)
            except OSError:
                shutil.copyfile(path, named)
            return self._run("video", str(named.resolve()))
