"""Object detection through HTTP: COCO and YOLO uploads in every archive format, bad uploads
refused naming the file with nothing stored, training requests and the LaunchSpec the trainer
gets, prediction on a detector (a tiny constant ONNX graph), and mAP in the job's metrics."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.helpers import progress, record_job
from tests.synthetic import class_folder_zip
from tests.synthetic_detection import (
    CLASSES,
    archive_bytes,
    coco_archive,
    coco_files,
    detection_samples,
    yolo_archive,
    yolo_files,
)
from tests.unit.test_detection_datasets import COCO_CASES, YOLO_CASES
from trainyard.adapters.local.subprocess_launcher import PROGRESS, SubprocessLauncher
from trainyard.bootstrap import Services
from trainyard.domain import EpochMetrics, ModelStatus, Task
from trainyard.ports import ChannelFile, LaunchSpec
from trainyard.services.datasets import dataset_files_prefix
from trainyard.services.jobs import model_prefix


def upload(client: TestClient, data: bytes, filename: str = "shapes.zip", name: str = "shapes") -> Any:
    return client.post(
        "/v1/datasets", data={"name": name, "task": "detection"}, files={"file": (filename, data)}
    )


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def seven_zip_bytes(files: dict[str, bytes]) -> bytes:
    import py7zr

    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        for name, data in sorted(files.items()):
            archive.writestr(data, name)
    return buffer.getvalue()


SAMPLES = detection_samples(6, seed=11, width=96, height=64)
SPLIT_SAMPLES = detection_samples(8, seed=12, width=96, height=64, split=True)


def box_counts(samples: list[Any]) -> dict[str, int]:
    labels = [b.label for s in samples for b in s.boxes]
    return {name: labels.count(name) for name in CLASSES}


# --- uploads ----------------------------------------------------------------------------------


def test_a_coco_zip(client: TestClient, services: Services) -> None:
    response = upload(client, archive_bytes(coco_files(SAMPLES)))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["task"] == "detection" and body["classes"] == list(CLASSES) and body["image_count"] == 6
    assert body["format"] == "coco" and body["annotations"] == "annotations.json"
    assert body["boxes_per_class"] == box_counts(SAMPLES) and body["boxes"] == sum(
        box_counts(SAMPLES).values()
    )
    assert body["images_per_split"] == {"train": 0, "val": 0, "unassigned": 6}
    assert client.get(f"/v1/datasets/{body['id']}").json() == body
    prefix = dataset_files_prefix("default", body["id"])
    stored = sorted(key[len(prefix) :] for key in services.blobs.list_keys(prefix))
    assert stored == ["annotations.json", *(f"images/{i:06d}.png" for i in range(1, 7))]
    document = json.loads(services.blobs.get_bytes(prefix + "annotations.json"))
    assert document["schema"] == "trainyard.detection/1" and document["classes"] == list(CLASSES)
    first = document["images"][0]
    assert first["source"] == f"images/{SAMPLES[0].name}" and (first["width"], first["height"]) == (96, 64)
    assert services.blobs.get_bytes(prefix + first["file"]) == SAMPLES[0].png
    assert len(first["boxes"]) == len(SAMPLES[0].boxes)


@pytest.mark.parametrize(
    "filename,pack",
    [
        ("shapes.tar.gz", lambda files: archive_bytes(files, "tar.gz")),
        ("shapes.tgz", lambda files: archive_bytes(files, "tar.gz")),
        ("shapes.tar", lambda files: archive_bytes(files, "tar")),
        ("shapes.7z", seven_zip_bytes),
    ],
)
def test_a_split_yolo_dataset_in_each_archive_format(client: TestClient, filename: str, pack: Any) -> None:
    response = upload(client, pack(yolo_files(SPLIT_SAMPLES, names="data.yaml")), filename)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["format"] == "yolo" and body["classes"] == list(CLASSES) and body["image_count"] == 8
    assert body["images_per_split"] == {"train": 6, "val": 2, "unassigned": 0}
    assert body["boxes_per_class"] == box_counts(SPLIT_SAMPLES)


def test_the_builders_make_uploadable_archives(client: TestClient) -> None:
    for data in (coco_archive(5, seed=1, split=True), yolo_archive(5, seed=1, archive="tar.gz")):
        response = upload(client, data)
        assert response.status_code == 201, response.text
        assert response.json()["image_count"] == 5


def test_a_detection_dataset_through_the_upload_flow(client: TestClient) -> None:
    archive = coco_archive(4, seed=2)
    started = client.post("/v1/uploads", json={"filename": "shapes.zip", "size_bytes": len(archive)})
    assert client.put(started.json()["url"], content=archive).status_code == 200
    response = client.post(
        "/v1/datasets", json={"name": "shapes", "upload_id": started.json()["upload_id"], "task": "detection"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["format"] == "coco" and response.json()["image_count"] == 4


BAD_UPLOADS = {f"coco: {case}": files for case, (files, _) in COCO_CASES.items()} | {
    f"yolo: {case}": files for case, (files, _) in YOLO_CASES.items()
}
BAD_UPLOAD_MESSAGES = {f"coco: {case}": parts for case, (_, parts) in COCO_CASES.items()} | {
    f"yolo: {case}": parts for case, (_, parts) in YOLO_CASES.items()
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_detection_uploads_are_422_naming_the_file_and_store_nothing(
    client: TestClient, services: Services, case: str
) -> None:
    response = upload(client, archive_bytes(BAD_UPLOADS[case]))
    assert response.status_code == 422, response.text
    for fragment in BAD_UPLOAD_MESSAGES[case]:
        assert fragment in response.json()["message"]
    assert client.get("/v1/datasets").json()["items"] == []
    assert services.blobs.list_keys("tenants/default/datasets/") == []
    assert files_under(services.settings.blob_root) == []
    assert files_under(services.settings.tmp_root) == []


def test_a_failed_store_leaves_no_blobs(
    client: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("the store is down")

    monkeypatch.setattr(services.store, "create_dataset", broken)
    with pytest.raises(RuntimeError):
        upload(client, coco_archive(3, seed=4))
    assert services.blobs.list_keys("tenants/default/datasets/") == []


def test_one_archive_per_detection_dataset(client: TestClient) -> None:
    data = coco_archive(3, seed=5)
    response = client.post(
        "/v1/datasets",
        data={"name": "shapes", "task": "detection"},
        files=[("file", ("a.zip", data)), ("file", ("b.zip", data))],
    )
    assert response.status_code == 422 and "send one archive" in response.json()["message"]


# --- training ---------------------------------------------------------------------------------


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[LaunchSpec]:
    """What the launcher is asked to start (no worker runs)."""
    specs: list[LaunchSpec] = []

    def record(_: SubprocessLauncher, spec: LaunchSpec) -> str:
        specs.append(spec)
        return f"recorded-{len(specs)}"

    monkeypatch.setattr(SubprocessLauncher, "launch", record)
    return specs


@pytest.fixture
def detection_dataset(client: TestClient) -> str:
    response = upload(client, archive_bytes(coco_files(SPLIT_SAMPLES)))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def train(client: TestClient, dataset_id: str, **fields: Any) -> Any:
    body = {
        "type": "train",
        "task": "detection",
        "dataset_id": dataset_id,
        "model_name": "shapes-v1",
        **fields,
    }
    return client.post("/v1/jobs", json=body)


def test_a_detection_job_launches_the_trainer_with_images_and_annotations(
    client: TestClient, services: Services, detection_dataset: str, launched: list[LaunchSpec]
) -> None:
    params = {"backbone": "resnet18", "weights": "imagenet", "epochs": 3, "image_size": 128, "seed": 7}
    response = train(client, detection_dataset, params=params, exports=["tflite"])
    assert response.status_code == 202, response.text
    job = client.get(f"/v1/jobs/{response.json()['id']}").json()
    assert job["task"] == "detection" and job["epochs"] == 3 and job["status"] == "PENDING"
    assert job["params"]["backbone"] == "resnet18" and job["params"]["exports"] == ["tflite", "onnx"]
    model = client.get(f"/v1/models/{response.json()['model_id']}").json()
    assert model["task"] == "detection" and model["status"] == "training"

    (spec,) = launched
    assert spec.job_id == job["id"] and spec.container == "trainer"
    assert spec.model_prefix == model_prefix("default", job["model_id"])
    hyperparameters = {key: json.loads(value) for key, value in spec.hyperparameters.items()}
    assert hyperparameters == {
        "job_id": job["id"],
        "task": "detection",
        "backbone": "resnet18",
        "weights": "imagenet",
        "epochs": 3,
        "batch_size": 16,
        "learning_rate": 0.001,
        "image_size": 128,
        "validation_split": 0.2,
        "seed": 7,
        "shuffle": True,
        "augment": True,
        "lr_step_size": 10,
        "lr_gamma": 1.0,
        "exports": ["tflite", "onnx"],
    }
    prefix = dataset_files_prefix("default", detection_dataset)
    stored = services.blobs.get_bytes(prefix + "annotations.json").decode()
    assert spec.channel_documents == {"training": {"annotations.json": stored}}
    names = [f"images/{i:06d}.png" for i in range(1, 9)]
    assert spec.channels == {"training": [ChannelFile(prefix + name, name) for name in names]}
    assert all(services.blobs.exists(f.blob_key) for f in spec.channels["training"])
    splits = [image["split"] for image in json.loads(stored)["images"]]
    assert splits.count("val") == 2 and splits.count("train") == 6


def test_detection_params_default_to_the_contract(
    client: TestClient, detection_dataset: str, launched: list[LaunchSpec]
) -> None:
    assert train(client, detection_dataset).status_code == 202
    hyperparameters = {key: json.loads(value) for key, value in launched[0].hyperparameters.items()}
    assert hyperparameters["backbone"] == "resnet_small" and hyperparameters["epochs"] == 20
    assert hyperparameters["image_size"] == 256 and hyperparameters["exports"] == ["keras", "onnx", "tflite"]


@pytest.mark.parametrize(
    "fields,expected",
    [
        ({"params": {"backbone": "small_cnn"}}, "params.backbone"),
        ({"params": {"weights": "imagenet"}}, "backbone 'resnet_small' has no ImageNet weights"),
        ({"params": {"image_size": 100}}, "params.image_size: Input should be a multiple of 32"),
        ({"params": {"image_size": 32}}, "params.image_size"),
        ({"params": {"image_size": 800}}, "params.image_size"),
        ({"params": {"epochs": 0}}, "params.epochs"),
        ({"params": {"batch_size": 257}}, "params.batch_size"),
        ({"params": {"validation_split": 0.95}}, "params.validation_split"),
        ({"params": {"alpha": 0.5}}, "params.alpha"),
        ({"exports": ["caffe2"]}, "caffe2"),
        ({"webhook_url": "ftp://example.com"}, "webhook_url"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_detection_requests_are_422_and_record_nothing(
    client: TestClient,
    detection_dataset: str,
    launched: list[LaunchSpec],
    fields: dict[str, Any],
    expected: str,
) -> None:
    response = train(client, detection_dataset, **fields)
    assert response.status_code == 422, response.text
    assert expected in response.json()["message"]
    assert client.get("/v1/jobs").json()["items"] == [] and launched == []


def test_a_detection_job_needs_a_detection_dataset_and_a_classifier_a_classification_one(
    client: TestClient, detection_dataset: str, launched: list[LaunchSpec]
) -> None:
    classes = client.post(
        "/v1/datasets", data={"name": "c"}, files={"file": ("c.zip", class_folder_zip(2, 1))}
    )
    response = train(client, classes.json()["id"])
    assert response.status_code == 422
    assert (
        "is a classification dataset; a detection job needs a detection dataset" in response.json()["message"]
    )
    response = client.post(
        "/v1/jobs", json={"type": "train", "dataset_id": detection_dataset, "model_name": "m"}
    )
    assert response.status_code == 422
    assert "is a detection dataset; a classification job needs" in response.json()["message"]
    assert train(client, "ds_missing").status_code == 404
    assert launched == []


def test_map_flows_from_the_epoch_events_to_the_metrics_and_the_plot(
    client: TestClient, services: Services
) -> None:
    job = record_job(services.store)
    for n in (1, 2):
        event = progress(job.id, "epoch", epoch=n, epochs=2, loss=1 / n, val_loss=1.1 / n, lr=0.001)
        services.bus.publish(PROGRESS, event | {"val_map_50": 0.4 * n, "val_map_50_95": 0.2 * n})
    metrics = client.get(f"/v1/jobs/{job.id}/metrics").json()["epochs"]
    assert [(e["val_map_50"], e["val_map_50_95"]) for e in metrics] == [(0.4, 0.2), (0.8, 0.4)]
    assert client.get(f"/v1/jobs/{job.id}").json()["val_map_50"] == 0.8
    plot = client.get(f"/v1/models/{job.model_id}").json()["plot_loss"]
    assert Image.open(io.BytesIO(base64.b64decode(plot))).height == 800  # loss and mAP panels


def test_the_dynamodb_store_keeps_map_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    from tests.aws_fixtures import TEST_REGION, TEST_TABLE_NAME, create_job_table, use_fake_credentials
    from trainyard.adapters.aws.dynamodb_store import DynamoDbJobStore

    use_fake_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=TEST_REGION)
        create_job_table(client)
        store = DynamoDbJobStore(TEST_TABLE_NAME, client=client)
        job = record_job(store)
        assert store.record_epoch(EpochMetrics(job_id=job.id, epoch=1, val_map_50=0.5, val_map_50_95=0.3), 4)
        assert store.list_epochs(job.id)[0].val_map_50_95 == 0.3
        stored = store.get_job(job.tenant_id, job.id)
        assert stored is not None and stored.val_map_50 == 0.5 and stored.current_epoch == 1


# --- prediction -------------------------------------------------------------------------------

INPUT_SIZE = 64
# Anchors in pixels of the 64x64 input, and their scores for (circle, square).
ANCHORS = np.array(
    [
        [4, 4, 20, 20],  # circle 0.9
        [5, 5, 21, 21],  # overlaps the first: its best class, circle (0.8), is suppressed with it
        [40, 40, 60, 60],  # square 0.35: above the default threshold 0.3 only
        [30, 0, 70, 10],  # circle 0.6, reaching past the input's right edge
    ],
    dtype=np.float32,
)
SCORES = np.array([[0.9, 0.05], [0.8, 0.7], [0.2, 0.35], [0.6, 0.0]], dtype=np.float32)
IMAGE_WIDTH, IMAGE_HEIGHT = 200, 100  # the uploaded image: x scales by 200/64, y by 100/64
SX, SY = IMAGE_WIDTH / INPUT_SIZE, IMAGE_HEIGHT / INPUT_SIZE


def constant_detector_onnx(boxes: np.ndarray, scores: np.ndarray, size: int) -> bytes:
    """A graph with the detector's interface (input images [N, size, size, 3] → boxes
    [N, A, 4], scores [N, A, C]) answering the same boxes and scores for every image."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def expand(name: str, constant: np.ndarray) -> list[onnx.NodeProto]:
        return [
            helper.make_node(
                "Constant", [], [f"{name}_value"], value=numpy_helper.from_array(constant[None])
            ),
            helper.make_node(
                "Constant", [], [f"{name}_dims"], value=numpy_helper.from_array(np.array(constant.shape))
            ),
            helper.make_node("Concat", ["batch", f"{name}_dims"], [f"{name}_shape"], axis=0),
            helper.make_node("Expand", [f"{name}_value", f"{name}_shape"], [name]),
        ]

    nodes = [
        helper.make_node("Shape", ["images"], ["images_shape"]),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array([0]))),
        helper.make_node("Constant", [], ["one"], value=numpy_helper.from_array(np.array([1]))),
        helper.make_node("Slice", ["images_shape", "zero", "one"], ["batch"]),
        *expand("boxes", boxes),
        *expand("scores", scores),
    ]
    anchors, classes = scores.shape
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", size, size, 3])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", anchors, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", anchors, classes]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by any recent ONNX Runtime
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def detector_manifest(**postprocess: Any) -> dict[str, Any]:
    return {
        "schema": "trainyard.model/1",
        "task": "detection",
        "classes": ["circle", "square"],
        "input": {"name": "images", "height": INPUT_SIZE, "width": INPUT_SIZE, "channels": 3},
        "output": {"kind": "boxes", "boxes": "boxes", "scores": "scores", "box_format": "xyxy"},
        "postprocess": {"nms_iou_threshold": 0.5, "score_threshold": 0.3, "max_detections": 100}
        | postprocess,
        "exports": {"onnx": "model.onnx"},
        "metrics": {"val_map_50": 0.8},
    }


def ready_detector(services: Services, manifest: dict[str, Any] | None = None) -> str:
    model = services.store.get_model("default", record_job(services.store).model_id)
    assert model is not None
    manifest = manifest or detector_manifest()
    services.blobs.put_bytes(
        model_prefix("default", model.id) + "model.onnx", constant_detector_onnx(ANCHORS, SCORES, INPUT_SIZE)
    )
    services.store.update_model(
        model.model_copy(
            update={
                "task": Task.DETECTION,
                "status": ModelStatus.READY,
                "classes": manifest["classes"],
                "exports": ["onnx"],
                "manifest": manifest,
            }
        )
    )
    return model.id


def png(width: int = IMAGE_WIDTH, height: int = IMAGE_HEIGHT) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 130, 140)).save(buffer, format="PNG")
    return buffer.getvalue()


def scaled(x_min: float, y_min: float, x_max: float, y_max: float) -> dict[str, float]:
    return {
        "x_min": pytest.approx(min(x_min * SX, IMAGE_WIDTH)),
        "y_min": pytest.approx(min(y_min * SY, IMAGE_HEIGHT)),
        "x_max": pytest.approx(min(x_max * SX, IMAGE_WIDTH)),
        "y_max": pytest.approx(min(y_max * SY, IMAGE_HEIGHT)),
    }


EXPECTED = [
    {"label": "circle", "score": pytest.approx(0.9), **scaled(4, 4, 20, 20)},
    {"label": "circle", "score": pytest.approx(0.6), **scaled(30, 0, 70, 10)},  # clipped at x = 200
    {"label": "square", "score": pytest.approx(0.35), **scaled(40, 40, 60, 60)},
]


def test_a_detector_answers_boxes_in_original_pixels_after_nms(
    client: TestClient, services: Services
) -> None:
    model_id = ready_detector(services)
    response = client.post(f"/v1/models/{model_id}/predict", files={"file": ("x.png", png())})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_id"], body["width"], body["height"]) == (model_id, IMAGE_WIDTH, IMAGE_HEIGHT)
    assert body["boxes"] == EXPECTED
    assert body["boxes"][1]["x_max"] == IMAGE_WIDTH


def test_threshold_and_max_detections_as_form_fields_json_keys_or_query(
    client: TestClient, services: Services
) -> None:
    model_id = ready_detector(services)
    url = f"/v1/models/{model_id}/predict"
    image_b64 = base64.b64encode(png()).decode()
    by_form = client.post(url, data={"score_threshold": "0.5"}, files={"file": ("x.png", png())})
    by_json = client.post(url, json={"image_b64": image_b64, "max_detections": 2})
    by_query = client.post(
        url, params={"score_threshold": 0.75, "max_detections": 5}, json={"image_b64": image_b64}
    )
    assert by_form.json()["boxes"] == EXPECTED[:2]
    assert by_json.json()["boxes"] == EXPECTED[:2]
    assert by_query.json()["boxes"] == EXPECTED[:1]


def test_the_manifest_gives_the_defaults(client: TestClient, services: Services) -> None:
    model_id = ready_detector(services, detector_manifest(score_threshold=0.75, nms_iou_threshold=0.9))
    body = client.post(f"/v1/models/{model_id}/predict", files={"file": ("x.png", png())}).json()
    # at IoU 0.9 the overlapping circle (0.8) is no longer suppressed
    assert [(b["label"], round(b["score"], 2)) for b in body["boxes"]] == [("circle", 0.9), ("circle", 0.8)]


@pytest.mark.parametrize(
    "request_fields,expected",
    [
        ({"top_k": "3"}, "top_k: model mdl_"),
        ({"score_threshold": "1.5"}, "score_threshold: must be between 0 and 1"),
        ({"score_threshold": "nan"}, "score_threshold: must be between 0 and 1"),
        ({"score_threshold": "high"}, "score_threshold: expected a number"),
        ({"max_detections": "0"}, "max_detections: must be between 1 and 1000"),
        ({"max_detections": "1001"}, "max_detections: must be between 1 and 1000"),
        ({"max_detections": "many"}, "max_detections: expected an integer"),
    ],
)
def test_bad_detector_options_are_422(
    client: TestClient, services: Services, request_fields: dict[str, str], expected: str
) -> None:
    model_id = ready_detector(services)
    response = client.post(
        f"/v1/models/{model_id}/predict", data=request_fields, files={"file": ("x.png", png())}
    )
    assert response.status_code == 422, response.text
    assert expected in response.json()["message"]


def test_a_classifier_refuses_detection_options(client: TestClient, services: Services) -> None:
    classifier = record_job(services.store).model_id
    for field, value in (("score_threshold", 0.5), ("max_detections", 3)):
        response = client.post(f"/v1/models/{classifier}/predict", json={"image_b64": "aGk=", field: value})
        assert response.status_code == 422, response.text
        assert response.json()["message"].startswith(f"{field}: model {classifier} is a classification model")


def test_a_detector_still_training_cannot_predict(client: TestClient, services: Services) -> None:
    model_id = ready_detector(services)
    model = services.store.get_model("default", model_id)
    assert model is not None
    services.store.update_model(model.model_copy(update={"status": ModelStatus.TRAINING}))
    response = client.post(f"/v1/models/{model_id}/predict", files={"file": ("x.png", png())})
    assert response.status_code == 409
