"""`python -m pose` with mode=infer: the trained model on a separate rendered video.

Accuracy bound (see test_train_job.py): a keypoint within 4 px of the rendered one (2 cells
of the half-resolution confidence maps) is on the right body part. The test video's frames
were never labelled; at least 80% of them must have every keypoint within the bound.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import sleap_io as sio
from conftest import JobRun, job_dir, run_entrypoint

MAX_PIXEL_ERROR = 4.0
MIN_GOOD_FRAMES = 0.8


def test_events_report_frames_predicted_up_to_the_total(inferred: JobRun) -> None:
    assert inferred.statuses() == ["DOWNLOADING", "DOWNLOADED", "RUNNING", "EXPORTING"]
    assert inferred.kinds("status")[1]["message"].startswith(
        "video test_video.mp4: 20 frames, 96x96, 15 fps"
    )
    progress = inferred.kinds("progress")
    assert progress and progress[-1]["done"] == progress[-1]["total"] == 20
    assert all(e["unit"] == "frames" and e["total"] == 20 for e in progress)
    done = [e["done"] for e in progress]
    assert done == sorted(set(done))
    kinds = [e["kind"] for e in inferred.events]
    assert kinds.index("progress") > kinds.index("status") + 2  # after RUNNING
    assert kinds[-1] == "status"  # EXPORTING after the last progress event


def test_results_manifest_lists_every_output(inferred: JobRun) -> None:
    results = inferred.manifest("trainyard_results.json")
    assert results["schema"] == "trainyard.results/1" and results["task"] == "pose"
    assert results["files"] == {
        "slp": "predictions.slp",
        "analysis_h5": "predictions.analysis.h5",
        "json": "predictions.json",
        "preview_video": "preview.mp4",
        "preview_image": "preview.png",
    }
    for name in results["files"].values():
        assert (inferred.model_dir / name).stat().st_size > 0, name
    assert results["frames"] == {"total": 20, "predicted": 20, "with_instances": 20}
    assert results["video"] == {
        "name": "test_video.mp4",
        "width": 96,
        "height": 96,
        "frames": 20,
        "fps": 15.0,
    }
    assert results["fps"] > 0


def test_output_files_parse(inferred: JobRun) -> None:
    out = inferred.model_dir
    labels = sio.load_slp(str(out / "predictions.slp"))
    assert len(labels) == 20 and [n.name for n in labels.skeletons[0].nodes] == [
        "head",
        "body",
        "tail",
    ]
    with h5py.File(out / "predictions.analysis.h5", "r") as h5:
        assert [n.decode() for n in h5["node_names"][:]] == ["head", "body", "tail"]
        tracks = h5["tracks"][:]  # (instances, xy, nodes, frames)
        assert tracks.shape[1:] == (2, 3, 20)
        assert np.isfinite(tracks[0]).mean() > 0.9
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "preview.mp4").read_bytes()[4:8] == b"ftyp"
    preview = sio.load_video(str(out / "preview.mp4"))
    assert preview.shape[0] == 20


def pixel_errors(predicted: dict[str, Any], truth: dict[str, Any]) -> list[float]:
    """The largest keypoint error of each rendered video frame (inf where nothing was found)."""
    by_frame = {f["frame_idx"]: f["instances"] for f in predicted["frames"]}
    worst = []
    for frame in truth["video"]:
        instances = by_frame.get(frame["frame_idx"], [])
        if not instances:
            worst.append(math.inf)
            continue
        points = instances[0]["points"]
        worst.append(
            max(
                math.dist(points[node][:2], xy) if points[node][0] is not None else math.inf
                for node, xy in frame["points"].items()
            )
        )
    return worst


def test_predictions_json_recovers_the_rendered_keypoints(
    inferred: JobRun, truth: dict[str, Any]
) -> None:
    predicted = json.loads((inferred.model_dir / "predictions.json").read_text())
    assert predicted["skeleton"]["nodes"] == ["head", "body", "tail"]
    assert [f["frame_idx"] for f in predicted["frames"]] == list(range(20))
    instance = predicted["frames"][0]["instances"][0]
    assert set(instance) == {"points", "score", "track"} and instance["track"] is None
    assert all(len(xys) == 3 for xys in instance["points"].values())
    errors = pixel_errors(predicted, truth)
    good = sum(error <= MAX_PIXEL_ERROR for error in errors)
    assert good >= MIN_GOOD_FRAMES * len(errors), [round(e, 1) for e in errors]


def test_a_frame_range_with_tracking_predicts_only_those_frames(
    tmp_path: Path, trained: JobRun, animal: Path
) -> None:
    base = job_dir(
        tmp_path,
        {
            "job_id": "job-range",
            "mode": "infer",
            "frame_start": 2,
            "frame_end": 10,
            "frame_stride": 3,
            "tracking": True,
            "preview": "none",
            "batch_size": 2,
        },
        {"model": trained.model_dir, "video": animal / "test_video.mp4"},
    )
    run = run_entrypoint(base)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.kinds("progress")[-1]["done"] == run.kinds("progress")[-1]["total"] == 3
    results = run.manifest("trainyard_results.json")
    assert results["frames"]["predicted"] == 3 and results["frames"]["total"] == 20
    assert "preview_video" not in results["files"] and "preview_image" not in results["files"]
    assert not (run.model_dir / "preview.mp4").exists()
    predicted = json.loads((run.model_dir / "predictions.json").read_text())
    assert [f["frame_idx"] for f in predicted["frames"]] == [2, 5, 8]
    tracks = {i["track"] for f in predicted["frames"] for i in f["instances"]}
    assert len(tracks) == 1 and None not in tracks


def test_the_model_runs_from_its_zip_when_the_directory_did_not_travel(
    tmp_path: Path, trained: JobRun, animal: Path
) -> None:
    model = tmp_path / "persisted"
    model.mkdir()
    for name in ("trainyard_model.json", "sleap_model.zip", "model.onnx"):
        (model / name).write_bytes((trained.model_dir / name).read_bytes())
    base = job_dir(
        tmp_path / "job",
        {"job_id": "job-zip", "mode": "infer", "frame_end": 4, "preview": "image"},
        {"model": model, "video": animal / "test_video.mp4"},
    )
    run = run_entrypoint(base)
    assert run.returncode == 0, run.stderr[-3000:]
    assert set(run.manifest("trainyard_results.json")["files"]) == {
        "slp",
        "analysis_h5",
        "json",
        "preview_image",
    }
