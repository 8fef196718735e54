"""The detection dataset reader on unpacked folders: both layouts, with and without splits,
converted to the canonical annotations; and every bad input refused with InvalidInput (a 422)
whose message names the file, and the line or annotation where there is one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.synthetic_detection import (
    CLASSES,
    DetectionSample,
    coco_document,
    coco_files,
    detection_samples,
    yolo_files,
)
from trainyard.api.errors import STATUS_BY_ERROR
from trainyard.errors import InvalidInput
from trainyard.services.detection_datasets import (
    SCHEMA,
    DetectionDataset,
    read_detection_dataset,
    yaml_class_names,
)

MAX_PIXELS = 10_000_000
# Non-square images, so that x and y cannot be mixed up unnoticed.
SAMPLES = detection_samples(4, seed=3, width=64, height=48)
SPLIT_SAMPLES = detection_samples(4, seed=3, width=64, height=48, split=True)
NOT_AN_IMAGE = b"this is not a png"

Files = dict[str, bytes]


def write(root: Path, files: Files) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read(tmp_path: Path, files: Files) -> DetectionDataset:
    return read_detection_dataset(write(tmp_path / "dataset", files), MAX_PIXELS)


def refused(tmp_path: Path, files: Files) -> str:
    with pytest.raises(InvalidInput) as caught:
        read(tmp_path, files)
    assert STATUS_BY_ERROR[type(caught.value)] == 422
    return caught.value.message


def expected_boxes(sample: DetectionSample) -> list[dict[str, Any]]:
    return [
        {
            "class": CLASSES.index(b.label),
            "x_min": b.x_min,
            "y_min": b.y_min,
            "x_max": b.x_max,
            "y_max": b.y_max,
        }
        for b in sample.boxes
    ]


def assert_boxes_close(found: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [b["class"] for b in found] == [b["class"] for b in expected]
    for got, want in zip(found, expected, strict=True):
        for key in ("x_min", "y_min", "x_max", "y_max"):
            assert got[key] == pytest.approx(want[key], abs=1e-3)  # YOLO keeps 6 decimals of 0..1


# --- the layouts --------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["coco", "yolo"])
def test_a_dataset_without_a_split(tmp_path: Path, layout: str) -> None:
    files = coco_files(SAMPLES) if layout == "coco" else yolo_files(SAMPLES)
    dataset = read(tmp_path, files)
    assert dataset.format == layout and dataset.classes == list(CLASSES)
    document = dataset.annotations
    assert document["schema"] == SCHEMA and document["classes"] == list(CLASSES)
    assert [image["file"] for image in document["images"]] == [f"images/{i:06d}.png" for i in range(1, 5)]
    assert [image["source"] for image in document["images"]] == [f"images/{s.name}" for s in SAMPLES]
    for image, sample in zip(document["images"], SAMPLES, strict=True):
        assert (image["width"], image["height"], image["split"]) == (64, 48, None)
        assert_boxes_close(image["boxes"], expected_boxes(sample))
    assert [stored for _, stored in dataset.files] == [image["file"] for image in document["images"]]
    assert [path.name for path, _ in dataset.files] == [s.name for s in SAMPLES]
    boxes = [b for s in SAMPLES for b in s.boxes]
    assert dataset.details == {
        "format": layout,
        "annotations": "annotations.json",
        "boxes": len(boxes),
        "boxes_per_class": {name: sum(b.label == name for b in boxes) for name in CLASSES},
        "images_per_split": {"train": 0, "val": 0, "unassigned": 4},
    }


@pytest.mark.parametrize("layout", ["coco", "yolo"])
def test_train_and_val_splits(tmp_path: Path, layout: str) -> None:
    files = coco_files(SPLIT_SAMPLES) if layout == "coco" else yolo_files(SPLIT_SAMPLES)
    dataset = read(tmp_path, files)
    splits = {image["source"].rsplit("/", 1)[1]: image["split"] for image in dataset.annotations["images"]}
    assert splits == {s.name: s.split for s in SPLIT_SAMPLES}
    assert dataset.details["images_per_split"] == {"train": 3, "val": 1, "unassigned": 0}


def test_a_wrapping_folder_and_macos_metadata_are_looked_through(tmp_path: Path) -> None:
    files = {f"shapes/{name}": data for name, data in yolo_files(SAMPLES).items()}
    files |= {"__MACOSX/shapes/._images": b"junk", "shapes/.DS_Store": b"junk", "shapes/images/.x.png": b"x"}
    dataset = read(tmp_path, files)
    assert dataset.annotations["images"][0]["source"] == f"shapes/images/{SAMPLES[0].name}"
    assert len(dataset.files) == 4


def test_coco_category_ids_may_be_any_integers_classes_follow_their_order(tmp_path: Path) -> None:
    # circle=42, square=7, triangle=19: ordered by id, the classes are square, triangle, circle
    dataset = read(tmp_path, coco_files(SAMPLES, category_ids=(42, 7, 19)))
    assert dataset.classes == ["square", "triangle", "circle"]
    first = dataset.annotations["images"][0]["boxes"]
    assert [dataset.classes[b["class"]] for b in first] == [b.label for b in SAMPLES[0].boxes]


@pytest.mark.parametrize(
    "annotations_at,file_name,image_at",
    [
        ("annotations.json", "a.png", "a.png"),  # beside the .json
        ("annotations/coco.json", "a.png", "annotations/images/a.png"),  # under images/ beside it
        ("annotations/coco.json", "pics/a.png", "pics/a.png"),  # from the top
        ("annotations/coco.json", "a.png", "images/a.png"),  # under images/ at the top
    ],
)
def test_where_coco_file_names_are_looked_up(
    tmp_path: Path, annotations_at: str, file_name: str, image_at: str
) -> None:
    document = coco_document(SAMPLES[:1])
    document["images"][0]["file_name"] = file_name
    dataset = read(tmp_path, {annotations_at: json.dumps(document).encode(), image_at: SAMPLES[0].png})
    assert dataset.annotations["images"][0]["source"] == image_at


def test_a_coco_image_without_annotations_is_a_background_image(tmp_path: Path) -> None:
    document = coco_document(SAMPLES[:2])
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] == 1]
    files = {"annotations.json": json.dumps(document).encode()} | {
        f"images/{s.name}": s.png for s in SAMPLES[:2]
    }
    images = read(tmp_path, files).annotations["images"]
    assert images[1]["boxes"] == [] and len(images[0]["boxes"]) == len(SAMPLES[0].boxes)


def test_a_box_overshooting_by_a_pixel_at_most_is_clipped(tmp_path: Path) -> None:
    document = coco_document(SAMPLES[:1])
    document["annotations"] = [document["annotations"][0] | {"bbox": [-0.8, 40.0, 65.6, 8.9]}]
    files = {"annotations.json": json.dumps(document).encode(), f"images/{SAMPLES[0].name}": SAMPLES[0].png}
    (box,) = read(tmp_path, files).annotations["images"][0]["boxes"]
    assert (box["x_min"], box["y_min"], box["x_max"], box["y_max"]) == (0.0, 40.0, 64.0, 48.0)


# --- bad inputs: COCO ----------------------------------------------------------------------

Change = Callable[[dict[str, Any]], None]


def coco_with(change: Change, extra: Files | None = None) -> Files:
    """The COCO layout with its annotations.json changed."""
    files = coco_files(SAMPLES)
    document = json.loads(files["annotations.json"])
    change(document)
    return files | {"annotations.json": json.dumps(document).encode()} | (extra or {})


def first_annotation(**fields: Any) -> Change:
    return lambda document: document["annotations"][0].update(fields)


def first_image(**fields: Any) -> Change:
    return lambda document: document["images"][0].update(fields)


def unknown_category_without_an_id(document: dict[str, Any]) -> None:
    del document["annotations"][1]["id"]
    document["annotations"][1]["category_id"] = 5


COCO_CASES: dict[str, tuple[Files, list[str]]] = {
    "undecodable image": (
        coco_files(SAMPLES) | {f"images/{SAMPLES[1].name}": NOT_AN_IMAGE},
        [f"images/{SAMPLES[1].name}", "not a readable image"],
    ),
    "box outside the image": (
        coco_with(first_annotation(bbox=[50.0, 10.0, 20.0, 10.0])),
        ["annotations.json: annotation id 1", "outside the 64x48 image"],
    ),
    "box above the image": (
        coco_with(first_annotation(bbox=[5.0, -3.0, 10.0, 10.0])),
        ["annotations.json: annotation id 1", "outside"],
    ),
    "zero-width box": (
        coco_with(first_annotation(bbox=[5.0, 5.0, 0.0, 10.0])),
        ["annotations.json: annotation id 1", "zero or negative size"],
    ),
    "negative-height box": (
        coco_with(first_annotation(bbox=[5.0, 5.0, 10.0, -4.0])),
        ["annotations.json: annotation id 1", "zero or negative size"],
    ),
    "unknown category id": (
        coco_with(first_annotation(category_id=99)),
        ["annotations.json: annotation id 1", "category_id 99 is not in categories"],
    ),
    "unknown image id": (
        coco_with(first_annotation(image_id=99)),
        ["annotations.json: annotation id 1", "image_id 99 is not in images"],
    ),
    "annotation without an id": (
        coco_with(unknown_category_without_an_id),
        ["annotations.json: annotations[1]", "category_id 5"],
    ),
    "empty json": (coco_files(SAMPLES) | {"annotations.json": b""}, ["annotations.json is empty"]),
    "whitespace json": (
        coco_files(SAMPLES) | {"annotations.json": b" \n\t\n"},
        ["annotations.json is empty"],
    ),
    "not json": (
        coco_files(SAMPLES) | {"annotations.json": b"{images: ["},
        ["annotations.json is not valid JSON"],
    ),
    "not a COCO object": (
        coco_files(SAMPLES) | {"annotations.json": b"[1, 2]"},
        ["annotations.json: expected"],
    ),
    "annotations not a list": (
        coco_with(lambda d: d.update(annotations={"a": 1})),
        ["annotations.json: annotations must be a list"],
    ),
    "file_name not in the archive": (
        coco_with(first_image(file_name="missing.png")),
        ["annotations.json: image id 1", "file_name 'missing.png' is not in the dataset"],
    ),
    "file_name escaping the dataset": (
        coco_with(first_image(file_name="../images/x.png")),
        ["annotations.json: image id 1", "is not in the dataset"],
    ),
    "image no json mentions": (
        coco_files(SAMPLES) | {"images/extra.png": SAMPLES[0].png},
        ["images/extra.png", "no annotation file lists it"],
    ),
    "image listed twice": (
        coco_with(lambda d: d["images"][1].update(file_name=d["images"][0]["file_name"])),
        ["annotations.json: image id 2", f"images/{SAMPLES[0].name} is listed twice"],
    ),
    "bbox with three numbers": (
        coco_with(first_annotation(bbox=[1.0, 2.0, 3.0])),
        ["annotations.json: annotation id 1", "bbox must be [x, y, width, height]"],
    ),
    "bbox with a string": (
        coco_with(first_annotation(bbox=[1.0, "2", 3.0, 4.0])),
        ["annotations.json: annotation id 1", "'2' is not a finite number"],
    ),
    "bbox with NaN": (
        coco_with(first_annotation(bbox=[1.0, float("nan"), 3.0, 4.0])),
        ["annotations.json: annotation id 1", "nan is not a finite number"],
    ),
    "width disagrees with the image": (
        coco_with(first_image(width=640)),
        ["annotations.json: image id 1", "is 640x48 in the JSON but the image is 64x48"],
    ),
    "duplicate image ids": (
        coco_with(lambda d: d["images"][1].update(id=1)),
        ["annotations.json: image id 1 appears more than once"],
    ),
    "no images at all": (
        {
            "annotations.json": json.dumps(
                {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}
            ).encode()
        },
        ["annotations.json holds no images"],
    ),
    "no boxes": (coco_with(lambda d: d.update(annotations=[])), ["annotations.json has no boxes"]),
    "empty class name": (
        coco_with(lambda d: d["categories"][1].update(name=" ")),
        ["annotations.json categories", "a class name is empty"],
    ),
    "duplicate class names": (
        coco_with(lambda d: d["categories"][1].update(name="circle")),
        ["annotations.json categories", "'circle' appear more than once"],
    ),
    "duplicate category ids": (
        coco_with(lambda d: d["categories"][1].update(id=1)),
        ["annotations.json: category id 1 appears more than once"],
    ),
    "three annotation files": (
        coco_files(SAMPLES) | {"b.json": b"{}", "c.json": b"{}"},
        ["found 3 .json files (annotations.json, b.json, c.json)"],
    ),
}


@pytest.mark.parametrize("case", COCO_CASES)
def test_bad_coco_datasets_are_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    files, fragments = COCO_CASES[case]
    message = refused(tmp_path, files)
    for fragment in fragments:
        assert fragment in message, message


def test_split_coco_files_must_list_the_same_categories(tmp_path: Path) -> None:
    files = coco_files(SPLIT_SAMPLES)
    val = json.loads(files["annotations/instances_val.json"])
    val["categories"][2]["name"] = "star"
    files["annotations/instances_val.json"] = json.dumps(val).encode()
    message = refused(tmp_path, files)
    assert "annotations/instances_val.json: its categories differ from those of" in message


def test_an_empty_split_coco_file_is_named(tmp_path: Path) -> None:
    files = coco_files(SPLIT_SAMPLES) | {"annotations/instances_val.json": b"  "}
    assert refused(tmp_path, files) == "annotations/instances_val.json is empty"


# --- bad inputs: YOLO ----------------------------------------------------------------------

LABEL = f"labels/{SAMPLES[0].name.removesuffix('.png')}.txt"


def with_label(text: str) -> Files:
    return yolo_files(SAMPLES) | {LABEL: text.encode()}


YOLO_CASES: dict[str, tuple[Files, list[str]]] = {
    "undecodable image": (
        yolo_files(SAMPLES) | {f"images/{SAMPLES[2].name}": NOT_AN_IMAGE},
        [f"images/{SAMPLES[2].name}", "not a readable image"],
    ),
    "box outside the image": (
        with_label("0 1.2 0.5 0.2 0.2\n"),
        [f"{LABEL} line 1", "outside the 64x48 image"],
    ),
    "zero-size box": (with_label("0 0.5 0.5 0.2 0.0\n"), [f"{LABEL} line 1", "zero or negative size"]),
    "negative-size box": (with_label("0 0.5 0.5 -0.2 0.2\n"), [f"{LABEL} line 1", "zero or negative size"]),
    "unknown class id": (
        with_label("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n"),
        [f"{LABEL} line 2", "class 7 is unknown"],
    ),
    "negative class id": (with_label("-1 0.5 0.5 0.2 0.2\n"), [f"{LABEL} line 1", "class -1 is unknown"]),
    "class not a whole number": (
        with_label("1.5 0.5 0.5 0.2 0.2\n"),
        [f"{LABEL} line 1", "'1.5' is not a whole number"],
    ),
    "empty label file": (with_label(""), [f"{LABEL} is empty"]),
    "whitespace label file": (with_label("\n   \n"), [f"{LABEL} is empty"]),
    "label without an image": (
        yolo_files(SAMPLES) | {"labels/ghost.txt": b"0 0.5 0.5 0.2 0.2\n"},
        ["labels/ghost.txt has no image images/ghost.*"],
    ),
    "image without a label": (
        yolo_files(SAMPLES) | {"images/lonely.png": SAMPLES[0].png},
        ["images/lonely.png has no label file labels/lonely.txt"],
    ),
    "two images for one label": (
        yolo_files(SAMPLES) | {f"images/{SAMPLES[0].name.replace('.png', '.jpg')}": SAMPLES[0].png},
        ["share the label file", LABEL],
    ),
    "too few fields": (with_label("0 0.5 0.5 0.2\n"), [f"{LABEL} line 1", "expected 5 values", "found 4"]),
    "too many fields": (with_label("0 0.5 0.5 0.2 0.2 0.1\n"), [f"{LABEL} line 1", "found 6"]),
    "not a number": (with_label("0 0.5 abc 0.2 0.2\n"), [f"{LABEL} line 1", "'abc' is not a number"]),
    "NaN": (with_label("0 0.5 nan 0.2 0.2\n"), [f"{LABEL} line 1", "nan is not a finite number"]),
    "infinity": (with_label("0 0.5 0.5 inf 0.2\n"), [f"{LABEL} line 1", "inf is not a finite number"]),
    "no images at all": (
        {"classes.txt": b"a\n", "images/.keep": b"", "labels/.keep": b""},
        ["images/ holds no images"],
    ),
    "empty classes.txt": (yolo_files(SAMPLES) | {"classes.txt": b"\n"}, ["classes.txt is empty"]),
    "blank class name": (
        yolo_files(SAMPLES) | {"classes.txt": b"circle\n\nsquare\n"},
        ["classes.txt line 2: class name is empty"],
    ),
    "duplicate class names": (
        yolo_files(SAMPLES) | {"classes.txt": b"circle\nsquare\ncircle\n"},
        ["classes.txt", "'circle' appear more than once"],
    ),
    "no class names": (
        {k: v for k, v in yolo_files(SAMPLES).items() if k != "classes.txt"},
        ["YOLO dataset without class names"],
    ),
    "data.yaml names and nc disagree": (
        {k: v for k, v in yolo_files(SAMPLES).items() if k != "classes.txt"}
        | {"data.yaml": b"nc: 2\nnames: [circle, square, triangle]\n"},
        ["data.yaml: nc is 2 but names lists 3 classes"],
    ),
    "data.yaml ids with a gap": (
        {k: v for k, v in yolo_files(SAMPLES).items() if k != "classes.txt"}
        | {"dataset.yaml": b"names:\n  0: circle\n  2: square\n"},
        ["dataset.yaml line 2", "class ids of names must be 0..1"],
    ),
}


@pytest.mark.parametrize("case", YOLO_CASES)
def test_bad_yolo_datasets_are_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    files, fragments = YOLO_CASES[case]
    message = refused(tmp_path, files)
    for fragment in fragments:
        assert fragment in message, message


def test_a_folder_with_neither_layout_is_refused(tmp_path: Path) -> None:
    assert "no detection annotations found; expected COCO" in refused(
        tmp_path, {"pics/a.png": SAMPLES[0].png}
    )


def test_labelimg_keeps_classes_txt_in_labels(tmp_path: Path) -> None:
    files = yolo_files(SAMPLES)
    files["labels/classes.txt"] = files.pop("classes.txt")
    assert read(tmp_path, files).classes == list(CLASSES)


# --- the names of a YOLO data.yaml -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "names: [circle, square, triangle]",
        "nc: 3\nnames: ['circle', \"square\", triangle]  # three shapes",
        "names: {0: circle, 1: square, 2: triangle}",
        "path: ../shapes\ntrain: images/train\nnames:\n  - circle\n  - square # a comment\n  - triangle\n"
        "nc: 3",
        "names:\n  0: circle\n  1: square\n  2: 'triangle'\ndownload: no",
        "names:\n  2: triangle\n  0: circle\n  1: square\n",
    ],
)
def test_yaml_class_names_in_each_form(text: str) -> None:
    assert yaml_class_names(text, "data.yaml") == ["circle", "square", "triangle"]


def test_yaml_names_keep_commas_and_hashes_inside_quotes() -> None:
    assert yaml_class_names("names: ['a, b', \"c # d\"]", "data.yaml") == ["a, b", "c # d"]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("train: images\n", "data.yaml: no names: entry"),
        ("names: circle", "data.yaml line 1: names must be a list"),
        ("names:\n  - a\n  1: b\n", "data.yaml line 2: names must be a list of '- name' lines"),
        ("names:\n  zero: a\n", "data.yaml line 2: 'zero: a' is not an 'id: name' entry"),
    ],
)
def test_unreadable_yaml_names_are_refused(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        yaml_class_names(text, "data.yaml")
    assert expected in caught.value.message


def test_images_over_the_pixel_limit_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_detection_dataset(write(tmp_path, yolo_files(SAMPLES)), max_image_pixels=1000)
    assert caught.value.message == f"images/{SAMPLES[0].name}: image is 64x48, over the 1000-pixel limit"
