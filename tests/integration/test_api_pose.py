"""Pose datasets and pose job requests through HTTP, with the real pose checker (sleap-io in
the pose container's virtualenv): every accepted form of upload, and every bad input → 4xx
naming the problem with nothing stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import record_job
from tests.hostile import zip_of
from tests.pose_data import synthetic_pose_data, write_labels
from trainyard.bootstrap import Services
from trainyard.domain import ModelStatus, Task
from trainyard.params import PoseParams

NODES = ["head", "body", "tail"]


@pytest.fixture(scope="module")
def pose_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic animal in each layout the service takes."""
    root = tmp_path_factory.mktemp("pose")
    return {
        layout: synthetic_pose_data(root / layout.replace("+", "-"), layout, frames=8, video_frames=6)
        for layout in ("pkg", "slp+video", "zip", "7z")
    }


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def post_pose(client: TestClient, *files: tuple[str, bytes], name: str = "mice") -> Any:
    return client.post(
        "/v1/datasets",
        data={"name": name, "task": "pose"},
        files=[("file", (filename, data)) for filename, data in files],
    )


def assert_pose_summary(body: dict[str, Any], frames: int) -> None:
    assert body["task"] == "pose" and body["name"] == "mice"
    assert body["classes"] == NODES
    assert body["skeletons"][0]["nodes"] == NODES
    assert sorted(map(tuple, body["skeletons"][0]["edges"])) == [("body", "tail"), ("head", "body")]
    assert body["labeled_frames"] == frames == body["image_count"]
    assert body["instances"] == frames  # one animal per frame
    assert all(video["frames"] >= 1 and video["width"] > 0 for video in body["videos"])


def test_a_labels_package_with_embedded_frames(client: TestClient, pose_files: dict[str, Path]) -> None:
    package = (pose_files["pkg"] / "labels.pkg.slp").read_bytes()
    response = post_pose(client, ("labels.pkg.slp", package))
    assert response.status_code == 201, response.text
    assert_pose_summary(response.json(), 8)
    assert response.json()["videos"][0]["embedded"] is True
    detail = client.get(f"/v1/datasets/{response.json()['id']}").json()
    assert detail["skeletons"] == response.json()["skeletons"]


def test_labels_and_their_video_as_two_files(
    client: TestClient, services: Services, pose_files: dict[str, Path]
) -> None:
    folder = pose_files["slp+video"]
    response = post_pose(
        client,
        ("labels.slp", (folder / "labels.slp").read_bytes()),
        ("video.mp4", (folder / "video.mp4").read_bytes()),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert_pose_summary(body, 8)
    assert body["video_files"] == ["video.mp4"] and body["labels"] == "labels.slp"
    stored = services.blobs.list_keys(f"tenants/default/datasets/{body['id']}/files/")
    assert sorted(key.rsplit("/", 1)[1] for key in stored) == ["labels.slp", "video.mp4"]


@pytest.mark.parametrize("layout", ["zip", "7z"])
def test_an_archive_through_the_upload_flow(
    client: TestClient, pose_files: dict[str, Path], layout: str
) -> None:
    archive = (pose_files[layout] / f"dataset.{layout}").read_bytes()
    started = client.post("/v1/uploads", json={"filename": f"dataset.{layout}", "size_bytes": len(archive)})
    assert client.put(started.json()["url"], content=archive).status_code == 200
    response = client.post(
        "/v1/datasets", json={"name": "mice", "upload_id": started.json()["upload_id"], "task": "pose"}
    )
    assert response.status_code == 201, response.text
    assert_pose_summary(response.json(), 8)


@pytest.fixture(scope="module")
def bad_labels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("bad-pose")
    empty = write_labels(root / "empty", frames=0)
    one = write_labels(root / "one", frames=1)
    missing = write_labels(root / "missing", frames=3, write_video=False)
    broken = write_labels(root / "broken", frames=3, write_video=False)
    return {
        "no-labelled-frames": {
            "labels.slp": empty.read_bytes(),
            "clip.mp4": (empty.parent / "clip.mp4").read_bytes(),
        },
        "too-few-frames": {
            "labels.slp": one.read_bytes(),
            "clip.mp4": (one.parent / "clip.mp4").read_bytes(),
        },
        "video-not-sent": {"labels.slp": missing.read_bytes()},
        "video-does-not-decode": {
            "labels.slp": broken.read_bytes(),
            "clip.mp4": b"\x00\x00\x00\x18ftypmp42 garbage",
        },
        "not-a-slp": {"labels.slp": b"\x89HDF\r\n\x1a\n but not really"},
        "no-labels-file": {"clip.mp4": (empty.parent / "clip.mp4").read_bytes()},
    }


@pytest.mark.parametrize(
    "case,expected",
    [
        ("no-labelled-frames", "0 labelled frame(s)"),
        ("too-few-frames", "1 labelled frame(s) with user-labelled instances; at least 2"),
        ("video-not-sent", "video clip.mp4 used by labels.slp is not in the upload"),
        ("video-does-not-decode", "video clip.mp4 cannot be decoded"),
        ("not-a-slp", "labels.slp is not a readable SLEAP labels file"),
        ("no-labels-file", "no SLEAP labels file"),
    ],
)
@pytest.mark.parametrize("form", ["files", "zip"])
def test_bad_pose_uploads_are_422_and_store_nothing(
    client: TestClient,
    services: Services,
    bad_labels: dict[str, dict[str, bytes]],
    case: str,
    expected: str,
    form: str,
) -> None:
    files = bad_labels[case]
    if form == "files":
        response = post_pose(client, *files.items())
    else:
        response = post_pose(client, ("dataset.zip", zip_of({f"upload/{n}": d for n, d in files.items()})))
    assert response.status_code == 422, response.text
    assert expected in response.json()["message"]
    assert client.get("/v1/datasets").json()["items"] == []
    assert files_under(services.settings.blob_root) == []
    assert files_under(services.settings.tmp_root) == []


def test_a_corrupt_pose_archive_is_422(client: TestClient, services: Services) -> None:
    response = post_pose(client, ("dataset.7z", b"7z\xbc\xaf\x27\x1c" + b"\x00" * 30))
    assert response.status_code == 422, response.text
    assert "corrupt 7z archive" in response.json()["message"]
    assert files_under(services.settings.blob_root) == []


def test_a_classification_upload_takes_one_archive(client: TestClient) -> None:
    response = client.post(
        "/v1/datasets", data={"name": "x"}, files=[("file", ("a.zip", b"a")), ("file", ("b.zip", b"b"))]
    )
    assert response.status_code == 422 and "send one archive" in response.json()["message"]
    response = client.post("/v1/datasets", data={"name": "x", "task": "sounds"}, files={"file": ("a", b"a")})
    assert (
        response.status_code == 422
        and "task: must be one of classification, pose" in response.json()["message"]
    )


# --- pose job requests that are refused before anything is recorded ---------------------------


@pytest.fixture
def pose_dataset(client: TestClient, pose_files: dict[str, Path]) -> str:
    package = (pose_files["pkg"] / "labels.pkg.slp").read_bytes()
    response = post_pose(client, ("labels.pkg.slp", package))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def train(client: TestClient, dataset_id: str, **params: Any) -> Any:
    return client.post(
        "/v1/jobs",
        json={"type": "train", "task": "pose", "dataset_id": dataset_id, "model_name": "m", "params": params},
    )


@pytest.mark.parametrize(
    "params,expected",
    [
        (
            {"backbone": "pretrained_encoder"},
            "backbone 'pretrained_encoder' is not supported (a pretrained encoder",
        ),
        ({"backbone": "inception"}, "supported: unet, unet_medium_rf, unet_large_rf, convnext, swint"),
        ({"anchor_part": "wing"}, "'wing' is not a node of the dataset's skeleton (head, body, tail)"),
        ({"output_stride": 3}, "output_stride"),
        ({"sigma": 0}, "sigma"),
        ({"validation_fraction": 0.95}, "validation_fraction"),
        ({"model_type": "centroid"}, "model_type"),
        ({"epochs": 5, "learning_rate": 0.001, "colour": "red"}, "colour"),
    ],
)
def test_bad_pose_training_requests_are_422(
    client: TestClient, services: Services, pose_dataset: str, params: dict[str, Any], expected: str
) -> None:
    response = train(client, pose_dataset, **params)
    assert response.status_code == 422, response.text
    assert expected in response.json()["message"]
    assert client.get("/v1/jobs").json()["items"] == []


def test_the_seed_backbone_names_map_to_sleap_nn_backbones() -> None:
    assert [PoseParams(backbone=b).backbone for b in ("unet", "leap", "hourglass", "resnet")] == [
        "unet",
        "unet",
        "unet",
        "convnext",
    ]


def test_a_pose_job_needs_a_pose_dataset_and_a_classifier_a_classification_one(
    client: TestClient, pose_dataset: str
) -> None:
    response = client.post("/v1/jobs", json={"type": "train", "dataset_id": pose_dataset, "model_name": "m"})
    assert response.status_code == 422, response.text
    assert (
        "is a pose dataset; a classification job needs a classification dataset" in response.json()["message"]
    )
    response = client.post("/v1/jobs", json={"type": "infer", "task": "classification", "model_id": "m"})
    assert response.status_code == 422
    assert (
        "type and task must be train/classification, train/detection, train/pose or infer/pose"
        in response.json()["message"]
    )


def ready_pose_model(services: Services, nodes: list[str] = NODES, task: Task = Task.POSE) -> str:
    """A trained model as the store holds it (its files are not needed to be refused)."""
    model = services.store.get_model("default", record_job(services.store).model_id)
    assert model is not None
    services.store.update_model(
        model.model_copy(update={"task": task, "status": ModelStatus.READY, "classes": nodes})
    )
    return model.id


def infer(client: TestClient, model_id: str, video: bytes, **params: Any) -> Any:
    return client.post(
        "/v1/jobs",
        data={"type": "infer", "task": "pose", "model_id": model_id, "params": json.dumps(params)},
        files={"video": ("clip.mp4", video)},
    )


def test_bad_inference_requests_are_4xx_and_record_nothing(
    client: TestClient, services: Services, pose_files: dict[str, Path]
) -> None:
    video = (pose_files["pkg"] / "test_video.mp4").read_bytes()
    model_id = ready_pose_model(services)
    classifier_id = ready_pose_model(services, task=Task.CLASSIFICATION)
    jobs_before = len(client.get("/v1/jobs").json()["items"])
    not_a_video = b"\x00\x00\x00\x18ftypmp42 not a video"
    no_video = {"type": "infer", "task": "pose", "model_id": model_id}
    unknown_upload = {**no_video, "video": {"upload_id": "upl_nope"}}
    dot_dot = {"video": ("..", video)}

    cases = [
        (infer(client, model_id, video, nodes=["head", "tail"]), 422, "missing body"),
        (infer(client, model_id, video, nodes=["head", "body", "tail", "wing"]), 422, "unknown wing"),
        (infer(client, model_id, not_a_video), 422, "video clip.mp4 cannot be decoded"),
        (infer(client, model_id, video, frame_start=10_000), 422, "beyond the video's 6 frames"),
        (infer(client, model_id, video, frame_start=3, frame_end=2), 422, "frame_end (2) must be greater"),
        (infer(client, classifier_id, video), 422, "video inference needs a pose model"),
        (infer(client, "mdl_missing", video), 404, "model mdl_missing not found"),
        (client.post("/v1/jobs", json=no_video), 422, "video:"),
        (client.post("/v1/jobs", json=unknown_upload), 404, "upl_nope"),
        (client.post("/v1/jobs", data=no_video, files=dot_dot), 422, "name '..' is not usable"),
    ]  # fmt: skip
    for response, status, expected in cases:
        assert response.status_code == status, response.text
        assert expected in response.json()["message"], response.json()
    assert len(client.get("/v1/jobs").json()["items"]) == jobs_before
    assert files_under(services.settings.tmp_root) == []
    assert services.blobs.list_keys("tenants/default/jobs/") == []


def test_a_model_still_training_cannot_run(
    client: TestClient, services: Services, pose_files: dict[str, Path]
) -> None:
    model_id = ready_pose_model(services)
    model = services.store.get_model("default", model_id)
    assert model is not None
    services.store.update_model(model.model_copy(update={"status": ModelStatus.TRAINING}))
    response = infer(client, model_id, (pose_files["pkg"] / "test_video.mp4").read_bytes())
    assert response.status_code == 409 and "only a ready model can run" in response.json()["message"]


def test_a_pose_model_does_not_predict_single_images(client: TestClient, services: Services) -> None:
    response = client.post(f"/v1/models/{ready_pose_model(services)}/predict", json={"image_b64": "aGk="})
    assert response.status_code == 422 and "run it on a video" in response.json()["message"]
