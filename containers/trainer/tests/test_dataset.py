from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.dataset import list_images, load_dataset, load_image, stratified_split
from trainer.errors import DataError
from trainer.synthetic import write_shapes_dataset

CLASSES = ("blue triangle", "green square", "red circle")


def test_manifest_with_explicit_val_split_ignores_validation_split(tmp_path: Path) -> None:
    write_shapes_dataset(tmp_path, per_class=10, size=32, validation_fraction=0.3)
    dataset = load_dataset(tmp_path, image_size=40, validation_split=0.5, seed=0)
    # Labels are free strings; the files live in class_<i>/ folders that do not name them.
    assert dataset.classes == CLASSES
    assert dataset.explicit_validation
    assert len(dataset.train) == 21 and dataset.validation is not None
    assert len(dataset.validation) == 9
    assert dataset.train.images.shape == (21, 40, 40, 3)
    assert dataset.train.images.dtype == np.uint8
    assert Counter(dataset.validation.labels.tolist()) == {0: 3, 1: 3, 2: 3}
    assert all(path.startswith("class_") for path in dataset.train.paths)


def test_manifest_without_val_lines_is_split_stratified(shapes_channel: Path) -> None:
    dataset = load_dataset(shapes_channel, image_size=32, validation_split=0.25, seed=3)
    assert not dataset.explicit_validation
    assert dataset.validation is not None
    assert Counter(dataset.validation.labels.tolist()) == {0: 10, 1: 10, 2: 10}
    assert Counter(dataset.train.labels.tolist()) == {0: 30, 1: 30, 2: 30}
    assert not set(dataset.train.paths) & set(dataset.validation.paths)


def test_validation_split_zero_means_no_validation_set(shapes_channel: Path) -> None:
    dataset = load_dataset(shapes_channel, image_size=32, validation_split=0.0, seed=0)
    assert dataset.validation is None and len(dataset.train) == 120


def test_class_folder_layout(tmp_path: Path) -> None:
    write_shapes_dataset(tmp_path, per_class=5, size=32, layout="class_folders")
    (tmp_path / "red circle" / "notes.txt").write_text("not an image, skipped")
    items = list_images(tmp_path)
    assert len(items) == 15
    assert {item.label for item in items} == set(CLASSES)
    assert all(item.split is None for item in items)
    dataset = load_dataset(tmp_path, image_size=32, validation_split=0.2, seed=0)
    assert dataset.classes == CLASSES and dataset.validation is not None
    assert len(dataset.validation) == 3


def test_train_val_folder_layout(tmp_path: Path) -> None:
    write_shapes_dataset(
        tmp_path, per_class=10, size=32, layout="split_folders", validation_fraction=0.2
    )
    dataset = load_dataset(tmp_path, image_size=32, validation_split=0.5, seed=0)
    assert dataset.explicit_validation and dataset.classes == CLASSES
    assert dataset.validation is not None and len(dataset.validation) == 6
    assert len(dataset.train) == 24
    assert all(path.startswith("val/") for path in dataset.validation.paths)


def test_a_lone_train_folder_is_split_by_validation_split(tmp_path: Path) -> None:
    write_shapes_dataset(tmp_path / "train", per_class=10, size=32, layout="class_folders")
    dataset = load_dataset(tmp_path, image_size=32, validation_split=0.2, seed=0)
    assert dataset.classes == CLASSES
    assert dataset.validation is not None and len(dataset.validation) == 6


def test_stratified_split_is_seeded_proportional_and_keeps_a_training_image() -> None:
    labels = ["a"] * 10 + ["b"] * 20 + ["c"] * 1
    train, validation = stratified_split(labels, 0.3, seed=11)
    assert stratified_split(labels, 0.3, seed=11) == (train, validation)
    assert stratified_split(labels, 0.3, seed=12) != (train, validation)
    assert Counter(labels[i] for i in validation) == {"a": 3, "b": 6}
    assert sorted(train + validation) == list(range(len(labels)))
    # The single "c" image stays in training even at the largest allowed fraction.
    _, big_validation = stratified_split(labels, 0.9, seed=0)
    assert "c" not in {labels[i] for i in big_validation}
    assert Counter(labels[i] for i in big_validation) == {"a": 9, "b": 18}


def test_decoding_matches_the_service_prediction_preprocessing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (50, 70, 4), dtype=np.uint8), "RGBA")
    path = tmp_path / "photo.png"
    rgba.save(path)
    expected = np.asarray(
        Image.open(path).convert("RGB").resize((33, 33), Image.BILINEAR), dtype=np.float32
    )
    decoded = load_image(path, 33)
    assert decoded.shape == (33, 33, 3)
    np.testing.assert_array_equal(decoded.astype(np.float32), expected)


def test_an_undecodable_image_is_named(tmp_path: Path) -> None:
    write_shapes_dataset(tmp_path, per_class=4, size=32)
    (tmp_path / "class_1" / "0002.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"cannot decode image 'class_1/0002\.png'"):
        load_dataset(tmp_path, image_size=32, validation_split=0.2, seed=0)


def _write_manifest(channel: Path, records: list[dict[str, object]]) -> None:
    channel.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(record) + "\n" for record in records)
    (channel / "manifest.jsonl").write_text(text)


def test_manifest_errors_name_the_line_and_file(tmp_path: Path) -> None:
    write_shapes_dataset(tmp_path, per_class=2, size=32)
    _write_manifest(tmp_path, [{"path": "class_0/0000.png", "label": "x"},
                               {"path": "missing.png", "label": "y"}])  # fmt: skip
    with pytest.raises(DataError, match=r"line 2: image file 'missing\.png' does not exist"):
        list_images(tmp_path)
    _write_manifest(tmp_path, [{"path": "../outside.png", "label": "x"}])
    with pytest.raises(DataError, match="must be relative to the channel"):
        list_images(tmp_path)
    _write_manifest(tmp_path, [{"path": "class_0/0000.png", "label": "x", "split": "test"}])
    with pytest.raises(DataError, match="'split' must be"):
        list_images(tmp_path)


def test_one_class_or_a_class_without_training_images_is_refused(tmp_path: Path) -> None:
    write_shapes_dataset(tmp_path, per_class=3, size=32)
    _write_manifest(tmp_path, [{"path": f"class_0/000{i}.png", "label": "only"} for i in range(3)])
    with pytest.raises(DataError, match="at least 2 classes"):
        load_dataset(tmp_path, image_size=32, validation_split=0.2, seed=0)
    _write_manifest(
        tmp_path,
        [{"path": "class_0/0000.png", "label": "a", "split": "train"},
         {"path": "class_1/0000.png", "label": "b", "split": "val"}],
    )  # fmt: skip
    with pytest.raises(DataError, match="'b' have no training images"):
        load_dataset(tmp_path, image_size=32, validation_split=0.2, seed=0)


def test_an_empty_channel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no images"):
        list_images(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "absent")
