"""pose.probe: the checks the service runs on pose uploads, on real SLEAP files written with
sleap-io; and the same checks as the probe Lambda, reading the files from S3 (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import sleap_io as sio
from moto import mock_aws

from jobkit.errors import DataError
from pose.probe import main, probe_dataset, probe_video
from pose.probe_lambda import probe_prefix


def write_upload(root: Path, frames: int = 3, video: bool = True, embed: bool = False) -> Path:
    """labels.slp (skeleton head→tail) over clip.mp4, whose stored path is the labeller's."""
    root.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((5, 32, 32, 1), np.uint8)
    pixels[:, 8:20, 8:20] = 200
    sio.save_video(pixels, str(root / "clip.mp4"), fps=10)
    source = sio.Video.from_filename(str(root / "clip.mp4"))
    skeleton = sio.Skeleton(nodes=["head", "tail"], edges=[("head", "tail")], name="worm")
    labelled = [
        sio.LabeledFrame(
            video=source,
            frame_idx=i,
            instances=[
                sio.Instance.from_numpy(np.array([[10.0, 10.0], [18.0, 18.0]]), skeleton=skeleton)
            ],
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
