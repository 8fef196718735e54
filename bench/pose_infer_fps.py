"""Video inference frames per second through the pose container vs sleap-nn's own predictor.

    containers/pose/.venv/bin/python bench/pose_infer_fps.py [--frames 600] [--size 128]
        [--batch-size 4] [--repeats 5]

One model (single_instance unet, 3 epochs through the container: accuracy does not matter
here) on one synthetic video of `--frames` frames, each side in a fresh process, alternating:

- container: `python -m pose` with mode=infer, preview none (the previews re-decode and
  encode the video; they are timed separately below), as the local launcher runs it. Its
  `fps` (predicted frames / seconds inside sleap-nn's `Predictor.predict`) and the whole
  process's wall time.
- sleap-nn API: `Predictor.from_model_paths(...)` then `predict(video)` in a fresh process,
  timed the same way as the container's `fps`.
- sleap-nn CLI: `sleap-nn predict -i video -m model -o out.slp --device cpu --batch_size B`,
  whole-process wall time.

Printed: medians and the ratios container / sleap-nn (target >= 0.9); the machine's speed
drifts between runs, so the median of the per-repeat ratios is given too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POSE_DIR = ROOT / "containers" / "pose"
JOBKIT_DIR = ROOT / "containers" / "jobkit"
PYTHON = POSE_DIR / ".venv" / "bin" / "python"
SLEAP_NN = POSE_DIR / ".venv" / "bin" / "sleap-nn"

API_SCRIPT = """
import sys, time, json
from sleap_nn.inference.predictor import Predictor
import sleap_io as sio
model, video_path, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
predictor = Predictor.from_model_paths([model], device="cpu", batch_size=batch)
video = sio.load_video(video_path)
started = time.monotonic()
labels = predictor.predict(video, make_labels=True)
seconds = time.monotonic() - started
print(json.dumps({"frames": len(labels), "seconds": seconds}))
"""


def env_for(base: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "TRAINYARD_EVENTS_FILE": str(base / "events.jsonl"),
        "PYTHONPATH": str(JOBKIT_DIR),
    }


def job(base: Path, hyperparameters: dict[str, object], channels: dict[str, Path]) -> Path:
    shutil.rmtree(base, ignore_errors=True)
    (base / "input" / "config").mkdir(parents=True)
    encoded = {k: json.dumps(v) for k, v in hyperparameters.items()}
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(encoded))
    for name, source in channels.items():
        target = base / "input" / "data" / name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.mkdir(parents=True)
            shutil.copy(source, target / source.name)
    return base


def run(command: list[str], **kwargs: object) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed:\n{finished.stderr[-3000:]}")
    return wall, finished


def train_model(root: Path, frames: int, size: int) -> tuple[Path, Path]:
    data = root / "data"
    subprocess.run(
        [str(PYTHON), "-m", "pose.synthetic", "--out", str(data), "--layout", "slp+video",
         "--frames", "40", "--size", str(size), "--video-frames", str(frames)],
        cwd=POSE_DIR, check=True, capture_output=True,
    )  # fmt: skip
    (data / "dataset.json").write_text(json.dumps({"labels": "labels.slp", "videos": ["video.mp4"]}))
    channel = root / "upload"
    channel.mkdir()
    for name in ("labels.slp", "video.mp4", "dataset.json"):
        shutil.copy(data / name, channel / name)
    base = job(
        root / "train",
        {"job_id": "bench-infer-model", "epochs": 3, "learning_rate": 1e-3, "sigma": 2.5,
         "seed": 0},
        {"training": channel},
    )  # fmt: skip
    run([str(PYTHON), "-m", "pose", "train"], cwd=POSE_DIR, env=env_for(base))
    return base / "model", data / "test_video.mp4"


def container(root: Path, model: Path, video: Path, batch: int, preview: str) -> dict[str, float]:
    base = job(
        root / "infer",
        {"job_id": "bench-infer", "mode": "infer", "batch_size": batch, "preview": preview},
        {"model": model, "video": video},
    )
    wall, _ = run([str(PYTHON), "-m", "pose"], cwd=POSE_DIR, env=env_for(base))
    results = json.loads((base / "model" / "trainyard_results.json").read_text())
    return {"fps": results["fps"], "wall": wall, "frames": results["frames"]["predicted"]}


def sleap_nn_api(model: Path, video: Path, batch: int) -> dict[str, float]:
    wall, finished = run([str(PYTHON), "-c", API_SCRIPT, str(model), str(video), str(batch)])
    timing = json.loads(finished.stdout.strip().splitlines()[-1])
    return {"fps": timing["frames"] / timing["seconds"], "wall": wall}


def sleap_nn_cli(root: Path, model: Path, video: Path, batch: int) -> dict[str, float]:
    out = root / "cli" / "out.slp"
    shutil.rmtree(out.parent, ignore_errors=True)
    out.parent.mkdir()
    wall, _ = run(
        [str(SLEAP_NN), "predict", "-i", str(video), "-m", str(model), "-o", str(out),
         "--device", "cpu", "--batch_size", str(batch)],
    )  # fmt: skip
    return {"wall": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pose-bench-infer-") as scratch:
        root = Path(scratch)
        model_dir, video = train_model(root, args.frames, args.size)
        sleap_model = model_dir / "sleap_model"
        runs: dict[str, list[dict[str, float]]] = {"container": [], "api": [], "cli": []}
        for repeat in range(args.repeats):
            sides = ["container", "api", "cli"]
            for side in sides[repeat % 3 :] + sides[: repeat % 3]:
                if side == "container":
                    result = container(root, model_dir, video, args.batch_size, "none")
                elif side == "api":
                    result = sleap_nn_api(sleap_model, video, args.batch_size)
                else:
                    result = sleap_nn_cli(root, sleap_model, video, args.batch_size)
                runs[side].append(result)
                print(f"  run {repeat + 1} {side:9s}: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in result.items()), flush=True)  # fmt: skip
        with_previews = container(root, model_dir, video, args.batch_size, "both")

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[side])

    print(f"\npose video inference, single_instance unet, {args.frames} frames of "
          f"{args.size}x{args.size}, batch {args.batch_size}, CPU ({os.cpu_count()} cores); "
          f"median of {args.repeats}:")  # fmt: skip
    # The machine's speed drifts between runs: the ratio within each repeat is steadier.
    paired = statistics.median(
        c["fps"] / a["fps"] for c, a in zip(runs["container"], runs["api"], strict=True)
    )
    print(f"  predicting    : container {med('container', 'fps'):7.1f} frames/s  "
          f"sleap-nn Predictor {med('api', 'fps'):7.1f} frames/s  "
          f"ratio of medians {med('container', 'fps') / med('api', 'fps'):.2f}, "
          f"median of per-repeat ratios {paired:.2f}")  # fmt: skip
    print(f"  whole process : container {med('container', 'wall'):6.1f} s  "
          f"sleap-nn predict CLI {med('cli', 'wall'):6.1f} s  "
          f"(Predictor script {med('api', 'wall'):6.1f} s)  "
          f"ratio (CLI / container) {med('cli', 'wall') / med('container', 'wall'):.2f}")  # fmt: skip
    print(f"  container with previews (mp4 + png): {with_previews['wall']:.1f} s wall, "
          f"{with_previews['fps']:.1f} frames/s predicting")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
