"""pose.probe: the checks the service runs on pose uploads, on real SLEAP files written with
sleap-io; and the same checks as the probe Lambda, reading the files from S3 (moto)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import sleap_io as sio
from moto import mock_aws
from PIL import Image

from jobkit.errors import DataError
from pose.probe import main, probe_dataset, probe_video
from pose.probe_lambda import probe_prefix


def write_upload(
    root: Path,
    frames: int = 3,
    video: bool = True,
    embed: bool = False,
    size: tuple[int, int] = (32, 32),
    points: tuple[tuple[float, float], ...] = ((10.0, 10.0), (18.0, 18.0)),
) -> Path:
    """labels.slp (skeleton head→tail) over clip.mp4 (`size` is height, width), whose stored
    path is the labeller's."""
    root.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((max(5, frames), *size, 1), np.uint8)
    pixels[:, 8:20, 8:20] = 200
    sio.save_video(pixels, str(root / "clip.mp4"), fps=10)
    source = sio.Video.from_filename(str(root / "clip.mp4"))
    skeleton = sio.Skeleton(nodes=["head", "tail"], edges=[("head", "tail")], name="worm")
    labelled = [
        sio.LabeledFrame(
            video=source,
            frame_idx=i,
            instances=[sio.Instance.from_numpy(np.array(points), skeleton=skeleton)],
        )
        for i in range(frames)
    ]
    labels = sio.Labels(labeled_frames=labelled, videos=[source], skeletons=[skeleton])
    if embed:
        sio.save_slp(labels, str(root / "labels.pkg.slp"), embed="user")
        (root / "clip.mp4").unlink()
        return root / "labels.pkg.slp"
    labels.replace_filenames(
        filename_map={str(root / "clip.mp4"): "C:\\labeller\\clip.mp4"}, open_videos=False
    )
    sio.save_slp(labels, str(root / "labels.slp"))
    if not video:
        (root / "clip.mp4").unlink()
    return root / "labels.slp"


def test_labels_and_a_video_stored_elsewhere_are_summarised(tmp_path: Path) -> None:
    write_upload(tmp_path / "up", frames=3)
    summary = probe_dataset(tmp_path / "up")
    assert summary["labels"] == "labels.slp" and summary["video_files"] == ["clip.mp4"]
    assert summary["skeletons"] == [
        {"name": "worm", "nodes": ["head", "tail"], "edges": [["head", "tail"]]}
    ]
    assert (summary["labeled_frames"], summary["instances"]) == (3, 3)
    assert summary["videos"] == [
        {
            "name": "clip.mp4",
            "frames": 5,
            "height": 32,
            "width": 32,
            "channels": 1,
            "fps": 10.0,
            "embedded": False,
        }
    ]


def test_a_package_with_embedded_frames_needs_no_video(tmp_path: Path) -> None:
    write_upload(tmp_path / "up", frames=2, embed=True)
    summary = probe_dataset(tmp_path / "up")
    assert summary["video_files"] == [] and summary["videos"][0]["embedded"] is True
    assert summary["labeled_frames"] == 2


def sample_picture(sample: dict[str, Any]) -> Image.Image:
    picture = Image.open(io.BytesIO(base64.b64decode(sample["png_b64"])))
    picture.load()
    return picture


@pytest.mark.parametrize("embed", [False, True])
def test_samples_are_frames_spread_over_the_labels_with_their_points(
    tmp_path: Path, embed: bool
) -> None:
    write_upload(tmp_path / "up", frames=9, embed=embed)
    samples = probe_dataset(tmp_path / "up")["samples"]
    assert [s["frame"] for s in samples] == [0, 2, 3, 5, 6, 8]  # 6 of 9, first and last in
    name = "labels.pkg.slp" if embed else "clip.mp4"
    for sample in samples:
        picture = sample_picture(sample)
        assert picture.format == "PNG"
        assert picture.size == (sample["width"], sample["height"]) == (32, 32)
        assert sample["video"] == name
        assert sample["instances"] == [{"skeleton": 0, "points": [[10.0, 10.0], [18.0, 18.0]]}]
        assert np.asarray(picture)[12, 12].max() > 100  # the bright square the points are on


def test_large_frames_are_downscaled_with_their_points_and_unlabelled_nodes_kept_empty(
    tmp_path: Path,
) -> None:
    points = ((400.0, 30.0), (np.nan, np.nan))
    write_upload(tmp_path / "up", frames=2, size=(64, 960), points=points)
    samples = probe_dataset(tmp_path / "up")["samples"]
    assert len(samples) == 2
    size = (samples[0]["width"], samples[0]["height"])
    assert size == (480, 32) == sample_picture(samples[0]).size
    assert samples[0]["instances"][0]["points"] == [[200.0, 15.0], None]


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda root: write_upload(root, frames=0), "0 labelled frame(s)"),
        (
            lambda root: write_upload(root, video=False),
            "video clip.mp4 used by labels.slp is not in the upload",
        ),
        (
            lambda root: (write_upload(root), (root / "clip.mp4").write_bytes(b"junk")),
            "clip.mp4 cannot be decoded",
        ),
        (
            lambda root: (
                root.mkdir(),
                (root / "a.slp").write_bytes(b"x"),
                (root / "b.slp").write_bytes(b"x"),
            ),
            "several labels files",
        ),
        (
            lambda root: (root.mkdir(), (root / "a.slp").write_bytes(b"\x89HDF junk")),
            "not a readable SLEAP",
        ),
    ],
)
def test_bad_uploads_are_refused_with_the_reason(tmp_path: Path, make: Any, reason: str) -> None:
    make(tmp_path / "up")
    with pytest.raises(DataError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        probe_dataset(tmp_path / "up")


def test_the_cli_prints_one_json_object_and_exits_1_on_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_upload(tmp_path / "up")
    assert main(["video", str(tmp_path / "up" / "clip.mp4")]) == 0
    assert json.loads(capsys.readouterr().out)["video"]["frames"] == 5
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    assert main(["video", str(tmp_path / "junk.mp4")]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "ok": False,
        "error": "video junk.mp4 cannot be decoded: no video stream could be read "
        "(not a video, or an unknown codec)",
    }
    assert probe_video(tmp_path / "up" / "clip.mp4")["video"]["width"] == 32


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="datasets")
        yield client


def test_the_lambda_checks_the_files_under_its_prefix(s3: Any, tmp_path: Path) -> None:
    write_upload(tmp_path / "up")
    for path in (tmp_path / "up").iterdir():
        s3.upload_file(str(path), "datasets", f"probe/abc/archive-0/{path.name}")
    event = {"command": "dataset", "bucket": "datasets", "prefix": "probe/abc/", "min_frames": 2}
    summary = probe_prefix(event, s3)
    assert summary["ok"] and summary["labels"] == "archive-0/labels.slp"
    assert summary["video_files"] == ["archive-0/clip.mp4"]

    s3.put_object(Bucket="datasets", Key="probe/v/clip.mp4", Body=b"junk")
    refused = probe_prefix({"command": "video", "bucket": "datasets", "prefix": "probe/v/"}, s3)
    assert refused["ok"] is False and "clip.mp4 cannot be decoded" in refused["error"]
    assert probe_prefix({"command": "rm -rf"}, s3)["ok"] is False
