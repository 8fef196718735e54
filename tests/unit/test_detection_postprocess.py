"""A detector's raw outputs made into detections (services/detection.py), on hand-made boxes
and scores: NMS across classes (each anchor labelled with its best class), the score
threshold, max_detections, and the scaling back to the original image."""

from __future__ import annotations

import numpy as np
import pytest

from trainyard.services.detection import (
    MAX_CANDIDATES,
    Detection,
    detect,
    iou,
    non_max_suppression,
    postprocess,
)

# Two boxes overlapping with IoU 81/119 ≈ 0.68, and a third apart from both.
A, B, C = [0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 70.0]


def run(
    boxes: list[list[float]],
    scores: list[list[float]],
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.3,
    max_detections: int = 100,
    input_size: tuple[int, int] = (100, 100),
    image_size: tuple[int, int] = (100, 100),
) -> list[Detection]:
    return postprocess(
        np.asarray(boxes, dtype=np.float32),
        np.asarray(scores, dtype=np.float32),
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        max_detections=max_detections,
        input_size=input_size,
        image_size=image_size,
    )


def corners(d: Detection) -> tuple[float, float, float, float]:
    return (d.x_min, d.y_min, d.x_max, d.y_max)


def test_iou_of_overlapping_disjoint_and_identical_boxes() -> None:
    values = iou(np.asarray(A), np.asarray([B, C, A]))
    assert values == pytest.approx([81 / 119, 0.0, 1.0])


def test_overlapping_boxes_of_one_class_keep_only_the_best() -> None:
    found = run([A, B, C], [[0.8], [0.9], [0.7]])
    assert [(d.class_index, d.score) for d in found] == [(0, pytest.approx(0.9)), (0, pytest.approx(0.7))]
    assert [corners(d) for d in found] == [tuple(B), tuple(C)]


def test_overlapping_boxes_of_different_classes_keep_only_the_best() -> None:
    # One object reported as two classes is one detection: keras-hub's decoder does the same.
    found = run([A, B, C], [[0.8, 0.0], [0.0, 0.9], [0.6, 0.1]])
    assert [(d.class_index, corners(d)) for d in found] == [(1, tuple(B)), (0, tuple(C))]


def test_each_anchor_takes_its_best_class() -> None:
    found = run([A], [[0.4, 0.7, 0.2]])
    assert [(d.class_index, round(d.score, 2)) for d in found] == [(1, 0.7)]


def test_the_nms_threshold_decides_what_overlaps_too_much() -> None:
    assert len(run([A, B], [[0.8], [0.9]], iou_threshold=0.7)) == 2
    assert len(run([A, B], [[0.8], [0.9]], iou_threshold=0.6)) == 1


def test_scores_below_the_threshold_are_dropped_and_equal_ones_kept() -> None:
    found = run([A, C, [20.0, 20.0, 30.0, 30.0]], [[0.29], [0.3], [0.95]], score_threshold=0.3)
    assert [round(d.score, 2) for d in found] == [0.95, 0.3]


def test_nothing_above_the_threshold_is_no_detection() -> None:
    assert run([A, B, C], [[0.1], [0.2], [0.29]], score_threshold=0.3) == []


def test_max_detections_keeps_the_best_over_all_classes_sorted_by_score() -> None:
    boxes = [[i * 10.0, 0.0, i * 10.0 + 5, 5.0] for i in range(6)]  # disjoint
    scores = [[0.4, 0.0], [0.0, 0.9], [0.7, 0.0], [0.0, 0.5], [0.8, 0.0], [0.0, 0.6]]
    found = run(boxes, scores, max_detections=3)
    assert [(d.class_index, round(d.score, 2)) for d in found] == [(1, 0.9), (0, 0.8), (0, 0.7)]


def test_boxes_are_scaled_to_the_original_image_and_clipped_to_it() -> None:
    # a 100x100 model input; the image was 200 wide and 50 high
    found = run([[10.0, 20.0, 30.0, 60.0], [90.0, -5.0, 120.0, 40.0]], [[0.9], [0.8]], image_size=(200, 50))
    assert [corners(d) for d in found] == [(20.0, 10.0, 60.0, 30.0), (180.0, 0.0, 200.0, 20.0)]


def test_boxes_wholly_outside_the_image_and_non_finite_ones_are_dropped() -> None:
    found = run([[110.0, 10.0, 130.0, 20.0], [np.nan, 0.0, 5.0, 5.0], C], [[0.9], [0.95], [0.5]])
    assert [corners(d) for d in found] == [tuple(C)]


def test_non_max_suppression_returns_indices_best_first() -> None:
    kept = non_max_suppression(np.asarray([A, C, B]), np.asarray([0.5, 0.6, 0.9]), 0.5)
    assert kept.tolist() == [2, 1]


def test_every_anchor_above_a_zero_threshold_stays_bounded() -> None:
    rng = np.random.default_rng(0)
    corner = rng.uniform(0, 250, size=(12_000, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(2, 40, size=(12_000, 2))], axis=1)
    scores = rng.uniform(0, 1, size=(12_000, 3))
    found = detect(boxes, scores, iou_threshold=0.5, score_threshold=0.0)
    assert 0 < len(found) <= MAX_CANDIDATES  # only the best candidates enter NMS
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
