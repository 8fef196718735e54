"""Training wall time through the pose container's entrypoint vs sleap-nn's own CLI.

    containers/pose/.venv/bin/python bench/pose_train_overhead.py [--epochs 12] [--repeats 3]
        [--frames 100] [--size 128]

Both sides train the same sleap-nn config (the one `pose.training.sleap_config` builds from the
job's hyperparameters, written to YAML for `sleap-nn train --config`) on the same synthetic
labels, each in a fresh process, alternating, `--repeats` times:

- container: `python -m pose train` in a SageMaker layout, exactly as the local launcher runs it
  (cwd containers/pose, PYTHONPATH=containers/jobkit, TRAINYARD_EVENTS_FILE). Besides training
  it checks the upload, measures the validation keypoint error, exports and checks ONNX, and
  zips the model.
- sleap-nn: `sleap-nn train --config run.yaml` (its own train/val split of the same fraction;
  after training it predicts and scores its train and val splits).

Printed: whole-process wall time (median), the training loop alone (sum of sleap-nn's own
per-epoch train/time + val/time from each run's training_log.csv), and the overhead in %.
"""

from __future__ import annotations

import argparse
import csv
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


def hyperparameters(epochs: int) -> dict[str, object]:
    return {
        "job_id": "bench-train",
        "model_type": "single_instance",
        "backbone": "unet",
        "epochs": epochs,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "sigma": 2.5,
        "output_stride": 2,
        "validation_fraction": 0.2,
        "seed": 0,
    }


def make_data(root: Path, frames: int, size: int) -> Path:
    data = root / "data"
    subprocess.run(
        [str(PYTHON), "-m", "pose.synthetic", "--out", str(data), "--layout", "slp+video",
         "--frames", str(frames), "--size", str(size), "--video-frames", "2"],
        cwd=POSE_DIR, check=True, capture_output=True,
    )  # fmt: skip
    # sleap-nn's CLI reads the stored video path: point a copy of the labels at the real file.
    script = (
        "import sleap_io as sio, sys\n"
        "labels = sio.load_slp(sys.argv[1], open_videos=False)\n"
        "labels.replace_filenames(new_filenames=[sys.argv[2]], open_videos=False)\n"
        "sio.save_slp(labels, sys.argv[3], verbose=False)\n"
    )
    subprocess.run(
        [str(PYTHON), "-c", script, str(data / "labels.slp"), str(data / "video.mp4"),
         str(data / "labels_local.slp")],
        check=True,
    )  # fmt: skip
    return data


def write_sleap_config(data: Path, epochs: int, run_dir: Path) -> Path:
    """The sleap-nn config the container builds for these hyperparameters, as YAML."""
    script = f"""
import sys
sys.path[:0] = [{str(POSE_DIR)!r}, {str(JOBKIT_DIR)!r}]
from pathlib import Path
from omegaconf import OmegaConf
from pose.contract import parse_train_config
from pose.training import sleap_config
config = parse_train_config({hyperparameters(epochs)!r})
cfg = sleap_config(config, "single_instance", nodes=["head", "body", "tail"],
                   labels_path=Path({str(data / "labels_local.slp")!r}),
                   run_dir=Path({str(run_dir)!r}), validation=True, cache_in_memory=True)
OmegaConf.save(cfg, {str(run_dir.parent / "run.yaml")!r})
"""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(PYTHON), "-c", script], check=True, capture_output=True)
    return run_dir.parent / "run.yaml"


def loop_seconds(training_log: Path) -> float:
    """Sum of sleap-nn's own per-epoch train/time and val/time (the training loop)."""
    total = 0.0
    with training_log.open() as handle:
        for row in csv.DictReader(handle):
            for key in ("train/time", "val/time"):
                if row.get(key):
                    total += float(row[key])
    return total


def run_container(root: Path, data: Path, epochs: int) -> dict[str, float]:
    base = root / "container"
    shutil.rmtree(base, ignore_errors=True)
    channel = base / "input" / "data" / "training"
    channel.mkdir(parents=True)
    (base / "input" / "config").mkdir(parents=True)
    for name in ("labels.slp", "video.mp4"):
        shutil.copy(data / name, channel / name)
    (channel / "dataset.json").write_text(json.dumps({"labels": "labels.slp", "videos": ["video.mp4"]}))
    encoded = {k: json.dumps(v) for k, v in hyperparameters(epochs).items()}
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(encoded))
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "TRAINYARD_EVENTS_FILE": str(base / "events.jsonl"),
        "PYTHONPATH": str(JOBKIT_DIR),
    }
    started = time.perf_counter()
    finished = subprocess.run(
        [str(PYTHON), "-m", "pose", "train"], cwd=POSE_DIR, env=env, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        sys.exit(f"container run failed:\n{finished.stderr[-3000:]}")
    return {
        "wall": wall,
        "loop": loop_seconds(base / "model" / "sleap_model" / "training_log.csv"),
    }


def run_sleap_nn(root: Path, data: Path, epochs: int) -> dict[str, float]:
    run_dir = root / "sleap-nn" / "run"
    shutil.rmtree(run_dir.parent, ignore_errors=True)
    config = write_sleap_config(data, epochs, run_dir)
    started = time.perf_counter()
    finished = subprocess.run(
        [str(SLEAP_NN), "train", "--config", str(config)], cwd=root, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        sys.exit(f"sleap-nn train failed:\n{finished.stderr[-3000:]}")
    return {"wall": wall, "loop": loop_seconds(run_dir / "training_log.csv")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pose-bench-train-") as scratch:
        root = Path(scratch)
        data = make_data(root, args.frames, args.size)
        results: dict[str, list[dict[str, float]]] = {"container": [], "sleap-nn": []}
        for repeat in range(args.repeats):
            # Alternate which side goes first, so that neither always gets a warm page cache.
            order = ["container", "sleap-nn"] if repeat % 2 == 0 else ["sleap-nn", "container"]
            for side in order:
                run = run_container if side == "container" else run_sleap_nn
                result = run(root, data, args.epochs)
                results[side].append(result)
                print(f"  run {repeat + 1} {side:9s}: wall {result['wall']:6.1f} s, "
                      f"training loop {result['loop']:6.1f} s", flush=True)  # fmt: skip
    median = {
        side: {k: statistics.median(r[k] for r in runs) for k in ("wall", "loop")}
        for side, runs in results.items()
    }
    c, s = median["container"], median["sleap-nn"]
    print(f"\npose training, single_instance unet, {args.frames} frames of {args.size} px "
          f"(80/20 split), {args.epochs} epochs, batch 4, CPU ({os.cpu_count()} cores); "
          f"median of {args.repeats}:")  # fmt: skip
    print(f"  whole process : container {c['wall']:6.1f} s  sleap-nn train {s['wall']:6.1f} s  "
          f"overhead {100 * (c['wall'] / s['wall'] - 1):+5.1f}%")  # fmt: skip
    print(f"  training loop : container {c['loop']:6.1f} s  sleap-nn train {s['loop']:6.1f} s  "
          f"overhead {100 * (c['loop'] / s['loop'] - 1):+5.1f}%")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
