"""Object detection datasets: COCO JSON or YOLO txt annotations, read from an unpacked folder,
checked, and converted into the one document the trainer reads (schema trainyard.detection/1,
docs/job-contract.md).

The reader works on a directory, whatever brought the files there (an uploaded archive, a
bucket download), and stores nothing: the caller stores what it returns. Every refusal is an
InvalidInput naming the file, and the line or annotation where there is one.

The layout is told from what the folder holds; a single wrapping folder is looked through,
and `__MACOSX` and dot files are ignored:

- YOLO: `images/` and `labels/` folders. The label of `images/<path>/<stem>.<ext>` is
  `labels/<path>/<stem>.txt`, one `class x_center y_center width height` line per box,
  normalised to 0..1. Images under `images/train/` and `images/val/` get that split. Class
  names come from `classes.txt` (one per line, at the top or in `labels/`), else from
  `data.yaml` / `dataset.yaml` (`names:` as a list or as an {id: name} mapping).
- COCO: one `.json` (`images`, `annotations` with `bbox` [x, y, width, height] in pixels,
  `categories`), or two whose names contain `train` and `val`, which give the splits. A
  `file_name` is looked up relative to the .json's folder, then to the top of the dataset,
  in each place directly and then under `images/`; the first file that exists is taken.
  Classes are the category names in the order of their ids.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import InvalidInput
from .archives import is_visible_name
from .images import check_image

SCHEMA = "trainyard.detection/1"
ANNOTATIONS_FILE = "annotations.json"
SPLITS = ("train", "val")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
# Labelling tools round box corners; a box may overshoot the image by this many pixels, and
# is clipped to it. Beyond that the annotation is wrong.
EDGE_TOLERANCE_PIXELS = 1.0
COORDINATE_DECIMALS = 4  # stored box corners: 1/10000 of a pixel is precision enough
MAX_CLASS_NAME_LENGTH = 200
LAYOUT_FOLDERS = frozenset({"images", "labels", "annotations"})  # never a wrapping folder
YOLO_CLASS_FILES = ("classes.txt", "labels/classes.txt")
YOLO_YAML_FILES = ("data.yaml", "dataset.yaml")
YOLO_LINE_HELP = "class x_center y_center width height"
LAYOUT_HELP = (
    "expected COCO (a .json with images, annotations and categories, or two whose names contain"
    " 'train' and 'val') or YOLO (images/ and labels/ folders, with classes.txt or data.yaml)"
)


@dataclass(frozen=True)
class Box:
    class_index: int
    x_min: float
    y_min: float
    x_max: float
    y_max: float


@dataclass(frozen=True)
class AnnotatedImage:
    path: Path  # the checked image file
    source: str  # its path as uploaded, relative to the dataset's folder
    suffix: str  # the file ending it is stored with
    width: int
    height: int
    split: str | None
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class DetectionDataset:
    format: str  # "coco" or "yolo": what was uploaded
    classes: list[str]
    annotations: dict[str, Any]  # the canonical document (annotations.json)
    files: list[tuple[Path, str]]  # (image file, its path in the stored dataset)
    details: dict[str, Any]  # the counts a Dataset record keeps


def read_detection_dataset(root: Path, max_image_pixels: int) -> DetectionDataset:
    """Read, check and convert the COCO or YOLO dataset unpacked under `root`."""
    root = root.resolve()
    top = _content_root(root)
    if (top / "images").is_dir() and (top / "labels").is_dir():
        return _read_yolo(root, top, max_image_pixels)
    json_files = [f for f in _visible_files(root, top) if f.suffix.lower() == ".json"]
    if json_files:
        return _read_coco(root, top, json_files, max_image_pixels)
    raise InvalidInput(f"no detection annotations found; {LAYOUT_HELP}")


# --- the canonical form ----------------------------------------------------------------------


def stored_image_name(index: int, image: AnnotatedImage) -> str:
    return f"images/{index:06d}{image.suffix}"


def _assemble(format_: str, classes: list[str], images: list[AnnotatedImage], where: str) -> DetectionDataset:
    if not images:
        raise InvalidInput(f"{where} holds no images")
    boxes_per_class = Counter(box.class_index for image in images for box in image.boxes)
    if not boxes_per_class:
        raise InvalidInput(f"{where} has no boxes; a detector needs at least one")
    files = [(image.path, stored_image_name(index, image)) for index, image in enumerate(images, 1)]
    document = {
        "schema": SCHEMA,
        "classes": classes,
        "images": [
            {
                "file": file,
                "width": image.width,
                "height": image.height,
                "split": image.split,
                "boxes": [
                    {
                        "class": b.class_index,
                        "x_min": b.x_min,
                        "y_min": b.y_min,
                        "x_max": b.x_max,
                        "y_max": b.y_max,
                    }
                    for b in image.boxes
                ],
                "source": image.source,
            }
            for (_, file), image in zip(files, images, strict=True)
        ],
    }
    splits = Counter(image.split or "unassigned" for image in images)
    details = {
        "format": format_,
        "annotations": ANNOTATIONS_FILE,
        "boxes": sum(boxes_per_class.values()),
        "boxes_per_class": {name: boxes_per_class[index] for index, name in enumerate(classes)},
        "images_per_split": {split: splits[split] for split in (*SPLITS, "unassigned")},
    }
    return DetectionDataset(format_, classes, document, files, details)


def _box(
    class_index: int, corners: tuple[float, float, float, float], width: int, height: int, where: str
) -> Box:
    """A box in pixels, checked against its image and clipped to it."""
    x_min, y_min, x_max, y_max = corners
    shown = f"({x_min:g}, {y_min:g}, {x_max:g}, {y_max:g})"
    if not (x_max > x_min and y_max > y_min):
        raise InvalidInput(f"{where}: box {shown} has zero or negative size")
    tolerance = EDGE_TOLERANCE_PIXELS
    if x_min < -tolerance or y_min < -tolerance or x_max > width + tolerance or y_max > height + tolerance:
        raise InvalidInput(
            f"{where}: box {shown} (x_min, y_min, x_max, y_max) is outside the {width}x{height} image"
        )
    clipped = (max(x_min, 0.0), max(y_min, 0.0), min(x_max, float(width)), min(y_max, float(height)))
    box = Box(class_index, *(round(value, COORDINATE_DECIMALS) for value in clipped))
    if not (box.x_max > box.x_min and box.y_max > box.y_min):
        raise InvalidInput(f"{where}: box {shown} lies on the image's edge: nothing of it is inside")
    return box


def _check_class_names(names: list[str], where: str) -> list[str]:
    if not names:
        raise InvalidInput(f"{where}: no class names")
    for name in names:
        if not name.strip():
            raise InvalidInput(f"{where}: a class name is empty")
        if len(name) > MAX_CLASS_NAME_LENGTH:
            raise InvalidInput(f"{where}: class name {name[:40]!r}… is longer than {MAX_CLASS_NAME_LENGTH}")
    duplicated = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicated:
        raise InvalidInput(f"{where}: class name(s) {', '.join(map(repr, duplicated))} appear more than once")
    return names


def _checked_image(root: Path, path: Path, max_pixels: int) -> tuple[str, int, int, str]:
    """(relative name, width, height, stored suffix) of an image that decodes fully."""
    name = _relative(root, path)
    checked = check_image(path.read_bytes(), name, max_pixels)
    return name, checked.width, checked.height, path.suffix.lower() or f".{checked.extension}"


# --- files -------------------------------------------------------------------------------------


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _visible_files(root: Path, directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and all(is_visible_name(part) for part in path.relative_to(root).parts)
    )


def _content_root(root: Path) -> Path:
    """A single wrapping folder ("shapes/…") holding everything is looked through."""
    while True:
        entries = [p for p in root.iterdir() if is_visible_name(p.name)]
        if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in LAYOUT_FOLDERS:
            root = entries[0]
            continue
        return root


def _read_text(root: Path, path: Path) -> str:
    name = _relative(root, path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{name} is not UTF-8 text") from None
    if not text.strip():
        raise InvalidInput(f"{name} is empty")
    return text


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{where}: {value!r} is not a finite number")
    return float(value)


# --- YOLO ------------------------------------------------------------------------------------


def _read_yolo(root: Path, top: Path, max_pixels: int) -> DetectionDataset:
    classes = _yolo_classes(root, top)
    images_dir, labels_dir = top / "images", top / "labels"
    labels = {
        path
        for path in _visible_files(root, labels_dir)
        if path.suffix.lower() == ".txt" and path != labels_dir / "classes.txt"
    }
    images: list[AnnotatedImage] = []
    claimed: dict[Path, Path] = {}  # label file → the image it belongs to
    for path in _visible_files(root, images_dir):
        relative = path.relative_to(images_dir)
        label = (labels_dir / relative).with_suffix(".txt")
        if label in claimed:
            raise InvalidInput(
                f"{_relative(root, claimed[label])} and {_relative(root, path)} share the label file"
                f" {_relative(root, label)}; give each image its own name"
            )
        if label not in labels:
            raise InvalidInput(f"{_relative(root, path)} has no label file {_relative(root, label)}")
        claimed[label] = path
        name, width, height, suffix = _checked_image(root, path, max_pixels)
        split = relative.parts[0] if len(relative.parts) > 1 and relative.parts[0] in SPLITS else None
        boxes = _yolo_boxes(root, label, classes, width, height)
        images.append(AnnotatedImage(path, name, suffix, width, height, split, boxes))
    orphans = sorted(labels - claimed.keys())
    if orphans:
        image = (images_dir / orphans[0].relative_to(labels_dir)).with_suffix(".*")
        raise InvalidInput(f"{_relative(root, orphans[0])} has no image {_relative(root, image)}")
    return _assemble("yolo", classes, images, _relative(root, images_dir) + "/")


def _yolo_boxes(root: Path, label: Path, classes: list[str], width: int, height: int) -> tuple[Box, ...]:
    name = _relative(root, label)
    boxes = []
    for number, line in enumerate(_read_text(root, label).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        fields = line.split()
        if len(fields) != 5:
            raise InvalidInput(f"{where}: expected 5 values ({YOLO_LINE_HELP}), found {len(fields)}")
        try:
            class_index = int(fields[0])
        except ValueError:
            raise InvalidInput(f"{where}: class {fields[0]!r} is not a whole number") from None
        if not 0 <= class_index < len(classes):
            raise InvalidInput(
                f"{where}: class {class_index} is unknown; there are {len(classes)} classes"
                f" (0..{len(classes) - 1})"
            )
        values = []
        for field in fields[1:]:
            try:
                values.append(_number(float(field), where))
            except ValueError:
                raise InvalidInput(f"{where}: {field!r} is not a number") from None
        x, y, w, h = values
        corners = ((x - w / 2) * width, (y - h / 2) * height, (x + w / 2) * width, (y + h / 2) * height)
        boxes.append(_box(class_index, corners, width, height, where))
    return tuple(boxes)


def _yolo_classes(root: Path, top: Path) -> list[str]:
    for candidate in YOLO_CLASS_FILES:
        path = top / candidate
        if path.is_file():
            lines = _read_text(root, path).rstrip().splitlines()
            name = _relative(root, path)
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    raise InvalidInput(f"{name} line {number}: class name is empty")
            return _check_class_names([line.strip() for line in lines], name)
    for candidate in YOLO_YAML_FILES:
        path = top / candidate
        if path.is_file():
            name = _relative(root, path)
            return _check_class_names(yaml_class_names(_read_text(root, path), name), name)
    raise InvalidInput(
        f"YOLO dataset without class names: add classes.txt (one name per line, line n = class n)"
        f" or data.yaml with names:; {LAYOUT_HELP}"
    )


# The names of a YOLO data.yaml, read without a YAML library (the service does not carry one):
# `names: [a, b]`, `names: {0: a, 1: b}`, or the same as an indented block of `- a` or `0: a`
# lines. Quotes and comments are understood; anything else in the file is not read.
YAML_KEY = re.compile(r"^(names|nc)\s*:(.*)$")
YAML_ENTRY = re.compile(r"^([^:]+?)\s*:\s*(.*)$")


def yaml_class_names(text: str, where: str) -> list[str]:
    lines = text.splitlines()
    names: list[str] | None = None
    declared: int | None = None
    for index, line in enumerate(lines):
        match = YAML_KEY.match(line)
        if match is None:
            continue
        value = _strip_comment(match.group(2)).strip()
        if match.group(1) == "nc":
            declared = int(value) if value.isdigit() else None
        elif value:
            names = _flow_names(value, f"{where} line {index + 1}")
        else:
            names = _block_names(lines[index + 1 :], f"{where} line {index + 2}")
    if names is None:
        raise InvalidInput(f"{where}: no names: entry (the class names)")
    if declared is not None and declared != len(names):
        raise InvalidInput(f"{where}: nc is {declared} but names lists {len(names)} classes")
    return names


def _strip_comment(text: str) -> str:
    quote = None
    for position, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or text[position - 1].isspace()):
            return text[:position]
    return text


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


def _split_flow(text: str) -> list[str]:
    """The items of a flow collection's inside, split at commas outside quotes."""
    items, current, quote = [], "", None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            items.append(current)
            current = ""
            continue
        current += char
    if current.strip():
        items.append(current)
    return items


def _flow_names(value: str, where: str) -> list[str]:
    if value.startswith("[") and value.endswith("]"):
        return [_scalar(item) for item in _split_flow(value[1:-1])]
    if value.startswith("{") and value.endswith("}"):
        return _names_by_id(_split_flow(value[1:-1]), where)
    raise InvalidInput(f"{where}: names must be a list [a, b] or a mapping {{0: a, 1: b}}")


def _block_names(lines: list[str], where: str) -> list[str]:
    block = []
    for line in lines:
        content = _strip_comment(line)
        if not content.strip():
            continue
        if not content[0].isspace() and not content.startswith("-"):
            break  # the next top-level key
        block.append(content.strip())
    if block and all(item.startswith("-") for item in block):
        return [_scalar(item[1:]) for item in block]
    if block and not any(item.startswith("-") for item in block):
        return _names_by_id(block, where)
    raise InvalidInput(f"{where}: names must be a list of '- name' lines or of 'id: name' lines")


def _names_by_id(entries: Iterable[str], where: str) -> list[str]:
    by_id: dict[int, str] = {}
    for entry in entries:
        match = YAML_ENTRY.match(entry.strip())
        key = _scalar(match.group(1)) if match else ""
        if match is None or not key.isdigit():
            raise InvalidInput(f"{where}: {entry.strip()!r} is not an 'id: name' entry")
        by_id[int(key)] = _scalar(match.group(2))
    if sorted(by_id) != list(range(len(by_id))):
        raise InvalidInput(f"{where}: the class ids of names must be 0..{len(by_id) - 1}, each once")
    return [by_id[i] for i in range(len(by_id))]


# --- COCO ------------------------------------------------------------------------------------


@dataclass
class _CocoImage:
    path: Path
    source: str
    suffix: str
    width: int
    height: int
    boxes: list[Box]


def _read_coco(root: Path, top: Path, json_files: list[Path], max_pixels: int) -> DetectionDataset:
    splits = _coco_splits(root, json_files)
    documents = [(path, split, _load_coco(root, path)) for path, split in splits]
    categories, classes = _coco_categories(root, documents)
    images: list[AnnotatedImage] = []
    listed: dict[Path, str] = {}  # image file → the .json that lists it
    for path, split, document in documents:
        for image in _coco_images(root, top, path, document, categories, max_pixels, listed):
            images.append(
                AnnotatedImage(
                    image.path,
                    image.source,
                    image.suffix,
                    image.width,
                    image.height,
                    split,
                    tuple(image.boxes),
                )
            )
    unlisted = [
        p for p in _visible_files(root, top) if p.suffix.lower() in IMAGE_SUFFIXES and p not in listed
    ]
    if unlisted:
        more = f" (and {len(unlisted) - 1} more)" if len(unlisted) > 1 else ""
        raise InvalidInput(
            f"{_relative(root, unlisted[0])}{more} is in the dataset but no annotation file lists it;"
            " list it in images (it may have no annotations) or leave it out"
        )
    return _assemble("coco", classes, images, " and ".join(_relative(root, path) for path, _ in splits))


def _coco_splits(root: Path, json_files: list[Path]) -> list[tuple[Path, str | None]]:
    if len(json_files) == 1:
        return [(json_files[0], None)]
    train = [p for p in json_files if "train" in p.name.lower() and "val" not in p.name.lower()]
    val = [p for p in json_files if "val" in p.name.lower() and "train" not in p.name.lower()]
    if len(json_files) == 2 and len(train) == len(val) == 1:
        return [(train[0], "train"), (val[0], "val")]
    names = ", ".join(_relative(root, p) for p in json_files)
    raise InvalidInput(
        f"found {len(json_files)} .json files ({names}); expected one COCO annotation file, or two"
        " whose names contain 'train' and 'val'"
    )


def _load_coco(root: Path, path: Path) -> dict[str, Any]:
    name = _relative(root, path)
    try:
        document = json.loads(_read_text(root, path))
    except ValueError as exc:
        raise InvalidInput(f"{name} is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"{name}: expected a COCO object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        entries = document.get(key)
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise InvalidInput(f"{name}: {key} must be a list of objects")
    return document


def _coco_id(value: object, where: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise InvalidInput(f"{where}: id must be an integer or a non-empty string, not {value!r}")
    return value


def _coco_categories(
    root: Path, documents: list[tuple[Path, str | None, dict[str, Any]]]
) -> tuple[dict[int | str, int], list[str]]:
    """Category id → class index, and the class names in the order of the ids."""
    first: tuple[str, dict[int | str, str]] | None = None
    for path, _, document in documents:
        name = _relative(root, path)
        names: dict[int | str, str] = {}
        for index, category in enumerate(document["categories"]):
            category_id = _coco_id(category.get("id"), f"{name}: categories[{index}]")
            if category_id in names:
                raise InvalidInput(f"{name}: category id {category_id!r} appears more than once")
            label = category.get("name")
            if not isinstance(label, str):
                raise InvalidInput(f"{name}: category {category_id!r} has no name")
            names[category_id] = label
        if first is None:
            first = (name, names)
        elif names != first[1]:
            raise InvalidInput(
                f"{name}: its categories differ from those of {first[0]}; both must list the same"
            )
    assert first is not None
    where, names = first
    ordered = sorted(names, key=_id_order)
    classes = _check_class_names([names[category_id] for category_id in ordered], f"{where} categories")
    return {category_id: index for index, category_id in enumerate(ordered)}, classes


def _id_order(category_id: int | str) -> tuple[int, int, str]:
    """Integer ids in numeric order (the usual case), then any string ids."""
    return (0, category_id, "") if isinstance(category_id, int) else (1, 0, category_id)


def _coco_file(root: Path, top: Path, base: Path, file_name: str) -> Path | None:
    """The file a COCO file_name names: beside the .json, then from the top, each directly and
    under images/."""
    relative = PurePosixPath(file_name.replace("\\", "/"))
    hidden = not all(is_visible_name(part) for part in relative.parts)
    if relative.is_absolute() or ".." in relative.parts or hidden:
        return None
    for folder in (base, base / "images", top, top / "images"):
        candidate = folder.joinpath(*relative.parts)
        if candidate.is_file():
            return candidate
    return None


def _coco_images(
    root: Path,
    top: Path,
    json_path: Path,
    document: dict[str, Any],
    categories: dict[int | str, int],
    max_pixels: int,
    listed: dict[Path, str],
) -> list[_CocoImage]:
    name = _relative(root, json_path)
    by_id: dict[int | str, _CocoImage] = {}
    for index, entry in enumerate(document["images"]):
        image_id = _coco_id(entry.get("id"), f"{name}: images[{index}]")
        where = f"{name}: image id {image_id!r}"
        if image_id in by_id:
            raise InvalidInput(f"{where} appears more than once")
        file_name = entry.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            raise InvalidInput(f"{where} has no file_name")
        path = _coco_file(root, top, json_path.parent, file_name)
        if path is None:
            raise InvalidInput(
                f"{where}: file_name {file_name!r} is not in the dataset (looked beside the .json and"
                " at the top, each directly and under images/)"
            )
        if path in listed:
            raise InvalidInput(f"{where}: {_relative(root, path)} is listed twice (also in {listed[path]})")
        listed[path] = name
        source, width, height, suffix = _checked_image(root, path, max_pixels)
        declared = (entry.get("width"), entry.get("height"))
        if declared != (width, height) and declared != (None, None):
            raise InvalidInput(
                f"{where} ({source}) is {declared[0]}x{declared[1]} in the JSON but the image is"
                f" {width}x{height}"
            )
        by_id[image_id] = _CocoImage(path, source, suffix, width, height, [])
    for index, annotation in enumerate(document["annotations"]):
        label = f"annotation id {annotation['id']!r}" if "id" in annotation else f"annotations[{index}]"
        where = f"{name}: {label}"
        image = by_id.get(annotation.get("image_id"))
        if image is None:
            raise InvalidInput(f"{where}: image_id {annotation.get('image_id')!r} is not in images")
        category = categories.get(annotation.get("category_id"))
        if category is None:
            raise InvalidInput(f"{where}: category_id {annotation.get('category_id')!r} is not in categories")
        bbox = annotation.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise InvalidInput(f"{where}: bbox must be [x, y, width, height] in pixels, not {bbox!r}")
        x, y, w, h = (_number(value, f"{where}: bbox") for value in bbox)
        image.boxes.append(_box(category, (x, y, x + w, y + h), image.width, image.height, where))
    return list(by_id.values())
