"""Seed 001 (the SLEAP microservice, ../shared/seeds/001_*.txt) against the full app with its
background workers: every documented example replayed, one real pose training (sleap-nn in
the pose container's venv, 8 rendered frames, the documented 2 epochs) and one real inference
on a short rendered video, and bad input on every route → {"error": "..."} with nothing stored.

The seed's clients send no API key; the local stack serves them as the default tenant."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.hostile import seven_zip_of, zip_of
from tests.pose_data import synthetic_pose_data
from trainyard.api.app import create_app
from trainyard.bootstrap import Services, bootstrap
from trainyard.settings import Settings

NODES = ["head", "body", "tail"]
VIDEO_FRAMES = 6
# The seed document's examples, verbatim. Their training_dataset and video_base64 are
# placeholders (a truncated 7z header); replays put a real file's base64 in their place.
PLACEHOLDER = "N3q8ryccAAQ1zQE5HGgLAQAAAAAZAAAAAAAAAN"
TRAIN_EXAMPLE_1: dict[str, Any] = {
    "training_dataset": PLACEHOLDER,
    "training_config": {
        "test_fraction": 0.2,
        "num_epochs": 2,
        "learning_rate": 1e-4,
        "backbone_model": "resnet",
        "heads_sigma": 1.5,
        "heads_output_stride": 4,
    },
}
TRAIN_EXAMPLE_2: dict[str, Any] = {
    "training_dataset": PLACEHOLDER,
    "training_config": {
        "test_fraction": 0.2,
        "num_epochs": 2,
        "learning_rate": 1e-4,
        "backbone_model": "pretrained_encoder",
        "pretrained_encoder": "vgg16",
        "heads_sigma": 1.5,
        "heads_output_stride": 4,
    },
}
INFERENCE_EXAMPLE: dict[str, Any] = {
    "file_name": "rabbit.mp4",
    "model_uid": "0c4c2c8d-c33d-48db-8090-c5ca4bd332c4",
    "video_base64": PLACEHOLDER,
}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# "Sun, 31 Mar 2024 12:58:33 GMT", as in the model-info example
HTTP_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def animal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic animal's labels and video packed in dataset.7z, and test_video.mp4."""
    return synthetic_pose_data(tmp_path_factory.mktemp("animal"), "7z", frames=8, video_frames=VIDEO_FRAMES)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Services]]:
    """One app for the module: the trained model is shared by the inference tests."""
    services = bootstrap(Settings(home=tmp_path_factory.mktemp("seed001") / "home"))
    with TestClient(create_app(services, background_work=True)) as client:
        yield client, services


@pytest.fixture(scope="module")
def client(app: tuple[TestClient, Services]) -> TestClient:
    return app[0]


@pytest.fixture(scope="module")
def services(app: tuple[TestClient, Services]) -> Services:
    return app[1]


@pytest.fixture(scope="module")
def dataset_b64(animal: Path) -> str:
    return b64((animal / "dataset.7z").read_bytes())


def with_dataset(example: dict[str, Any], dataset: str, **config: Any) -> dict[str, Any]:
    return {
        **example,
        "training_dataset": dataset,
        "training_config": {**example["training_config"], **config},
    }


def stored(services: Services) -> dict[str, Any]:
    """Everything a seed-001 request could leave behind."""
    store, tenant = services.store, "default"
    return {
        "datasets": [d.id for d in store.list_datasets(tenant, 100, None).items],
        "jobs": [j.id for j in store.list_jobs(tenant, 100, None).items],
        "models": [m.id for m in store.list_models(tenant, 100, None).items],
        "aliases": [a.name for ns in ("001.model", "001.results") for a in store.list_aliases(tenant, ns)],
        "blobs": services.blobs.list_keys("tenants/"),
        "tmp": sorted(p.name for p in services.settings.tmp_root.glob("*")),
    }


def assert_error(response: Any, status: int, expected: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and expected in body["error"], body


def wait_until_trained(client: TestClient, model_uid: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info: dict[str, Any] = client.get("/api/model-info", params={"model_uid": model_uid}).json()
        if not info["currently_training"]:
            return info
        assert time.monotonic() < deadline, f"still training: {info}"
        time.sleep(1)


# --- training: the documented examples ----------------------------------------------------------


def test_the_documented_examples_placeholder_dataset_is_refused_by_name(
    client: TestClient, services: Services
) -> None:
    before = stored(services)
    assert_error(
        client.post("/api/train-network", json=TRAIN_EXAMPLE_1), 422, "training_dataset: not valid base64"
    )
    assert stored(services) == before


def test_example_2_a_pretrained_encoder_is_refused_with_the_reason(
    client: TestClient, services: Services, dataset_b64: str
) -> None:
    before = stored(services)
    response = client.post("/api/train-network", json=with_dataset(TRAIN_EXAMPLE_2, dataset_b64))
    assert_error(
        response, 422, "'pretrained_encoder' (vgg16) is not available: a pretrained encoder needs ImageNet"
    )
    assert stored(services) == before


def test_example_1_verbatim_starts_a_training_of_the_mapped_backbone(
    client: TestClient, services: Services, dataset_b64: str
) -> None:
    """Example 1 as documented (backbone "resnet", sleap-nn's ConvNeXt here) is accepted and
    launched. ConvNeXt trains at about 40 s an epoch on this machine's CPU, so the run is
    stopped once launched; the real training below uses "leap" (a UNet)."""
    response = client.post("/api/train-network", json=with_dataset(TRAIN_EXAMPLE_1, dataset_b64))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"model_uid", "task_id"}
    assert UUID.match(answer["model_uid"]) and UUID.match(answer["task_id"]), answer
    alias = services.store.get_alias("default", "001.model", answer["model_uid"])
    assert alias is not None
    job_id = alias.data["job_id"]
    services.jobs.cancel("default", job_id)
    job = services.jobs.get("default", job_id)
    assert job.params["backbone"] == "convnext" and job.epochs == 2
    assert (job.params["sigma"], job.params["output_stride"]) == (1.5, 4)
    info = client.get("/api/model-info", params={"model_uid": answer["model_uid"]}).json()
    assert info["currently_training"] is False and info["backbone_model"] == "resnet"
    assert HTTP_DATE.match(info["finished_training_at"]), info


def test_a_labels_package_in_a_7z_is_a_dataset_too(
    client: TestClient, services: Services, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """SLEAP's own export, a .pkg.slp with the frames embedded, packed alone in the 7z."""
    package = synthetic_pose_data(tmp_path_factory.mktemp("pkg"), "pkg", frames=4, video_frames=2)
    dataset = b64(seven_zip_of({"labels.pkg.slp": (package / "labels.pkg.slp").read_bytes()}))
    response = client.post(
        "/api/train-network", json=with_dataset(TRAIN_EXAMPLE_1, dataset, backbone_model="unet")
    )
    assert response.status_code == 200, response.text
    alias = services.store.get_alias("default", "001.model", response.json()["model_uid"])
    assert alias is not None
    services.jobs.cancel("default", alias.data["job_id"])  # only the upload is under test here
    stored_dataset = services.datasets.get("default", alias.data["dataset_id"])
    assert stored_dataset.classes == NODES and stored_dataset.details["labeled_frames"] == 4
    assert stored_dataset.details["labels"].endswith("labels.pkg.slp")


@pytest.fixture(scope="module")
def trained(client: TestClient, services: Services, dataset_b64: str) -> dict[str, Any]:
    """Example 1 replayed with a real dataset and backbone_model "leap" (a UNet, quick on a
    CPU); what the stats and info routes said while it was training, and once it had finished."""
    request = with_dataset(TRAIN_EXAMPLE_1, dataset_b64, backbone_model="leap")
    response = client.post("/api/train-network", json=request)
    assert response.status_code == 200, response.text
    answer = response.json()
    # read at once: the worker is still importing torch, so no epoch can have ended yet
    stats_at_start = client.get("/api/learning-stats", params={"model_uid": answer["model_uid"]})
    info_at_start = client.get("/api/model-info", params={"model_uid": answer["model_uid"]}).json()
    early_inference = client.post(
        "/api/video-inference",
        json={"file_name": "rabbit.mp4", "model_uid": answer["model_uid"], "video_base64": b64(b"x")},
    )
    info = wait_until_trained(client, answer["model_uid"])
    return {
        "answer": answer,
        "stats_at_start": stats_at_start,
        "info_at_start": info_at_start,
        "early_inference": early_inference,
        "info": info,
    }


def test_example_1_answers_a_model_uid_and_a_task_id(trained: dict[str, Any], services: Services) -> None:
    answer = trained["answer"]
    assert set(answer) == {"model_uid", "task_id"}
    assert UUID.match(answer["model_uid"]) and UUID.match(answer["task_id"]), answer
    alias = services.store.get_alias("default", "001.model", answer["model_uid"])
    assert alias is not None
    model = services.store.get_model("default", alias.target)
    assert model is not None and model.task.value == "pose" and model.status.value == "ready"
    # the seed's names mapped onto the core's pose parameters
    job = services.store.get_job("default", model.job_id)
    assert job is not None and job.status.value == "SUCCEEDED"
    assert {k: job.params[k] for k in ("backbone", "epochs", "learning_rate", "validation_fraction")} == {
        "backbone": "unet",  # the seed's "leap"
        "epochs": 2,
        "learning_rate": 1e-4,
        "validation_fraction": 0.2,
    }
    assert (job.params["sigma"], job.params["output_stride"], job.params["model_type"]) == (
        1.5,
        4,
        "single_instance",
    )


def test_learning_stats_example_2_is_empty_before_the_first_epoch_ends(trained: dict[str, Any]) -> None:
    response = trained["stats_at_start"]
    assert response.status_code == 200 and response.json() == {}


def test_learning_stats_example_1_has_every_epoch_from_0(client: TestClient, trained: dict[str, Any]) -> None:
    stats = client.get("/api/learning-stats", params={"model_uid": trained["answer"]["model_uid"]}).json()
    assert set(stats) == {"loss", "lr", "val_loss"}
    for name in ("loss", "lr", "val_loss"):
        assert list(stats[name]) == ["0", "1"], stats
        assert all(isinstance(v, float) and v > 0 for v in stats[name].values()), stats
    assert stats["lr"]["0"] == pytest.approx(1e-4)  # the documented learning_rate


def test_model_info_while_training_and_after(trained: dict[str, Any]) -> None:
    config = {**TRAIN_EXAMPLE_1["training_config"], "backbone_model": "leap"}
    early, info = trained["info_at_start"], trained["info"]
    expected_fields = {
        *config,
        "pretrained_encoder",
        "currently_training",
        "started_training_at",
        "finished_training_at",
    }
    assert set(early) == set(info) == expected_fields
    assert list(info) == sorted(info)  # Flask's jsonify order, as in the example
    assert early["currently_training"] is True and early["finished_training_at"] is None
    assert early["started_training_at"] is None or HTTP_DATE.match(early["started_training_at"])

    assert info["currently_training"] is False
    assert {k: info[k] for k in config} == config  # echoed as sent
    assert isinstance(info["num_epochs"], int) and isinstance(info["heads_output_stride"], int)
    assert info["pretrained_encoder"] is None
    assert HTTP_DATE.match(info["started_training_at"]) and HTTP_DATE.match(info["finished_training_at"]), (
        info
    )
    started = parsedate_to_datetime(info["started_training_at"])
    finished = parsedate_to_datetime(info["finished_training_at"])
    assert started.tzinfo is not None and started.utcoffset() == UTC.utcoffset(None)
    assert started <= finished


def test_the_routes_are_also_under_the_seed_prefix(client: TestClient, trained: dict[str, Any]) -> None:
    uid = trained["answer"]["model_uid"]
    root = client.get("/api/model-info", params={"model_uid": uid}).json()
    assert client.get("/seeds/001/api/model-info", params={"model_uid": uid}).json() == root


# --- video inference ----------------------------------------------------------------------------


def test_a_model_still_training_cannot_run_on_a_video(trained: dict[str, Any]) -> None:
    assert_error(trained["early_inference"], 409, "only a ready model can run")


@pytest.fixture(scope="module")
def inferred(client: TestClient, services: Services, trained: dict[str, Any], animal: Path) -> dict[str, Any]:
    """The documented inference example with the trained model and a real video."""
    request = {
        **INFERENCE_EXAMPLE,
        "model_uid": trained["answer"]["model_uid"],
        "video_base64": b64((animal / "test_video.mp4").read_bytes()),
    }
    response = client.post("/api/video-inference", json=request)
    assert response.status_code == 200, response.text
    results_id = response.json()["results_id"]
    first_look = client.get(f"/api/video-inference/{results_id}").json()
    deadline = time.monotonic() + 300
    while (results := client.get(f"/api/video-inference/{results_id}").json())["status"] not in TERMINAL:
        assert time.monotonic() < deadline, results
        time.sleep(1)
    return {"answer": response.json(), "first_look": first_look, "results": results}


def test_video_inference_answers_an_integer_results_id(inferred: dict[str, Any]) -> None:
    answer = inferred["answer"]
    assert list(answer) == ["results_id"] and type(answer["results_id"]) is int and answer["results_id"] >= 1


def test_the_results_give_status_predictions_and_downloads(
    client: TestClient, inferred: dict[str, Any], trained: dict[str, Any]
) -> None:
    first, results = inferred["first_look"], inferred["results"]
    assert first["results_id"] == inferred["answer"]["results_id"]
    assert first["status"] in ("PENDING", "DOWNLOADING", "DOWNLOADED", "RUNNING", "EXPORTING", "SUCCEEDED")
    assert results["status"] == "SUCCEEDED" and results["ready"] is True, results
    assert results["model_uid"] == trained["answer"]["model_uid"] and results["file_name"] == "rabbit.mp4"
    assert results["progress"] == {"done": VIDEO_FRAMES, "total": VIDEO_FRAMES}
    assert results["frames"]["total"] == results["frames"]["predicted"] == VIDEO_FRAMES
    assert results["skeleton"]["nodes"] == NODES
    assert [f["frame_idx"] for f in results["predictions"]] == list(range(VIDEO_FRAMES))
    for frame in results["predictions"]:
        for instance in frame["instances"]:
            assert set(instance["points"]) == set(NODES)
    json_file = client.get(results["downloads"]["json"])
    assert json_file.status_code == 200 and json_file.json()["frames"] == results["predictions"]
    slp = client.get(results["downloads"]["slp"])
    assert slp.status_code == 200 and slp.content.startswith(b"\x89HDF")
    results_id = inferred["answer"]["results_id"]
    assert_error(client.get(f"/api/video-inference/{results_id}/weights"), 404, "has no 'weights' result")


def test_results_ids_count_up(
    client: TestClient, services: Services, inferred: dict[str, Any], trained: dict[str, Any], animal: Path
) -> None:
    request = {
        "file_name": "walk.mp4",
        "model_uid": trained["answer"]["model_uid"],
        "video_base64": b64((animal / "test_video.mp4").read_bytes()),
    }
    response = client.post("/api/video-inference", json=request)
    assert response.status_code == 200, response.text
    results_id = response.json()["results_id"]
    assert results_id == inferred["answer"]["results_id"] + 1
    # not waited for: stopped so that it does not outlive the module's app
    alias = services.store.get_alias("default", "001.results", str(results_id))
    assert alias is not None
    services.jobs.cancel("default", alias.target)
    assert client.get(f"/api/video-inference/{results_id}").json()["status"] == "CANCELLED"


# --- bad input: every route, the seed's error form, nothing stored --------------------------------


CONFIG: dict[str, Any] = TRAIN_EXAMPLE_1["training_config"]
DROP = object()  # a case's value that leaves the field out
BAD_TRAINING_REQUESTS: list[tuple[str, Any, int, str]] = [
    ("missing training_dataset", {"training_dataset": DROP}, 422, "training_dataset: Field required"),
    ("missing training_config", {"training_config": DROP}, 422, "training_config: Field required"),
    *[
        (f"missing {name}", {"training_config": {k: v for k, v in CONFIG.items() if k != name}}, 422,
         f"training_config.{name}: Field required")
        for name in CONFIG
    ],
    ("dataset is a number", {"training_dataset": 123}, 422,
     "training_dataset: Input should be a valid string"),
    ("config is a string", {"training_config": "fast"}, 422,
     "training_config: Input should be a valid dictionary"),
    ("num_epochs as a string", {"training_config": {**CONFIG, "num_epochs": "2"}}, 422,
     "training_config.num_epochs: Input should be a valid integer"),
    ("num_epochs a fraction", {"training_config": {**CONFIG, "num_epochs": 2.5}}, 422,
     "training_config.num_epochs"),
    ("learning_rate a string", {"training_config": {**CONFIG, "learning_rate": "fast"}}, 422,
     "training_config.learning_rate: Input should be a valid number"),
    ("test_fraction a boolean", {"training_config": {**CONFIG, "test_fraction": True}}, 422,
     "training_config.test_fraction"),
    ("heads_output_stride a string", {"training_config": {**CONFIG, "heads_output_stride": "4"}}, 422,
     "training_config.heads_output_stride"),
    ("test_fraction too big", {"training_config": {**CONFIG, "test_fraction": 0.95}}, 422,
     "training_config.test_fraction: Input should be less than or equal to 0.9"),
    ("test_fraction negative", {"training_config": {**CONFIG, "test_fraction": -0.1}}, 422, "test_fraction"),
    ("no epochs", {"training_config": {**CONFIG, "num_epochs": 0}}, 422,
     "training_config.num_epochs: Input should be greater than or equal to 1"),
    ("too many epochs", {"training_config": {**CONFIG, "num_epochs": 1001}}, 422, "num_epochs"),
    ("learning_rate 0", {"training_config": {**CONFIG, "learning_rate": 0}}, 422, "learning_rate"),
    ("learning_rate 2", {"training_config": {**CONFIG, "learning_rate": 2}}, 422, "learning_rate"),
    ("heads_sigma 0", {"training_config": {**CONFIG, "heads_sigma": 0}}, 422, "heads_sigma"),
    ("heads_output_stride 3", {"training_config": {**CONFIG, "heads_output_stride": 3}}, 422,
     "training_config.heads_output_stride: Input should be 1, 2, 4, 8, 16 or 32"),
    ("unknown backbone", {"training_config": {**CONFIG, "backbone_model": "vgg"}}, 422,
     "training_config.backbone_model: Input should be 'unet', 'leap', 'hourglass', 'resnet' or"
     " 'pretrained_encoder'"),
    ("unknown encoder", {"training_config": {**CONFIG, "pretrained_encoder": "vgg17"}}, 422,
     "training_config.pretrained_encoder: Value error, must be one of vgg16, vgg19"),
    ("encoder not named", {"training_config": {**CONFIG, "backbone_model": "pretrained_encoder"}}, 422,
     "pretrained_encoder is required when backbone_model is 'pretrained_encoder'"),
    ("unknown config field", {"training_config": {**CONFIG, "batch_size": 4}}, 422,
     "training_config.batch_size: Extra inputs are not permitted"),
    ("unknown field", {"colour": "red"}, 422, "colour: Extra inputs are not permitted"),
    ("empty dataset", {"training_dataset": ""}, 422,
     "training_dataset: String should have at least 1 character"),
    ("dataset not base64", {"training_dataset": "@@not base64@@"}, 422, "training_dataset: not valid base64"),
    ("dataset not a 7z", {"training_dataset": b64(zip_of({"labels.slp": b"x"}))}, 422,
     "training_dataset: not a 7z archive"),
    ("dataset a corrupt 7z", {"training_dataset": b64(b"7z\xbc\xaf\x27\x1c" + b"\x00" * 30)}, 422,
     "corrupt 7z archive"),
    ("dataset without labels", {"training_dataset": b64(seven_zip_of({"notes.txt": b"hello"}))}, 422,
     "no SLEAP labels file"),
]  # fmt: skip


@pytest.mark.parametrize(
    "change,status,expected",
    [case[1:] for case in BAD_TRAINING_REQUESTS],
    ids=[case[0] for case in BAD_TRAINING_REQUESTS],
)
def test_bad_training_requests_are_refused_and_store_nothing(
    client: TestClient,
    services: Services,
    dataset_b64: str,
    change: dict[str, Any],
    status: int,
    expected: str,
) -> None:
    merged = {**TRAIN_EXAMPLE_1, "training_dataset": dataset_b64, **change}
    body = {k: v for k, v in merged.items() if v is not DROP}
    before = stored(services)
    assert_error(client.post("/api/train-network", json=body), status, expected)
    assert stored(services) == before


def test_unreadable_bodies_are_400(client: TestClient, services: Services) -> None:
    before = stored(services)
    for route in ("/api/train-network", "/api/video-inference"):
        not_json = client.post(route, content=b"{nope", headers={"content-type": "application/json"})
        assert_error(not_json, 400, "body is not valid JSON")
        assert_error(client.post(route, json=[1, 2]), 400, "body must be a JSON object")
    assert stored(services) == before


def test_a_bad_key_is_401_in_the_seed_form(client: TestClient) -> None:
    response = client.get(
        "/api/model-info", params={"model_uid": "x"}, headers={"Authorization": "Bearer ty_nope"}
    )
    assert response.status_code == 401 and set(response.json()) == {"error"}


@pytest.mark.parametrize("route", ["/api/learning-stats", "/api/model-info"])
def test_stats_and_info_need_a_known_model_uid(client: TestClient, route: str) -> None:
    assert_error(client.get(route), 422, "query.model_uid: Field required")
    assert_error(client.get(route, params={"model_uid": ""}), 422, "query.model_uid")
    unknown = "0c4c2c8d-c33d-48db-8090-c5ca4bd332c4"  # the documented example's uid, never issued here
    assert_error(client.get(route, params={"model_uid": unknown}), 404, f"model_uid {unknown} not found")


def test_bad_inference_requests_are_refused_and_store_nothing(
    client: TestClient, services: Services, trained: dict[str, Any], animal: Path
) -> None:
    uid = trained["answer"]["model_uid"]
    video = b64((animal / "test_video.mp4").read_bytes())
    good = {"file_name": "rabbit.mp4", "model_uid": uid, "video_base64": video}
    cases: list[tuple[dict[str, Any], int, str]] = [
        (INFERENCE_EXAMPLE, 404, "model_uid 0c4c2c8d-c33d-48db-8090-c5ca4bd332c4 not found"),
        ({**INFERENCE_EXAMPLE, "model_uid": uid}, 422, "video_base64: not valid base64"),
        *[
            ({k: v for k, v in good.items() if k != name}, 422, f"{name}: Field required")
            for name in good
        ],
        ({**good, "video_base64": 5}, 422, "video_base64: Input should be a valid string"),
        ({**good, "model_uid": ["x"]}, 422, "model_uid: Input should be a valid string"),
        ({**good, "file_name": None}, 422, "file_name: Input should be a valid string"),
        ({**good, "colour": "red"}, 422, "colour: Extra inputs are not permitted"),
        ({**good, "video_base64": ""}, 422, "video_base64: String should have at least 1 character"),
        ({**good, "video_base64": "%%%"}, 422, "video_base64: not valid base64"),
        ({**good, "video_base64": b64(b"\x00\x00\x00\x18ftypmp42 not a video")}, 422, "cannot be decoded"),
        ({**good, "file_name": ".."}, 422, "the file name '..' is not usable"),
        ({**good, "model_uid": "nope"}, 404, "model_uid nope not found"),
    ]  # fmt: skip
    before = stored(services)
    for body, status, expected in cases:
        assert_error(client.post("/api/video-inference", json=body), status, expected)
    assert stored(services) == before


def test_unknown_results_are_404_and_bad_ids_422(client: TestClient) -> None:
    assert_error(client.get("/api/video-inference/987654"), 404, "results_id 987654 not found")
    assert_error(client.get("/api/video-inference/987654/json"), 404, "results_id 987654 not found")
    assert_error(
        client.get("/api/video-inference/two"), 422, "path.results_id: Input should be a valid integer"
    )
    assert_error(client.get("/api/video-inference/0"), 422, "path.results_id")


def test_another_tenant_cannot_see_a_model_or_its_results(
    client: TestClient, services: Services, trained: dict[str, Any], inferred: dict[str, Any]
) -> None:
    _, _, key = services.tenants.create_tenant("other lab")
    other = {"Authorization": key}  # the bare key, as seed clients put it, or Bearer <key>
    uid, results_id = trained["answer"]["model_uid"], inferred["answer"]["results_id"]
    for route in ("/api/learning-stats", "/api/model-info"):
        assert_error(
            client.get(route, params={"model_uid": uid}, headers=other), 404, f"model_uid {uid} not found"
        )
    assert_error(client.get(f"/api/video-inference/{results_id}", headers=other), 404, "not found")
    request = {"file_name": "a.mp4", "model_uid": uid, "video_base64": "AAAA"}
    assert_error(client.post("/api/video-inference", json=request, headers=other), 404, "not found")


def test_a_dataset_over_the_inline_limit_is_413(tmp_path: Path) -> None:
    services = bootstrap(Settings(home=tmp_path / "home", max_inline_bytes=4096))
    with TestClient(create_app(services)) as small:
        body = with_dataset(TRAIN_EXAMPLE_1, "A" * 100_000)  # over 4096 * 4/3 + the JSON's allowance
        assert_error(small.post("/api/train-network", json=body), 413, "inline limit")
        # within the body's allowance (a third more for base64) but over once decoded
        decoded_too_big = with_dataset(TRAIN_EXAMPLE_1, b64(b"7z" * 2500))
        assert_error(
            small.post("/api/train-network", json=decoded_too_big), 413, "the decoded file is 5000 bytes"
        )
        assert stored(services) == {
            "datasets": [],
            "jobs": [],
            "models": [],
            "aliases": [],
            "blobs": [],
            "tmp": [],
        }


def test_the_openapi_document_describes_the_json_bodies(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    train = paths["/seeds/001/api/train-network"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    config = train["properties"]["training_config"]
    assert set(config["required"]) == set(CONFIG)
    assert config["properties"]["backbone_model"]["enum"] == [
        "unet",
        "leap",
        "hourglass",
        "resnet",
        "pretrained_encoder",
    ]
    video = paths["/seeds/001/api/video-inference"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert set(video["required"]) == {"video_base64", "file_name", "model_uid"}
