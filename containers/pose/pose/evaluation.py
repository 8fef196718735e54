"""How far the trained model's keypoints are from the labelled ones on the validation frames."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("pose.evaluation")


def _frame_key(lf: Any, videos: list[Any]) -> tuple[int, int]:
    for index, video in enumerate(videos):
        if lf.video is video:
            return index, int(lf.frame_idx)
    return -1, int(lf.frame_idx)


def _match(truth: list[np.ndarray], predicted: list[np.ndarray]) -> list[tuple[int, int]]:
    """Pairs (truth, prediction) with the smallest mean distance over the nodes both have
    (Hungarian assignment); a single instance each is one pair."""
    from scipy.optimize import linear_sum_assignment  # noqa: PLC0415

    if not truth or not predicted:
        return []
    cost = np.full((len(truth), len(predicted)), 1e9)
    for i, t in enumerate(truth):
        for j, p in enumerate(predicted):
            d = np.linalg.norm(t - p, axis=1)
            d = d[np.isfinite(d)]
            if d.size:
                cost[i, j] = float(d.mean())
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < 1e9]


def pixel_errors(truth_labels: Any, predicted_labels: Any) -> list[float]:
    """Distances (px) between each labelled point and the matched prediction's point, for the
    points both have. Frames are matched on (video, frame index)."""
    predicted_by_key = {
        _frame_key(lf, predicted_labels.videos): lf for lf in predicted_labels.labeled_frames
    }
    errors: list[float] = []
    for lf in truth_labels.labeled_frames:
        key = _frame_key(lf, truth_labels.videos)
        predicted = predicted_by_key.get(key)
        if predicted is None:
            continue
        truth = [inst.numpy()[:, :2] for inst in lf.instances]
        guesses = [inst.numpy()[:, :2] for inst in predicted.instances]
        for i, j in _match(truth, guesses):
            d = np.linalg.norm(truth[i] - guesses[j], axis=1)
            errors.extend(float(x) for x in d if math.isfinite(x))
    return errors


def validation_pixel_error(
    run_dirs: list[Path], validation: Any, *, device: str, max_instances: int | None
) -> tuple[float | None, Any]:
    """Mean keypoint error of the trained model (sleap-nn's predictor, best.ckpt) on the
    validation frames, and the predicted labels."""
    from sleap_nn.inference.predictor import Predictor  # noqa: PLC0415

    predictor = Predictor.from_model_paths(
        [str(d) for d in run_dirs], device=device, batch_size=8, max_instances=max_instances
    )
    predicted = predictor.predict(validation, make_labels=True)
    errors = pixel_errors(validation, predicted)
    if not errors:
        log.warning("no validation keypoint was predicted: val_mean_pixel_error is null")
        return None, predicted
    return float(np.mean(errors)), predicted
