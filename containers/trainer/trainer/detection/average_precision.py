"""COCO-style mean average precision, in numpy.

For each class, detections over all images are ranked by score; each is a true positive when
it overlaps a not yet matched ground-truth box of its class and image at IoU ≥ t, else a false
positive. AP is the area under the precision/recall curve, with precision made monotone and
sampled at 101 recall points as COCO does. mAP is the mean over classes that have ground
truth; mAP@0.5:0.95 also averages over t = 0.50, 0.55, …, 0.95.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

COCO_IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2))
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class ImageBoxes:
    """The boxes of one image: (n, 4) x_min, y_min, x_max, y_max; classes (n,); scores (n,)
    for detections (None for ground truth)."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray | None = None


@dataclass(frozen=True)
class MeanAveragePrecision:
    map_50: float
    map_50_95: float
    per_class_ap_50: dict[int, float]


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (n, 4) with every box in b (m, 4), xyxy: an (n, m) array."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def _average_precision(
    truths: Sequence[ImageBoxes], detections: Sequence[ImageBoxes], cls: int, threshold: float
) -> float | None:
    """AP of one class at one IoU threshold; None when the class has no ground truth."""
    truth_boxes = [t.boxes[t.classes == cls] for t in truths]
    truth_count = sum(len(b) for b in truth_boxes)
    if truth_count == 0:
        return None
    ranked: list[tuple[float, int, np.ndarray]] = []
    for image_index, found in enumerate(detections):
        mask = found.classes == cls
        scores = found.scores[mask] if found.scores is not None else np.ones(mask.sum())
        ranked.extend(
            zip(scores.tolist(), [image_index] * len(scores), found.boxes[mask], strict=True)
        )
    ranked.sort(key=lambda item: -item[0])
    matched = [np.zeros(len(b), dtype=bool) for b in truth_boxes]
    hits = np.zeros(len(ranked), dtype=bool)
    for rank, (_, image_index, box) in enumerate(ranked):
        candidates = truth_boxes[image_index]
        if len(candidates) == 0:
            continue
        overlaps = pairwise_iou(box[None, :], candidates)[0]
        overlaps[matched[image_index]] = -1.0  # each ground-truth box is matched once
        best = int(np.argmax(overlaps))
        if overlaps[best] >= threshold:
            matched[image_index][best] = True
            hits[rank] = True
    true_positives = np.cumsum(hits)
    recall = true_positives / truth_count
    precision = true_positives / np.arange(1, len(ranked) + 1)
    # Monotone precision envelope, then sampled at the 101 recall points (COCO).
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    sampled = [
        float(envelope[np.searchsorted(recall, r, side="left")])
        if np.searchsorted(recall, r, side="left") < len(recall)
        else 0.0
        for r in RECALL_POINTS
    ]
    return float(np.mean(sampled))


def mean_average_precision(
    truths: Sequence[ImageBoxes], detections: Sequence[ImageBoxes], num_classes: int
) -> MeanAveragePrecision:
    """mAP@0.5 and mAP@0.5:0.95 of `detections` against `truths` (same images, same order)."""
    if len(truths) != len(detections):
        raise ValueError(f"{len(truths)} ground-truth images but {len(detections)} predicted")
    per_threshold: dict[float, list[float]] = {t: [] for t in COCO_IOU_THRESHOLDS}
    per_class_50: dict[int, float] = {}
    for cls in range(num_classes):
        for threshold in COCO_IOU_THRESHOLDS:
            ap = _average_precision(truths, detections, cls, threshold)
            if ap is None:
                break
            per_threshold[threshold].append(ap)
            if threshold == 0.5:
                per_class_50[cls] = ap
    if not per_class_50:
        return MeanAveragePrecision(0.0, 0.0, {})
    map_by_threshold = [float(np.mean(values)) for values in per_threshold.values()]
    return MeanAveragePrecision(
        map_50=map_by_threshold[0],
        map_50_95=float(np.mean(map_by_threshold)),
        per_class_ap_50=per_class_50,
    )
