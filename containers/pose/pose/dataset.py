"""The training channel: dataset.json, the SLEAP labels it names and their videos.

The paths stored in a .slp are those of the labeller's machine. Every external video of the
labels is read from the channel file with the same name (pose.probe.load_labels, the check
the service ran on the upload); a video that is not in the channel fails the job, even when
its stored path happens to exist here: a job reads only what was uploaded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jobkit.errors import DataError

from .probe import _is_embedded, _read_video, find_labels_file, load_labels, skeleton_summary

log = logging.getLogger("pose.dataset")

MANIFEST = "dataset.json"


@dataclass
class TrainingData:
    labels: Any  # sio.Labels, every user-labelled frame
    labels_file: Path
    skeleton: dict[str, Any]  # {"name", "nodes", "edges"}
    train: Any  # sio.Labels
    validation: Any | None  # sio.Labels, None when validation_fraction is 0
    videos: list[dict[str, Any]]  # pose.probe summaries: name, frames, height, width, channels
    instances: int

    @property
    def summary(self) -> str:
        sizes = sorted({f"{v['width']}x{v['height']}" for v in self.videos})
        validation = 0 if self.validation is None else len(self.validation)
        return (
            f"{len(self.labels)} labelled frames ({len(self.train)} train, {validation} "
            f"validation), {self.instances} instances, skeleton {self.skeleton['name'] or '?'} "
            f"with nodes {', '.join(self.skeleton['nodes'])}, {len(self.videos)} video(s) "
            f"{', '.join(sizes)}"
        )


def _manifest_labels_file(channel: Path) -> Path:
    """The labels file dataset.json names, or the channel's one labels file without it."""
    manifest = channel / MANIFEST
    if not manifest.is_file():
        return find_labels_file(channel)
    try:
        content = json.loads(manifest.read_text())
    except ValueError as exc:
        raise DataError(f"{MANIFEST} is not valid JSON: {exc}") from None
    labels = content.get("labels") if isinstance(content, dict) else None
    if not isinstance(labels, str) or not labels:
        raise DataError(f'{MANIFEST} must name the labels file: {{"labels": "<path>.slp"}}')
    path = (channel / labels).resolve()
    if not path.is_relative_to(channel.resolve()):
        raise DataError(f"{MANIFEST}: labels path {labels} is outside the dataset")
    if not path.is_file():
        raise DataError(f"{MANIFEST} names labels file {labels}, which is not in the dataset")
    return path


def user_labelled(labels: Any) -> Any:
    """The labels with only frames that have user-labelled instances, and only those."""
    import sleap_io as sio  # noqa: PLC0415

    frames = [
        sio.LabeledFrame(video=lf.video, frame_idx=lf.frame_idx, instances=list(lf.user_instances))
        for lf in labels.labeled_frames
        if lf.user_instances
    ]
    return _with_frames(labels, frames)


def _with_frames(labels: Any, frames: list[Any]) -> Any:
    """Labels holding `frames`, with the videos, skeletons, tracks and provenance of `labels`."""
    import sleap_io as sio  # noqa: PLC0415

    return sio.Labels(
        labeled_frames=frames,
        videos=list(labels.videos),
        skeletons=list(labels.skeletons),
        tracks=list(labels.tracks),
        provenance=dict(labels.provenance),
    )


def split_frames(labels: Any, fraction: float, seed: int) -> tuple[Any, Any | None]:
    """A seeded split of the labelled frames; `fraction` of them (at least one) validate."""
    count = len(labels)
    if fraction == 0:
        return labels, None
    if count < 2:
        raise DataError(
            f"{count} labelled frame is too few to hold out validation_fraction={fraction}: "
            "label at least 2 frames, or set validation_fraction to 0"
        )
    n_val = min(max(1, round(count * fraction)), count - 1)
    order = np.random.default_rng(seed).permutation(count)
    val_ids = set(order[:n_val].tolist())

    def subset(ids: set[int], keep: bool) -> Any:
        return _with_frames(
            labels, [lf for i, lf in enumerate(labels.labeled_frames) if (i in ids) == keep]
        )

    return subset(val_ids, False), subset(val_ids, True)


def load_training_data(
    channel: Path, *, validation_fraction: float, seed: int, model_type: str
) -> TrainingData:
    if not channel.is_dir():
        raise DataError(f"the training channel {channel} does not exist")
    labels_file = _manifest_labels_file(channel)
    raw, labels_file = load_labels(channel, labels_file)
    name = labels_file.name
    if not raw.skeletons:
        raise DataError(f"{name} defines no skeleton")
    skeleton = raw.skeletons[0]
    if not skeleton.nodes:
        raise DataError(f"{name}: the skeleton {skeleton.name or ''} has no nodes")
    if len(raw.skeletons) > 1:
        raise DataError(
            f"{name} defines {len(raw.skeletons)} skeletons; a pose model is trained on one"
        )
    for video in raw.videos:
        # Loaded without opening (the probe's way); training reads frames from every thread.
        video.open_backend = True
    labels = user_labelled(raw)
    if not len(labels):
        raise DataError(
            f"{name} has no labelled frames (frames with user-labelled instances): "
            "label some frames in SLEAP first"
        )
    if model_type == "single_instance":
        crowded = next((lf for lf in labels.labeled_frames if len(lf.instances) > 1), None)
        if crowded is not None:
            raise DataError(
                f"{name}: frame {crowded.frame_idx} has {len(crowded.instances)} instances; "
                "model_type single_instance needs one per frame (use topdown or bottomup)"
            )

    videos = []
    used = {id(lf.video) for lf in labels.labeled_frames}
    for video in labels.videos:
        if id(video) not in used:
            continue
        embedded = _is_embedded(video, labels_file)
        video_name = name if embedded else Path(video.filename).name
        videos.append(_read_video(video, video_name))
    train, validation = split_frames(labels, validation_fraction, seed)
    return TrainingData(
        labels=labels,
        labels_file=labels_file,
        skeleton=skeleton_summary(skeleton),
        train=train,
        validation=validation,
        videos=videos,
        instances=sum(len(lf.instances) for lf in labels.labeled_frames),
    )
