"""pose.probe never follows a labels file's references outside the upload: HDF5 external
links, external raw storage and virtual datasets are refused before sleap-io reads; stored
video paths (absolute, `..`, URLs) are only ever matched by base name to uploaded files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import sleap_io as sio
from test_probe import write_upload

from jobkit.errors import DataError
from pose.probe import main, probe_dataset


def test_an_external_link_to_another_hdf5_file_is_refused(tmp_path: Path) -> None:
    labels = write_upload(tmp_path / "up")
    with h5py.File(tmp_path / "elsewhere.h5", "w") as other:
        other["data"] = np.arange(4)
    with h5py.File(labels, "a") as handle:
        handle["sneaky"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/data")
    with pytest.raises(
        DataError, match=r"refers to data outside itself.*sneaky is an external link"
    ):
        probe_dataset(tmp_path / "up")


def test_a_dataset_stored_in_an_outside_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"not yours" * 8)
    labels = write_upload(tmp_path / "up")
    with h5py.File(labels, "a") as handle:
        handle.create_dataset("raw", shape=(72,), dtype="u1", external=[(str(secret), 0, 72)])
    with pytest.raises(DataError, match="raw stores its data in external file"):
        probe_dataset(tmp_path / "up")


def test_a_virtual_dataset_over_another_file_is_refused(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "source.h5", "w") as source:
        source["values"] = np.arange(6)
    labels = write_upload(tmp_path / "up")
    layout = h5py.VirtualLayout(shape=(6,), dtype="i8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "source.h5"), "values", shape=(6,))
    with h5py.File(labels, "a") as handle:
        handle.create_virtual_dataset("mapped", layout)
    with pytest.raises(DataError, match="mapped is a virtual dataset"):
        probe_dataset(tmp_path / "up")


def test_links_inside_the_file_are_accepted(tmp_path: Path) -> None:
    labels = write_upload(tmp_path / "up")
    with h5py.File(labels, "a") as handle:
        handle["alias"] = h5py.SoftLink("/metadata")
    assert probe_dataset(tmp_path / "up")["video_files"] == ["clip.mp4"]


def _point_video_at(labels: Path, stored: str) -> None:
    loaded = sio.load_slp(str(labels), open_videos=False)
    loaded.replace_filenames(filename_map={loaded.videos[0].filename: stored}, open_videos=False)
    sio.save_slp(loaded, str(labels))


@pytest.mark.parametrize(
    "stored",
    [
        "{outside}/clip.mp4",
        "../outside/clip.mp4",
        "https://example.com/videos/clip.mp4",
        "file:///{outside}/clip.mp4",
    ],
)
def test_a_stored_video_path_outside_the_upload_is_never_followed(
    tmp_path: Path, stored: str
) -> None:
    """A real, decodable clip.mp4 lies outside the upload at the stored path; the upload has
    none. The probe refuses instead of reading the outside file; with clip.mp4 uploaded, it
    uses the uploaded one."""
    outside = tmp_path / "outside"
    write_upload(outside)  # writes outside/clip.mp4 (and labels we do not use)
    labels = write_upload(tmp_path / "up", video=False)
    _point_video_at(labels, stored.format(outside=outside))
    with pytest.raises(
        DataError, match=r"video clip\.mp4 used by labels\.slp is not in the upload"
    ):
        probe_dataset(tmp_path / "up")

    (tmp_path / "up" / "clip.mp4").write_bytes((outside / "clip.mp4").read_bytes())
    summary = probe_dataset(tmp_path / "up")
    assert summary["video_files"] == ["clip.mp4"]


def test_the_cli_reports_a_refused_reference_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = write_upload(tmp_path / "up")
    with h5py.File(labels, "a") as handle:
        handle["sneaky"] = h5py.ExternalLink("/etc/hostname", "/")
    assert main(["dataset", str(tmp_path / "up")]) == 1
    assert "external link to /etc/hostname" in capsys.readouterr().out
