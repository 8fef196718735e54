"""Datasets: upload an archive of class folders (classification), of images with COCO or
YOLO boxes (detection) or SLEAP labels (pose), append images, list, delete, and browse a
dataset's pictures (its images with their class or boxes; a pose dataset's sample frames with
their keypoints, which the pose checker drew from the videos when the dataset was made).

Everything is validated before anything is stored; blobs are written first and the records
last, in one transaction, and a failure in between removes the blobs again, so a bad upload
leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..domain import Dataset, Image, Task, new_id
from ..errors import BadRequest, InvalidInput, NotFound, Unavailable
from ..ports import BlobStore, JobStore, Page, PoseProbe
from .archives import ArchiveLimits, detect_archive_kind, extract_archive, is_visible_name
from .detection_datasets import ANNOTATIONS_FILE, read_detection_dataset
from .images import MEDIA_TYPE_BY_SUFFIX, CheckedImage, check_image, decode_base64_image

SPLITS = ("train", "val")
MAX_LABEL_LENGTH = 200
MAX_IMAGES_PER_APPEND = 1000
LAYOUT_HELP = "expected <class>/<image> or train/<class>/<image> + val/<class>/<image>"
POSE_UPLOAD_HELP = "send a .pkg.slp, a .slp with its videos, or a .zip/.7z/.tar.gz holding them"


def dataset_prefix(tenant_id: str, dataset_id: str) -> str:
    """Everything of one dataset is stored under this prefix."""
    return f"tenants/{tenant_id}/datasets/{dataset_id}/"


def check_video_duration(name: str, frames: int, fps: float | None, max_seconds: float) -> None:
    """A video's length is its frames over its frame rate; one whose container declares no
    rate is held to the frame cap alone."""
    if fps and frames / fps > max_seconds:
        raise InvalidInput(
            f"video {name} lasts {frames / fps:.1f} s ({frames} frames at {fps:g} fps); at most"
            f" {max_seconds:g} s"
        )


def dataset_files_prefix(tenant_id: str, dataset_id: str) -> str:
    """Where a pose or detection dataset's files are kept: a pose dataset's under their
    relative paths in the upload, a detection dataset's as annotations.json names them."""
    return dataset_prefix(tenant_id, dataset_id) + "files/"


def pose_sample_key(tenant_id: str, dataset_id: str, sample_id: str) -> str:
    """A pose dataset's sample frames are kept beside its files, not among them: training
    channels name their files one by one, and these are pictures for people."""
    return dataset_prefix(tenant_id, dataset_id) + f"samples/{sample_id}.png"


@dataclass(frozen=True)
class ImageContent:
    """Where a client gets a stored picture: a presigned URL (S3: the bytes never pass
    through the API function), or a local file the API streams."""

    media_type: str
    url: str | None = None
    path: Path | None = None


def _page_after(records: list[dict[str, Any]], limit: int, cursor: str | None) -> Page:
    """One page of `records` in their order; the cursor is the id of the previous page's
    last record, so a page stays put when images are appended to the dataset."""
    start = 0
    if cursor is not None:
        ids = [record["id"] for record in records]
        if cursor not in ids:
            raise BadRequest(f"invalid pagination cursor {cursor!r}")
        start = ids.index(cursor) + 1
    items = records[start : start + limit]
    more = start + limit < len(records)
    return Page(items=items, next_cursor=items[-1]["id"] if more else None)


def _plain_file_name(filename: str | None) -> str:
    """A single uploaded file's name inside the dataset: its base name, nothing more."""
    name = Path((filename or "").replace("\\", "/")).name
    if not name or name.startswith(".") or len(name) > MAX_LABEL_LENGTH:
        raise InvalidInput(f"file name {filename!r} is not usable; {POSE_UPLOAD_HELP}")
    return name


@dataclass(frozen=True)
class LabelledImage:
    label: str
    split: str | None
    image: CheckedImage


def _children(directory: Path) -> tuple[list[Path], list[Path]]:
    entries = sorted(p for p in directory.iterdir() if is_visible_name(p.name))
    return [p for p in entries if p.is_dir()], [p for p in entries if p.is_file()]


def _check_label(label: object, where: str) -> str:
    if not isinstance(label, str) or not label.strip():
        raise InvalidInput(f"{where}: label must be a non-empty string")
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidInput(f"{where}: label is longer than {MAX_LABEL_LENGTH} characters")
    return label


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("name: must be 1 to 200 characters")
    return name


class DatasetService:
    def __init__(
        self,
        store: JobStore,
        blobs: BlobStore,
        tmp_root: Path,
        limits: ArchiveLimits,
        max_image_pixels: int,
        min_images_per_class: int,
        pose_probe: PoseProbe | None = None,
        min_pose_frames: int = 2,
        *,
        max_video_frames: int = 100_000,
        max_video_seconds: float = 3600.0,
        presign_seconds: int = 3600,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._tmp_root = tmp_root
        self._limits = limits
        self._max_pixels = max_image_pixels
        self._min_per_class = min_images_per_class
        self._pose_probe = pose_probe
        self._min_pose_frames = min_pose_frames
        self._max_video_frames = max_video_frames
        self._max_video_seconds = max_video_seconds
        self._presign_seconds = presign_seconds

    @contextmanager
    def _scratch(self, prefix: str) -> Iterator[Path]:
        """A temporary folder for one upload, removed whatever happens."""
        self._tmp_root.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=self._tmp_root))
        try:
            yield workdir
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _record_with_files(
        self,
        dataset: Dataset,
        files: Iterable[tuple[str, Path]],
        documents: dict[str, bytes],
        other_blobs: Mapping[str, bytes] | None = None,
    ) -> Dataset:
        """Store a dataset's files under its files prefix (and `other_blobs` by key), then its
        record; a failure on the way removes what was written, so nothing is left behind."""
        prefix = dataset_files_prefix(dataset.tenant_id, dataset.id)
        try:
            for relative, path in files:
                self._blobs.put_file(prefix + relative, path)
            for relative, data in documents.items():
                self._blobs.put_bytes(prefix + relative, data)
            for key, data in (other_blobs or {}).items():
                self._blobs.put_bytes(key, data)
            self._store.create_dataset(dataset, [])
        except BaseException:
            self._blobs.delete_prefix(dataset_prefix(dataset.tenant_id, dataset.id))
            raise
        return dataset

    # --- reading an archive -----------------------------------------------------------------

    def _read_class_dirs(self, root: Path, split: str | None, prefix: str) -> list[LabelledImage]:
        class_dirs, stray_files = _children(root)
        if stray_files:
            raise InvalidInput(f"{prefix}{stray_files[0].name} is not inside a class folder; {LAYOUT_HELP}")
        images: list[LabelledImage] = []
        for class_dir in class_dirs:
            nested, files = _children(class_dir)
            where = f"{prefix}{class_dir.name}/"
            if nested:
                raise InvalidInput(
                    f"{where}{nested[0].name}/ is a folder inside a class folder; {LAYOUT_HELP}"
                )
            if len(files) < self._min_per_class:
                raise InvalidInput(
                    f"class {class_dir.name!r} ({where}) has {len(files)} images;"
                    f" at least {self._min_per_class} needed"
                )
            for file in files:
                checked = check_image(file.read_bytes(), f"{where}{file.name}", self._max_pixels)
                images.append(LabelledImage(_check_label(class_dir.name, where), split, checked))
        return images

    def _read_layout(self, root: Path) -> list[LabelledImage]:
        # A single wrapping folder ("dataset/…") holding only folders is looked through.
        while True:
            dirs, files = _children(root)
            if len(dirs) == 1 and not files and dirs[0].name not in SPLITS:
                inner_dirs, inner_files = _children(dirs[0])
                if inner_dirs and not inner_files:
                    root = dirs[0]
                    continue
            break
        dirs, files = _children(root)
        names = {d.name for d in dirs}
        if names and names <= set(SPLITS) and not files:
            if "train" not in names:
                raise InvalidInput(f"archive has val/ but no train/ folder; {LAYOUT_HELP}")
            images = self._read_class_dirs(root / "train", "train", "train/")
            if "val" in names:
                val = self._read_class_dirs(root / "val", "val", "val/")
                unknown = sorted({i.label for i in val} - {i.label for i in images})
                if unknown:
                    raise InvalidInput(f"val/ has classes not in train/: {', '.join(unknown)}")
                images += val
        else:
            images = self._read_class_dirs(root, None, "")
        classes = {i.label for i in images if i.split != "val"}
        if len(classes) < 2:
            raise InvalidInput(f"a classifier needs at least 2 classes, found {len(classes)}")
        return images

    # --- storing ----------------------------------------------------------------------------

    def _store_images(self, tenant_id: str, dataset_id: str, items: list[LabelledImage]) -> list[Image]:
        records = []
        for item in items:
            image_id = new_id("img")
            key = f"tenants/{tenant_id}/datasets/{dataset_id}/images/{image_id}.{item.image.extension}"
            self._blobs.put_bytes(key, item.image.data)
            records.append(
                Image(
                    id=image_id,
                    tenant_id=tenant_id,
                    dataset_id=dataset_id,
                    label=item.label,
                    split=item.split,
                    blob_key=key,
                    width=item.image.width,
                    height=item.image.height,
                )
            )
        return records

    def create_from_archive(
        self,
        tenant_id: str,
        name: str,
        archive: Path,
        task: Task = Task.CLASSIFICATION,
        filename: str | None = None,
    ) -> Dataset:
        if task is Task.POSE:
            return self.create_pose_dataset(tenant_id, name, [(archive, filename)])
        if task is Task.DETECTION:
            return self.create_detection_dataset(tenant_id, name, archive)
        name = _check_name(name)
        with self._scratch("dataset-") as workdir:
            extract_archive(archive, workdir / "x", self._limits)
            items = self._read_layout(workdir / "x")
        return self.create_from_images(tenant_id, name, items)

    def create_from_images(self, tenant_id: str, name: str, items: list[LabelledImage]) -> Dataset:
        """A classification dataset from images the caller has already read and checked (an
        archive's, or seed 004's CSV rows rendered to PNG), stored all or nothing."""
        name = _check_name(name)
        classes = {i.label for i in items if i.split != "val"}
        if len(classes) < 2:
            raise InvalidInput(f"a classifier needs at least 2 classes, found {len(classes)}")
        dataset_id = new_id("ds")
        try:
            records = self._store_images(tenant_id, dataset_id, items)
            dataset = Dataset(
                id=dataset_id,
                tenant_id=tenant_id,
                name=name,
                task=Task.CLASSIFICATION,
                classes=sorted({i.label for i in items}),
                image_count=len(records),
            )
            self._store.create_dataset(dataset, records)
        except BaseException:
            self._blobs.delete_prefix(dataset_prefix(tenant_id, dataset_id))
            raise
        return dataset

    # --- detection: images with boxes (COCO or YOLO) ------------------------------------------

    def create_detection_dataset(self, tenant_id: str, name: str, archive: Path) -> Dataset:
        """An archive of images with COCO or YOLO boxes: read and checked as a whole
        (detection_datasets.py), then stored as numbered images and one annotations.json."""
        name = _check_name(name)
        with self._scratch("detection-dataset-") as workdir:
            extract_archive(archive, workdir / "x", self._limits)
            detection = read_detection_dataset(workdir / "x", self._max_pixels)
            dataset = Dataset(
                id=new_id("ds"),
                tenant_id=tenant_id,
                name=name,
                task=Task.DETECTION,
                classes=detection.classes,
                image_count=len(detection.files),
                details=detection.details,  # counts only: a DynamoDB item holds 400 KB at most
            )
            document = json.dumps(detection.annotations).encode()
            files = [(stored, path) for path, stored in detection.files]
            return self._record_with_files(dataset, files, {ANNOTATIONS_FILE: document})

    # --- pose: SLEAP labels ------------------------------------------------------------------

    def create_pose_dataset(
        self, tenant_id: str, name: str, uploads: list[tuple[Path, str | None]]
    ) -> Dataset:
        """A SLEAP labels upload: each file is an archive (unpacked) or a plain file (a .slp,
        a .pkg.slp, a video). The pose checker reads the labels with sleap-io and decodes the
        videos before anything is stored; only the labels file and the videos it uses are kept."""
        name = _check_name(name)
        if self._pose_probe is None:
            raise Unavailable("pose datasets are not available on this deployment")
        if not uploads:
            raise InvalidInput(f"file: nothing was uploaded; {POSE_UPLOAD_HELP}")
        with self._scratch("pose-dataset-") as workdir:
            root = workdir / "upload"
            root.mkdir()
            for index, (path, filename) in enumerate(uploads):
                try:
                    detect_archive_kind(path)
                except InvalidInput:  # not an archive: a file of the dataset itself
                    target = root / _plain_file_name(filename)
                    if target.exists():
                        raise InvalidInput(f"two uploaded files are named {target.name}") from None
                    shutil.copyfile(path, target)
                else:
                    extract_archive(path, root / f"archive-{index}", self._limits)
            summary = self._pose_probe.probe_dataset(root, self._min_pose_frames)
            for video in summary["videos"]:  # the caps a video to infer on is held to
                if int(video["frames"]) > self._max_video_frames:
                    raise InvalidInput(
                        f"video {video['name']} has {video['frames']} frames;"
                        f" at most {self._max_video_frames}"
                    )
                check_video_duration(
                    str(video["name"]), int(video["frames"]), video.get("fps"), self._max_video_seconds
                )
            return self._store_pose_dataset(tenant_id, name, root, summary)

    def _store_pose_dataset(self, tenant_id: str, name: str, root: Path, summary: dict[str, Any]) -> Dataset:
        labels = str(summary["labels"])
        video_files = [str(v) for v in summary["video_files"]]
        skeletons = list(summary["skeletons"])
        dataset_id = new_id("ds")
        samples, pictures = self._pose_samples(tenant_id, dataset_id, summary["samples"])
        dataset = Dataset(
            id=dataset_id,
            tenant_id=tenant_id,
            name=name,
            task=Task.POSE,
            classes=list(skeletons[0]["nodes"]),
            image_count=int(summary["labeled_frames"]),
            details={
                "labels": labels,
                "video_files": video_files,
                "skeletons": skeletons,
                "labeled_frames": summary["labeled_frames"],
                "instances": summary["instances"],
                "videos": summary["videos"],
                "samples": samples,
            },
        )
        files = [(relative, root / relative) for relative in [labels, *video_files]]
        return self._record_with_files(dataset, files, {}, pictures)

    def _pose_samples(
        self, tenant_id: str, dataset_id: str, samples: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        """The checker's sample frames: their records (video, frame, size, each instance's
        points) for the dataset's details, and their PNGs by blob key. The PNGs are checked
        like any image, since they are served to browsers."""
        records, pictures = [], {}
        for number, sample in enumerate(samples, 1):
            sample_id = f"sample-{number}"
            data = decode_base64_image(sample["png_b64"], f"{sample_id}.png_b64")
            picture = check_image(data, f"sample frame {number}", self._max_pixels)
            if picture.format != "PNG":
                raise InvalidInput(f"sample frame {number}: the pose checker sent {picture.format}, not PNG")
            pictures[pose_sample_key(tenant_id, dataset_id, sample_id)] = data
            records.append(
                {
                    "id": sample_id,
                    "video": str(sample["video"]),
                    "frame": int(sample["frame"]),
                    "width": picture.width,
                    "height": picture.height,
                    "instances": list(sample["instances"]),
                }
            )
        return records, pictures

    def add_images(self, tenant_id: str, dataset_id: str, images: list[dict[str, object]]) -> Dataset:
        dataset = self._store.get_dataset(tenant_id, dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} not found")
        if dataset.task is not Task.CLASSIFICATION:
            raise InvalidInput(
                f"dataset {dataset_id} is a {dataset.task.value} dataset;"
                " images can be appended to classification datasets only"
            )
        if not images:
            raise InvalidInput("images: at least one image is needed")
        if len(images) > MAX_IMAGES_PER_APPEND:
            raise InvalidInput(f"images: at most {MAX_IMAGES_PER_APPEND} per request")
        items = []
        for index, entry in enumerate(images):
            where = f"images[{index}]"
            split = entry.get("split")
            if split is not None and split not in SPLITS:
                raise InvalidInput(f"{where}.split: must be 'train', 'val' or null")
            data = decode_base64_image(entry.get("image_b64"), f"{where}.image_b64")
            checked = check_image(data, where, self._max_pixels)
            items.append(LabelledImage(_check_label(entry.get("label"), where), split, checked))
        records = self._store_images(tenant_id, dataset_id, items)
        try:
            return self._store.add_images(tenant_id, dataset_id, records)
        except BaseException:
            for record in records:
                self._blobs.delete_prefix(record.blob_key)
            raise

    # --- reading ----------------------------------------------------------------------------

    def get(self, tenant_id: str, dataset_id: str) -> Dataset:
        dataset = self._store.get_dataset(tenant_id, dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} not found")
        return dataset

    def page(self, tenant_id: str, limit: int, cursor: str | None) -> Page:
        return self._store.list_datasets(tenant_id, limit, cursor)

    # --- browsing: a dataset's pictures -----------------------------------------------------

    def image_page(
        self, tenant_id: str, dataset_id: str, label: str | None, limit: int, cursor: str | None
    ) -> Page:
        """A page of the dataset's pictures as {id, label, split, width, height}: a
        classification image with its class; a detection image with its boxes (`label` filters
        the images with a box of that class); a pose dataset's sample frames with their
        instances' points (a dataset made before samples were kept has none)."""
        dataset = self.get(tenant_id, dataset_id)
        if dataset.task is Task.CLASSIFICATION:
            records = [
                {"id": i.id, "label": i.label, "split": i.split, "width": i.width, "height": i.height}
                for i in self._store.list_images(tenant_id, dataset_id)
                if label is None or i.label == label
            ]
        elif dataset.task is Task.DETECTION:
            records = [
                record
                for _, record in self._detection_images(dataset)
                if label is None or any(box["label"] == label for box in record["boxes"])
            ]
        else:
            if label is not None:
                raise InvalidInput("label: a pose dataset's frames have no class to filter by")
            records = [
                {"label": None, "split": None, **sample} for sample in dataset.details.get("samples", [])
            ]
        return _page_after(records, limit, cursor)

    def _detection_images(self, dataset: Dataset) -> list[tuple[str, dict[str, Any]]]:
        """(stored file, record) of each image in annotations.json; `source` is the image's
        path as uploaded, the name its owner knows it by."""
        prefix = dataset_files_prefix(dataset.tenant_id, dataset.id)
        document = json.loads(self._blobs.get_bytes(prefix + dataset.details["annotations"]))
        classes = document["classes"]
        return [
            (
                image["file"],
                {
                    "id": PurePosixPath(image["file"]).stem,
                    "label": None,
                    "split": image["split"],
                    "width": image["width"],
                    "height": image["height"],
                    "source": image["source"],
                    "boxes": [
                        {
                            "label": classes[box["class"]],
                            "box": [box["x_min"], box["y_min"], box["x_max"], box["y_max"]],
                        }
                        for box in image["boxes"]
                    ],
                },
            )
            for image in document["images"]
        ]

    def image_content(self, tenant_id: str, dataset_id: str, image_id: str) -> ImageContent:
        """Where the bytes of one picture of image_page are."""
        dataset = self.get(tenant_id, dataset_id)
        if dataset.task is Task.CLASSIFICATION:
            image = next(
                (i for i in self._store.list_images(tenant_id, dataset_id) if i.id == image_id), None
            )
            key = image.blob_key if image else None
        elif dataset.task is Task.DETECTION:
            file = next(
                (f for f, record in self._detection_images(dataset) if record["id"] == image_id), None
            )
            key = dataset_files_prefix(tenant_id, dataset_id) + file if file else None
        else:
            samples = {sample["id"] for sample in dataset.details.get("samples", [])}
            key = pose_sample_key(tenant_id, dataset_id, image_id) if image_id in samples else None
        if key is None:
            raise NotFound(f"dataset {dataset_id} has no image {image_id}")
        # every stored picture passed check_image, so its ending is one of the accepted formats
        media_type = MEDIA_TYPE_BY_SUFFIX.get(PurePosixPath(key).suffix.lower(), "application/octet-stream")
        url = self._blobs.presigned_get_url(key, self._presign_seconds)
        if url is not None:
            return ImageContent(media_type, url=url)
        return ImageContent(media_type, path=self._blobs.local_path(key))

    def delete(self, tenant_id: str, dataset_id: str) -> None:
        if not self._store.delete_dataset(tenant_id, dataset_id):
            raise NotFound(f"dataset {dataset_id} not found")
        self._blobs.delete_prefix(dataset_prefix(tenant_id, dataset_id))
