"""Check pose inputs before anything is stored or launched, with sleap-io (no torch):

    python -m pose.probe dataset DIR [--min-frames N]   # a SLEAP labels upload, unpacked
    python -m pose.probe video FILE                     # a video to run a model on

Prints one JSON object on stdout: the summary (`"ok": true`) or `{"ok": false, "error": ...}`
with a reason a user can act on, and exits 0 or 1. A dataset's summary carries a few sample
labelled frames (`samples`: the frame as a base64 PNG, downscaled, and each user instance's
points in that PNG's pixels), so the service can show the skeleton on real frames without
ever decoding a video itself. The service runs this in the pose
container's environment, so the API process itself never imports sleap-io or its video
decoders; the training entrypoint uses the same functions on its channel.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobkit.errors import DataError

LABEL_SUFFIXES = (".pkg.slp", ".slp")
# The samples travel in the probe's answer (a Lambda answers 6 MB at most) and are shown as
# pictures in a browser: a few frames, none wider or taller than this.
MAX_SAMPLES = 6
SAMPLE_MAX_SIDE = 480
MAX_SAMPLE_INSTANCES = 20  # their points are kept in the dataset's record


def _visible_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not any(
            part.startswith(".") or part == "__MACOSX" for part in p.relative_to(root).parts
        )
    )


def find_labels_file(root: Path) -> Path:
    """The one SLEAP labels file (.slp or .pkg.slp) under `root`."""
    found = [p for p in _visible_files(root) if p.name.lower().endswith(LABEL_SUFFIXES)]
    if not found:
        raise DataError("no SLEAP labels file (.slp or .pkg.slp) found in the upload")
    if len(found) > 1:
        names = ", ".join(p.relative_to(root).as_posix() for p in found)
        raise DataError(f"the upload holds several labels files ({names}); send one")
    return found[0]


def _is_embedded(video: Any, labels_file: Path) -> bool:
    """Frames stored inside the labels file itself (.pkg.slp)."""
    filename = video.filename
    return isinstance(filename, str) and Path(filename).resolve() == labels_file.resolve()


def refuse_file_references(labels_file: Path) -> None:
    """A .slp is HDF5, which can point outside itself: external links (a group or dataset in
    another HDF5 file), datasets whose bytes live in external raw files (any file, e.g.
    /etc/passwd), and virtual datasets mapping other files. h5py would follow each of them
    when sleap-io reads, so a labels file holding any of them is refused before it is opened
    for reading labels; links within the file are fine."""
    import h5py  # noqa: PLC0415 - sleap-io's own dependency; lazily, like sleap_io

    found: list[str] = []

    def visit(name: str, link: Any) -> None:
        if isinstance(link, h5py.ExternalLink):
            found.append(f"{name} is an external link to {link.filename}")
            return
        if not isinstance(link, h5py.HardLink):
            return
        item = handle.get(name)
        if isinstance(item, h5py.Dataset):
            if item.external:
                found.append(f"{name} stores its data in external file(s)")
            elif item.is_virtual:
                found.append(f"{name} is a virtual dataset over other files")

    try:
        with h5py.File(labels_file, "r") as handle:
            handle.visititems_links(visit)
    except OSError as exc:
        raise DataError(f"{labels_file.name} is not a readable SLEAP labels file: {exc}") from None
    if found:
        raise DataError(
            f"{labels_file.name} refers to data outside itself, which is not accepted: "
            + "; ".join(found[:3])
        )


def load_labels(root: Path, labels_file: Path | None = None) -> tuple[Any, Path]:
    """Load the labels under `root` (the one labels file found there, or `labels_file`),
    pointing each external video at the uploaded file of the same name: the paths stored in
    a .slp are those of the labeller's machine."""
    import sleap_io as sio  # noqa: PLC0415 - lazily: the CLI's argument errors come first

    if labels_file is None:
        labels_file = find_labels_file(root)
    refuse_file_references(labels_file)
    try:
        labels = sio.load_slp(str(labels_file), open_videos=False)
    except Exception as exc:
        raise DataError(f"{labels_file.name} is not a readable SLEAP labels file: {exc}") from None
    uploaded = {p.name: p for p in _visible_files(root) if p != labels_file}
    filename_map: dict[str, str] = {}
    for video in labels.videos:
        if _is_embedded(video, labels_file):
            continue
        if not isinstance(video.filename, str):
            raise DataError(f"{labels_file.name}: image-sequence videos are not supported")
        name = Path(video.filename.replace("\\", "/")).name
        if name not in uploaded:
            raise DataError(
                f"video {name} used by {labels_file.name} is not in the upload; "
                "send it with the labels or use a .pkg.slp with embedded frames"
            )
        filename_map[video.filename] = str(uploaded[name])
    if filename_map:
        labels.replace_filenames(filename_map=filename_map, open_videos=False)
    return labels, labels_file


def _read_video(video: Any, name: str) -> dict[str, Any]:
    """Open a video and decode its first and last frame; its shape and rate."""
    try:
        video.open()
        if video.shape is None:
            raise ValueError("no video stream could be read (not a video, or an unknown codec)")
        frames, height, width, channels = video.shape
        if frames < 1:
            raise ValueError("it has no frames")
        video[0]
        video[frames - 1]
    except DataError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"video {name} cannot be decoded: {reason}") from None
    fps = getattr(video, "fps", None)
    return {
        "name": name,
        "frames": int(frames),
        "height": int(height),
        "width": int(width),
        "channels": int(channels),
        "fps": float(fps) if fps else None,
    }


def skeleton_summary(skeleton: Any) -> dict[str, Any]:
    return {
        "name": skeleton.name,
        "nodes": [node.name for node in skeleton.nodes],
        "edges": [[edge.source.name, edge.destination.name] for edge in skeleton.edges],
    }


def _spread(count: int, wanted: int) -> list[int]:
    """`wanted` indexes spread evenly over range(count), first and last included."""
    if count <= wanted:
        return list(range(count))
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def _png(pixels: Any, scale: float) -> bytes:
    """A frame (height, width, channels) as PNG bytes, resized by `scale`."""
    import numpy as np  # noqa: PLC0415 - sleap-io's own dependencies, lazily like sleap_io
    from PIL import Image  # noqa: PLC0415

    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    image = Image.fromarray(array)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _scaled_points(instance: Any, scale: float) -> list[list[float] | None]:
    """The instance's points in the sample's pixels, in its skeleton's node order; a node
    not labelled (NaN) is None."""
    return [
        None
        if not (math.isfinite(x) and math.isfinite(y))
        else [round(float(x) * scale, 2), round(float(y) * scale, 2)]
        for x, y in instance.numpy()
    ]


def sample_frames(
    labels: Any, frames: list[Any], video_names: dict[int, str]
) -> list[dict[str, Any]]:
    """Up to MAX_SAMPLES labelled frames spread over the dataset: the frame as a PNG and
    each user instance's points, scaled alike so the points land on the picture."""
    samples = []
    for index in _spread(len(frames), MAX_SAMPLES):
        frame = frames[index]
        name = video_names[id(frame.video)]
        try:
            pixels = frame.image
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(
                f"video {name}: labelled frame {frame.frame_idx} cannot be decoded: {reason}"
            ) from None
        if pixels is None:
            raise DataError(f"video {name}: labelled frame {frame.frame_idx} cannot be decoded")
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        scale = min(1.0, SAMPLE_MAX_SIDE / max(height, width))
        png = _png(pixels, scale)
        samples.append(
            {
                "video": name,
                "frame": int(frame.frame_idx),
                "width": max(1, round(width * scale)),
                "height": max(1, round(height * scale)),
                "png_b64": base64.b64encode(png).decode(),
                "instances": [
                    {
                        "skeleton": labels.skeletons.index(instance.skeleton),
                        "points": _scaled_points(instance, scale),
                    }
                    for instance in frame.user_instances[:MAX_SAMPLE_INSTANCES]
                ],
            }
        )
    return samples


def probe_dataset(root: Path, min_frames: int = 2) -> dict[str, Any]:
    labels, labels_file = load_labels(root)
    if not labels.skeletons:
        raise DataError(f"{labels_file.name} defines no skeleton")
    if not labels.skeletons[0].nodes:
        raise DataError(f"{labels_file.name}: the skeleton has no nodes")
    frames = [lf for lf in labels.labeled_frames if lf.user_instances]
    if len(frames) < min_frames:
        raise DataError(
            f"{labels_file.name} has {len(frames)} labelled frame(s) with user-labelled "
            f"instances; at least {min_frames} are needed"
        )
    videos = []
    video_names: dict[int, str] = {}
    for video in labels.videos:
        embedded = _is_embedded(video, labels_file)
        name = labels_file.name if embedded else Path(video.filename).name
        videos.append({**_read_video(video, name), "embedded": embedded})
        video_names[id(video)] = name
    return {
        "ok": True,
        "labels": labels_file.relative_to(root).as_posix(),
        "videos": videos,
        "video_files": sorted(
            Path(v.filename).relative_to(root.resolve()).as_posix()
            for v in labels.videos
            if not _is_embedded(v, labels_file)
        ),
        "skeletons": [skeleton_summary(s) for s in labels.skeletons],
        "labeled_frames": len(frames),
        "instances": sum(len(lf.user_instances) for lf in frames),
        "samples": sample_frames(labels, frames, video_names),
    }


def open_video(path: Path) -> tuple[Any, dict[str, Any]]:
    """The video at `path`, opened, with its first and last frame decoded, and its shape."""
    import sleap_io as sio  # noqa: PLC0415

    try:
        video = sio.load_video(str(path))
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"video {path.name} cannot be decoded: {reason}") from None
    return video, _read_video(video, path.name)


def probe_video(path: Path) -> dict[str, Any]:
    return {"ok": True, "video": open_video(path)[1]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pose.probe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    dataset = commands.add_parser("dataset", help="check an unpacked SLEAP labels upload")
    dataset.add_argument("root", type=Path)
    dataset.add_argument("--min-frames", type=int, default=2)
    video = commands.add_parser("video", help="check that a video decodes")
    video.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "dataset":
            result = probe_dataset(args.root.resolve(), args.min_frames)
        else:
            result = probe_video(args.path)
    except DataError as exc:
        result = {"ok": False, "error": str(exc)}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
