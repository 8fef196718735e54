"""Model/state and video uploads through the real routes (issue 7).

Model and state: the one route that takes learned state from a user is seed 003's
`POST /set_state` (a tar of images, .npy embeddings and JSON weights). Pickles in any form —
an object-dtype .npy, a raw pickle named .npy, a pickle where JSON weights belong — are
refused without being unpickled, and Keras/HDF5/ONNX files are not members a state tar may
hold. No route loads a user's .keras/.h5/.onnx as a model: a guard test pins the set of routes
that take files and shows a Keras model sent as a dataset is refused as one.

Videos: the frame cap (TRAINYARD_MAX_VIDEO_FRAMES) and the duration cap
(TRAINYARD_MAX_VIDEO_SECONDS, frames over the frame rate) on core and seed 001 video
inference and on pose datasets; a .slp with an HDF5 external link is refused by the real pose
checker. Every refusal is a 4xx naming the problem with nothing stored."""

from __future__ import annotations

import base64
import io
import json
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.helpers import record_job
from tests.hostile import zip_of
from tests.pose_data import run_in_pose_venv
from trainyard.api.seeds.seed001 import MODEL_NAMESPACE
from trainyard.bootstrap import Services
from trainyard.domain import Alias, ModelStatus, Task
from trainyard.settings import Settings

SEED001_UID = "7d1c7f3e-0000-4000-8000-000000000001"
MAX_FRAMES = 3
MAX_SECONDS = 0.25  # a 3-frame clip at 10 fps lasts 0.3 s: under the frame cap, over this


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        webhook_backoff_seconds=0.1,
        max_video_frames=MAX_FRAMES,
        max_video_seconds=MAX_SECONDS,
    )


# --- seed 003 state tars: no pickles, no model files -------------------------------------


class Canary:
    """Unpickling this touches a file: proof, if the file appears, that something unpickled."""

    path = ""

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def state_tar(image_entry: dict[str, Any], tag: dict[str, Any] | None, files: dict[str, bytes]) -> bytes:
    document = {
        "schema": "trainyard.seed003-state/1",
        "embedder": "e1",
        "images": {"a": {"file": "images/a.png", **image_entry}},
        "tags": {"t": tag} if tag is not None else {},
    }
    members = {"state.json": json.dumps(document).encode(), "images/a.png": png(), **files}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def everything_stored(services: Services) -> dict[str, Any]:
    store = services.store
    return {
        "blobs": sorted(services.blobs.list_keys("tenants/")),
        "jobs": [j.id for j in store.list_jobs("default", 100, None).items],
        "models": [m.id for m in store.list_models("default", 100, None).items],
        "datasets": [d.id for d in store.list_datasets("default", 100, None).items],
    }


def pickle_cases(canary: Path) -> list[tuple[str, bytes, str]]:
    Canary.path = str(canary)
    planted = pickle.dumps(Canary())
    object_array = np.empty(2, dtype=object)
    object_array[:] = [Canary(), Canary()]
    keras_config = json.dumps({"class_name": "Lambda", "config": {"function": "os.system"}}).encode()
    return [
        (
            "object-dtype .npy (a pickle inside)",
            state_tar({"embedding": "embeddings/a.npy"}, None, {"embeddings/a.npy": npy(object_array)}),
            "embeddings/a.npy is not a .npy array (Object arrays cannot be loaded when allow_pickle=False)",
        ),
        (
            "a raw pickle named .npy",
            state_tar({"embedding": "embeddings/a.npy"}, None, {"embeddings/a.npy": planted}),
            "embeddings/a.npy is not a .npy array",
        ),
        (
            "a pickle where the JSON weights belong",
            state_tar({}, {"positive": ["a"], "model": "tags/t.json"}, {"tags/t.json": planted}),
            "tags/t.json is not JSON",
        ),
        (
            "a pickle file",
            state_tar({}, None, {"tags/t.pkl": planted}),
            "unexpected member 'tags/t.pkl'",
        ),
        (
            "a Keras model with a Lambda layer",
            state_tar({}, None, {"tags/t.keras": zip_of({"config.json": keras_config})}),
            "unexpected member 'tags/t.keras'",
        ),
        (
            "an HDF5 model",
            state_tar({}, None, {"tags/t.h5": b"\x89HDF\r\n\x1a\n" + bytes(64)}),
            "unexpected member 'tags/t.h5'",
        ),
        (
            "an ONNX model with external data",
            state_tar({}, None, {"tags/t.onnx": b"\x08\x07external_data/../../etc/passwd"}),
            "unexpected member 'tags/t.onnx'",
        ),
    ]


def test_state_uploads_with_pickles_or_model_files_are_refused_unread(
    client: TestClient, services: Services, tmp_path: Path
) -> None:
    canary = tmp_path / "unpickled"
    before = everything_stored(services)
    for what, tar, expected in pickle_cases(canary):
        response = client.post("/set_state", files={"data": ("state.tar", tar, "application/x-tar")})
        assert response.status_code == 422, (what, response.text)
        body = response.json()
        assert body["message"] == "state_error" and expected in body["detail"], (what, body)
        assert not canary.exists(), f"{what}: something unpickled it"
    assert everything_stored(services) == before


def test_a_plain_float_npy_state_is_still_accepted(client: TestClient, services: Services) -> None:
    """The refusals above are about pickles, not about .npy: float vectors go through."""
    good = state_tar(
        {"embedding": "embeddings/a.npy"}, None, {"embeddings/a.npy": npy(np.ones(4, np.float32))}
    )
    response = client.post("/set_state", files={"data": ("state.tar", good, "application/x-tar")})
    assert response.status_code == 200, response.text
    assert any(k.endswith("image.png") for k in services.blobs.list_keys("tenants/default/"))


# The routes that take a file (multipart or a raw body), each with what it reads. A new one
# must be added here on purpose — and must not load a user's model file (Keras, HDF5, ONNX,
# pickle): no route does today; exports are the service's own files, read back only by it.
FILE_ROUTES = {
    "/v1/datasets": "a dataset archive or pose labels + videos",
    "/v1/jobs": "a pose video to infer on",
    "/v1/models/{model_id}/predict": "an image",
    "/v1/uploads/{upload_id}": "the bytes of a presigned upload (a dataset or video)",
    "/seeds/003/custom/add": "an image",
    "/seeds/003/predict/custom/{tag}": "an image",
    "/seeds/003/predict/custom": "an image",
    "/seeds/003/predict": "an image",
    "/seeds/003/set_state": "a state tar (images, float .npy, JSON weights)",
    "/seeds/004/training": "two CSV files",
}


def test_no_route_takes_a_model_file(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    taking_files = set()
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            content = (
                operation.get("requestBody", {}).get("content", {}) if isinstance(operation, dict) else {}
            )
            if any(kind.startswith(("multipart/", "application/octet-stream")) for kind in content):
                taking_files.add(path)
    assert taking_files <= set(FILE_ROUTES), taking_files - set(FILE_ROUTES)


def test_a_keras_model_sent_as_a_dataset_is_refused_as_one(client: TestClient, services: Services) -> None:
    keras = zip_of(
        {
            "config.json": json.dumps({"class_name": "Lambda", "config": {"function": "x"}}).encode(),
            "metadata.json": b"{}",
            "model.weights.h5": b"\x89HDF\r\n\x1a\n" + bytes(64),
        }
    )
    before = everything_stored(services)
    response = client.post(
        "/v1/datasets",
        data={"name": "not-a-model"},
        files={"file": ("model.keras", keras, "application/zip")},
    )
    assert response.status_code == 422, response.text
    assert everything_stored(services) == before


# --- videos: frame and duration caps, references outside the upload ----------------------

VIDEOS_SCRIPT = """
import sys, h5py, numpy as np, sleap_io as sio
out = sys.argv[1]
pixels = np.zeros((4, 32, 32, 1), np.uint8)
pixels[:, 8:20, 8:20] = 200
sio.save_video(pixels, out + "/four.mp4", fps=10)
sio.save_video(pixels[:3], out + "/three.mp4", fps=10)
sio.save_video(pixels[:2], out + "/two.mp4", fps=10)
skeleton = sio.Skeleton(nodes=["head", "tail"], edges=[("head", "tail")], name="worm")
points = np.array([[10.0, 10.0], [18.0, 18.0]])
for name in ("four", "three", "two"):
    video = sio.Video.from_filename("/labeller/" + name + ".mp4", open_backend=False)
    frames = [sio.LabeledFrame(video=video, frame_idx=i,
                               instances=[sio.Instance.from_numpy(points, skeleton=skeleton)])
              for i in range(2)]
    sio.save_slp(sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skeleton]),
                 out + "/" + name + ".slp")
import shutil
shutil.copyfile(out + "/two.slp", out + "/linked.slp")
with h5py.File(out + "/linked.slp", "a") as handle:
    handle["sneaky"] = h5py.ExternalLink("/etc/hostname", "/")
"""


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("clips")
    run_in_pose_venv("-c", VIDEOS_SCRIPT, str(out))
    return {p.name: p.read_bytes() for p in out.iterdir()}


def ready_pose_model(services: Services) -> str:
    model = services.store.get_model("default", record_job(services.store).model_id)
    assert model is not None
    services.store.update_model(
        model.model_copy(update={"task": Task.POSE, "status": ModelStatus.READY, "classes": ["head", "tail"]})
    )
    return model.id


def test_videos_over_the_frame_or_duration_cap_are_refused_for_inference(
    client: TestClient, services: Services, clips: dict[str, bytes]
) -> None:
    model_id = ready_pose_model(services)
    # seed 001 names models by its own uid, an alias of the model
    services.store.put_alias(
        Alias(tenant_id="default", namespace=MODEL_NAMESPACE, name=SEED001_UID, target=model_id)
    )
    before = everything_stored(services)
    cases = [
        ("four.mp4", "video clip.mp4 has 4 frames; at most 3"),
        ("three.mp4", "video clip.mp4 lasts 0.3 s (3 frames at 10 fps); at most 0.25 s"),
    ]
    for clip, expected in cases:
        core = client.post(
            "/v1/jobs",
            data={"type": "infer", "task": "pose", "model_id": model_id, "params": "{}"},
            files={"video": ("clip.mp4", clips[clip])},
        )
        assert core.status_code == 422 and expected in core.json()["message"], core.text
        seed = client.post(
            "/api/video-inference",
            json={
                "file_name": "clip.mp4",
                "model_uid": SEED001_UID,
                "video_base64": base64.b64encode(clips[clip]).decode(),
            },
        )
        assert seed.status_code == 422 and expected in seed.json()["error"], seed.text
    assert everything_stored(services) == before
    assert [p for p in services.settings.tmp_root.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    ("slp", "video", "expected"),
    [
        ("four.slp", "four.mp4", "video four.mp4 has 4 frames; at most 3"),
        ("three.slp", "three.mp4", "video three.mp4 lasts 0.3 s"),
        ("linked.slp", "two.mp4", "sneaky is an external link to /etc/hostname"),
    ],
)
def test_pose_datasets_over_the_caps_or_with_outside_references_are_refused(
    client: TestClient, services: Services, clips: dict[str, bytes], slp: str, video: str, expected: str
) -> None:
    before = everything_stored(services)
    response = client.post(
        "/v1/datasets",
        data={"name": "mice", "task": "pose"},
        files=[("file", ("labels.slp", clips[slp])), ("file", (video, clips[video]))],
    )
    assert response.status_code == 422 and expected in response.json()["message"], response.text
    assert everything_stored(services) == before


def test_a_pose_dataset_within_the_caps_is_accepted(client: TestClient, clips: dict[str, bytes]) -> None:
    response = client.post(
        "/v1/datasets",
        data={"name": "mice", "task": "pose"},
        files=[("file", ("labels.slp", clips["two.slp"])), ("file", ("two.mp4", clips["two.mp4"]))],
    )
    assert response.status_code == 201, response.text
    assert response.json()["videos"][0]["frames"] == 2
