"""Detection pieces without training: mAP, box-moving augmentation, the channel reader, the
hyperparameters, anchor decoding against keras-hub's own, and the baked-weights lookup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from jobkit.errors import ConfigError, DataError
from trainer.detection.augment import BoxAugmenter
from trainer.detection.average_precision import ImageBoxes, mean_average_precision, pairwise_iou
from trainer.detection.contract import parse_detection_config
from trainer.detection.dataset import load_detection_dataset, read_annotations, split_images
from trainer.detection.synthetic import write_detection_channel
from trainer.errors import WeightsNotFoundError
from trainer.weights import resolve_keras_hub_preset


def boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(rows, dtype=np.float32).reshape(-1, 4)


# --- mean average precision ------------------------------------------------------------------


def test_perfect_detections_score_one_at_every_threshold() -> None:
    truth = [ImageBoxes(boxes((0, 0, 10, 10), (20, 20, 40, 40)), np.array([0, 1]))]
    found = [ImageBoxes(truth[0].boxes, truth[0].classes, np.array([0.9, 0.8]))]
    result = mean_average_precision(truth, found, num_classes=2)
    assert result.map_50 == result.map_50_95 == 1.0
    assert result.per_class_ap_50 == {0: 1.0, 1: 1.0}


def test_a_false_positive_ranked_first_halves_precision() -> None:
    truth = [ImageBoxes(boxes((0, 0, 10, 10)), np.array([0]))]
    found = [ImageBoxes(boxes((50, 50, 60, 60), (0, 0, 10, 10)), np.array([0, 0]),
                        np.array([0.9, 0.8]))]  # fmt: skip
    # Recall reaches 1 only at precision 1/2; the envelope is 1/2 everywhere.
    assert mean_average_precision(truth, found, 1).map_50 == pytest.approx(0.5)


def test_wrong_class_and_duplicates_do_not_count() -> None:
    truth = [ImageBoxes(boxes((0, 0, 10, 10)), np.array([0]))]
    found = [ImageBoxes(boxes((0, 0, 10, 10), (0, 0, 10, 10)), np.array([1, 1]),
                        np.array([0.9, 0.8]))]  # fmt: skip
    assert mean_average_precision(truth, found, 2).map_50 == 0.0
    duplicate = [ImageBoxes(boxes((0, 0, 10, 10), (0, 0, 10, 10)), np.array([0, 0]),
                            np.array([0.9, 0.8]))]  # fmt: skip
    assert mean_average_precision(truth, duplicate, 2).map_50 == 1.0  # the 2nd comes after


def test_map_50_95_rewards_tight_boxes() -> None:
    truth = [ImageBoxes(boxes((0, 0, 100, 100)), np.array([0]))]
    loose = [ImageBoxes(boxes((0, 0, 100, 125)), np.array([0]), np.array([0.9]))]  # IoU 0.8
    result = mean_average_precision(truth, loose, 1)
    assert result.map_50 == 1.0
    # matched at IoU thresholds 0.50..0.80 (7 of 10), missed at 0.85..0.95
    assert result.map_50_95 == pytest.approx(0.7)


def test_classes_without_ground_truth_are_left_out_of_the_mean() -> None:
    truth = [ImageBoxes(boxes((0, 0, 10, 10)), np.array([0]))]
    found = [ImageBoxes(boxes((0, 0, 10, 10)), np.array([0]), np.array([0.9]))]
    assert mean_average_precision(truth, found, num_classes=5).map_50 == 1.0


def test_pairwise_iou() -> None:
    iou = pairwise_iou(boxes((0, 0, 10, 10)), boxes((5, 0, 15, 10), (20, 20, 30, 30)))
    assert iou[0].tolist() == pytest.approx([1 / 3, 0.0])


# --- augmentation ----------------------------------------------------------------------------


def _image_with_red_box(box: tuple[int, int, int, int], size: int = 64) -> np.ndarray:
    image = np.zeros((size, size, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = (255, 0, 0)
    return image


@pytest.mark.parametrize("seed", range(8))
def test_augmented_boxes_still_frame_the_object(seed: int) -> None:
    image = _image_with_red_box((10, 20, 30, 36))
    augmented, moved, classes = BoxAugmenter()(
        image, boxes((10, 20, 30, 36)), np.array([2]), np.random.default_rng(seed)
    )
    assert augmented.shape == image.shape and classes.tolist() == [2]
    red = (augmented[..., 0] > 128) & (augmented[..., 1] < 100)
    ys, xs = np.nonzero(red)
    drawn = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert moved[0] == pytest.approx(drawn, abs=1.5)  # resampling blurs a pixel at most


def test_flip_mirrors_the_box() -> None:
    augmenter = BoxAugmenter(flip_probability=1.0, min_scale=1.0, max_scale=1.0)
    _, moved, _ = augmenter(
        _image_with_red_box((10, 20, 30, 36)), boxes((10, 20, 30, 36)), np.array([0]),
        np.random.default_rng(0),
    )  # fmt: skip
    assert moved.tolist() == [[34, 20, 54, 36]]


def test_boxes_pushed_mostly_out_of_view_are_dropped() -> None:
    augmenter = BoxAugmenter(flip_probability=0.0, min_scale=2.0, max_scale=2.0)
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    corner_boxes = boxes((0, 0, 8, 8), (56, 56, 64, 64))
    kept = [
        len(augmenter(image, corner_boxes, np.array([0, 1]), np.random.default_rng(s))[1])
        for s in range(10)
    ]
    # Zoomed ×2 the 64-pixel view shows a quarter of the image: never both far corners.
    assert max(kept) <= 1 and min(kept) == 0


# --- the channel -----------------------------------------------------------------------------


def _write_channel(root: Path, document: dict[str, Any], sizes: dict[str, tuple[int, int]]) -> Path:
    (root / "images").mkdir(parents=True)
    for name, size in sizes.items():
        Image.new("RGB", size, (10, 20, 30)).save(root / name)
    (root / "annotations.json").write_text(json.dumps(document))
    return root


def _document(**image: Any) -> dict[str, Any]:
    entry = {"file": "images/a.png", "width": 40, "height": 20, "split": None,
             "boxes": [{"class": 0, "x_min": 4, "y_min": 2, "x_max": 20, "y_max": 10}]}  # fmt: skip
    return {"schema": "trainyard.detection/1", "classes": ["cat"], "images": [entry | image]}


def test_boxes_are_scaled_with_the_image(tmp_path: Path) -> None:
    document = _document()
    document["images"].append(document["images"][0] | {"file": "images/b.png", "split": "val"})
    sizes = {"images/a.png": (40, 20), "images/b.png": (40, 20)}
    channel = _write_channel(tmp_path, document, sizes)
    dataset = load_detection_dataset(channel, image_size=64, validation_split=0.5, seed=0)
    assert dataset.classes == ("cat",) and dataset.explicit_validation
    assert dataset.train.images.shape == (1, 64, 64, 3)
    assert dataset.train.boxes[0][0].tolist() == pytest.approx([6.4, 6.4, 32.0, 32.0])
    assert dataset.validation is not None and dataset.validation.paths == ("images/b.png",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"file": "images/missing.png"}, r"images\[0\]: image file 'images/missing.png' does not"),
        ({"file": "../x.png"}, "must be relative to the channel"),
        ({"boxes": [{"class": 0, "x_min": 4, "y_min": 2, "x_max": 41, "y_max": 10}]},
         r"images/a.png\) boxes\[0\]: box .* outside the 40×20 image"),
        ({"boxes": [{"class": 3, "x_min": 4, "y_min": 2, "x_max": 8, "y_max": 10}]},
         "class 3 is not a known class index"),
        ({"boxes": [{"class": 0, "x_min": "a", "y_min": 2, "x_max": 8, "y_max": 10}]},
         "x_min must be a finite number"),
        ({"boxes": []}, "has no boxes"),
        ({"split": "test"}, "split must be"),
    ],
)  # fmt: skip
def test_bad_annotations_fail_naming_the_image(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    channel = _write_channel(tmp_path, _document(**change), {"images/a.png": (40, 20)})
    with pytest.raises(DataError, match=message):
        read_annotations(channel)


def test_a_missing_or_foreign_annotations_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no annotations\.json"):
        read_annotations(tmp_path)
    (tmp_path / "annotations.json").write_text('{"schema": "coco"}')
    with pytest.raises(DataError, match=r"schema 'trainyard\.detection/1'"):
        read_annotations(tmp_path)


def test_random_split_is_seeded_and_keeps_a_training_image(tmp_path: Path) -> None:
    write_detection_channel(tmp_path, images=10, size=32, val_fraction=0.0, seed=0)
    _, images = read_annotations(tmp_path)
    first = split_images(images, 0.3, seed=4)
    assert [len(part) for part in first[:2]] == [7, 3] and first[2] is False
    assert split_images(images, 0.3, seed=4) == first
    assert len(split_images(images[:1], 0.9, seed=0)[0]) == 1


# --- hyperparameters and weights -------------------------------------------------------------


def test_detection_defaults_and_bounds() -> None:
    config = parse_detection_config({"job_id": "j"})
    assert (config.backbone, config.image_size, config.epochs, config.augment) == (
        "resnet_small", 256, 20, True)  # fmt: skip
    assert config.exports == ("keras", "onnx", "tflite")
    with pytest.raises(ConfigError, match="image_size=100 must be a multiple of 32"):
        parse_detection_config({"job_id": "j", "image_size": 100})
    with pytest.raises(ConfigError, match=r"resnet_small has no ImageNet weights"):
        parse_detection_config({"job_id": "j", "weights": "imagenet"})
    with pytest.raises(ConfigError, match=r"unknown hyperparameter.*alpha"):
        parse_detection_config({"job_id": "j", "alpha": 0.5})


def test_a_missing_keras_hub_preset_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="TRAINYARD_WEIGHTS_DIR is not set"):
        resolve_keras_hub_preset("resnet_18_imagenet", {})
    with pytest.raises(WeightsNotFoundError, match=r"keras_hub/resnet_18_imagenet/config\.json"):
        resolve_keras_hub_preset("resnet_18_imagenet", {"TRAINYARD_WEIGHTS_DIR": str(tmp_path)})
