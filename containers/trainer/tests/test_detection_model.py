"""The detector with TensorFlow: anchor decoding in the export graph against keras-hub's own
decoding, head initialisation, loading a baked keras-hub preset, and a short job through the
entrypoint with every export checked independently (ONNX Runtime, model.keras, TFLite)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import keras_hub
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from conftest import encode_hyperparameters

from trainer.__main__ import main
from trainer.detection.contract import DetectionConfig, parse_detection_config
from trainer.detection.dataset import load_detection_dataset
from trainer.detection.model import (
    BOX_FORMAT,
    anchor_count,
    build_detector,
    build_encoder,
    build_export_model,
)
from trainer.detection.synthetic import write_detection_channel
from trainer.detection.train import detect, initialise_head_biases

SIZE = 64


def assert_boxes_close(actual: object, expected: object) -> None:
    """Within 0.1% of the box's largest coordinate (or of the image for small ones): a barely
    trained detector proposes boxes 100,000 px wide, where float32 rounding is that large."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = np.maximum(np.abs(expected).max(axis=-1, keepdims=True), SIZE)
    relative = np.abs(actual - expected) / scale
    assert np.all(relative <= 1e-3), relative.max()


@pytest.fixture(scope="module")
def detector() -> keras_hub.models.RetinaNetObjectDetector:
    keras.utils.set_random_seed(0)
    return build_detector(parse_detection_config({"job_id": "j", "image_size": SIZE}), 3)


def test_export_model_decodes_anchors_as_keras_hub_does(
    detector: keras_hub.models.RetinaNetObjectDetector,
) -> None:
    images = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    exported = build_export_model(detector, SIZE)(images)
    heads = detector(images / 255.0)
    anchors = detector.anchor_generator(images)
    reference = keras.utils.bounding_boxes.decode_deltas_to_boxes(
        anchors=keras.ops.concatenate(list(anchors.values()), axis=0),
        boxes_delta=heads["bbox_regression"],
        anchor_format=BOX_FORMAT,
        box_format=BOX_FORMAT,
        encoded_format="center_xywh",
        image_shape=(SIZE, SIZE, 3),
    )
    np.testing.assert_allclose(exported["boxes"], reference, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(
        exported["scores"], keras.ops.sigmoid(heads["cls_logits"]), atol=1e-5
    )
    assert exported["boxes"].shape == (2, anchor_count(SIZE), 4)
    assert exported["scores"].shape == (2, anchor_count(SIZE), 3)


def test_heads_start_at_the_prior_probability_with_boxes_on_their_anchors(
    detector: keras_hub.models.RetinaNetObjectDetector,
) -> None:
    initialise_head_biases(detector)
    box_bias = keras.ops.convert_to_numpy(detector.box_head.prediction_layer.bias)
    class_bias = keras.ops.convert_to_numpy(detector.classification_head.prediction_layer.bias)
    assert np.all(box_bias == 0.0)
    assert np.allclose(1 / (1 + np.exp(-class_bias)), 0.01)


def test_imagenet_weights_load_from_a_baked_preset_directory(tmp_path: Path) -> None:
    # What the Docker build bakes: a keras-hub preset saved to disk (here made from config,
    # since nothing may be downloaded); the job loads it without any network.
    config = DetectionConfig(job_id="j", backbone="resnet18", weights="imagenet", image_size=SIZE)
    keras.utils.set_random_seed(1)
    baked = build_encoder(config, None)
    baked.save_to_preset(str(tmp_path / "resnet_18_imagenet"))
    loaded = build_encoder(config, tmp_path / "resnet_18_imagenet")
    for expected, actual in zip(baked.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(expected),
                                      keras.ops.convert_to_numpy(actual))  # fmt: skip


@pytest.mark.filterwarnings(r"ignore:\s*Warning. tf.lite.Interpreter is deprecated")
def test_a_short_detection_job_writes_checked_exports(tmp_path: Path) -> None:
    base = tmp_path / "job"
    channel = base / "input" / "data" / "training"
    write_detection_channel(channel, images=24, size=SIZE, val_fraction=0.25, seed=0)
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(
        encode_hyperparameters({"job_id": "det", "task": "detection", "epochs": 2,
                                "image_size": SIZE, "batch_size": 8, "seed": 0,
                                "lr_step_size": 1, "lr_gamma": 0.5})))  # fmt: skip
    events_file = base / "events.jsonl"
    code = main(["train"], {"SAGEMAKER_BASE_DIR": str(base),
                            "TRAINYARD_EVENTS_FILE": str(events_file)})  # fmt: skip
    assert code == 0, (base / "output" / "failure").read_text()

    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert [e["lr"] for e in epochs] == pytest.approx([0.001, 0.0005])
    for event in epochs:
        for key in ("loss", "val_loss", "val_map_50", "val_map_50_95"):
            assert isinstance(event[key], float), key
        assert 0.0 <= event["val_map_50_95"] <= event["val_map_50"] <= 1.0

    model_dir = base / "model"
    manifest = json.loads((model_dir / "trainyard_model.json").read_text())
    assert {p.name for p in model_dir.iterdir()} == {
        "model.keras", "model.onnx", "model.tflite", "trainyard_model.json"}  # fmt: skip
    assert manifest["task"] == "detection"
    assert manifest["classes"] == ["red circle", "green square", "blue triangle"]
    assert manifest["input"]["name"] == "images" and manifest["input"]["height"] == SIZE
    assert manifest["output"] == {"kind": "boxes", "boxes": "boxes", "scores": "scores",
                                  "box_format": "xyxy", "coordinates": "input_pixels"}  # fmt: skip
    assert manifest["postprocess"] == {"nms_iou_threshold": 0.5, "score_threshold": 0.5,
                                       "max_detections": 100}  # fmt: skip
    last = epochs[-1]
    assert manifest["metrics"] == {k: last[k] for k in ("loss", "val_loss", "val_map_50",
                                                        "val_map_50_95")}  # fmt: skip

    check_exports_independently(model_dir, channel)


def check_exports_independently(model_dir: Path, channel: Path) -> None:
    """ONNX Runtime, the saved keras-hub detector and TFLite on the validation images,
    independently of the container's own check."""
    dataset = load_detection_dataset(channel, SIZE, 0.25, 0)
    assert dataset.validation is not None
    images = dataset.validation.images.astype(np.float32)
    session = onnxruntime.InferenceSession(str(model_dir / "model.onnx"))
    onnx_boxes, onnx_scores = session.run(["boxes", "scores"], {"images": images})
    assert onnx_boxes.shape == (len(images), anchor_count(SIZE), 4)

    detector = keras.saving.load_model(model_dir / "model.keras")
    assert isinstance(detector, keras_hub.models.RetinaNetObjectDetector)
    reloaded_export = build_export_model(detector, SIZE)
    keras_outputs = reloaded_export(images)
    np.testing.assert_allclose(onnx_scores, keras_outputs["scores"], atol=1e-4)
    assert_boxes_close(onnx_boxes, keras_outputs["boxes"])
    # model.keras decodes and suppresses with its own layers and finds what the export model
    # plus NMS finds. (keras-hub 0.32's predict() and predict_on_batch() fail on RetinaNet:
    # its NMS needs a static batch size and its predict_step unpacks (x,) as (x, y); an eager
    # call to decode_predictions works, as docs/job-contract.md says.)
    scaled = images / 255.0
    predicted = {k: keras.ops.convert_to_numpy(v) for k, v in
                 detector.decode_predictions(detector(scaled), scaled).items()}  # fmt: skip
    expected = detect(reloaded_export, images, score_threshold=0.5)
    for i, found in enumerate(expected):
        count = int(predicted["num_detections"][i])
        assert count == len(found.boxes)
        assert count > 0
        # Same boxes; the order of near-equal scores may differ (an untrained model has many),
        # and boxes whose size delta exceeds the export's clamp (exp(10), hundreds of
        # thousands of pixels here) differ by design.
        for box in predicted["boxes"][i][:count]:
            if np.abs(box).max() > 1000 * SIZE:
                continue
            scale = np.maximum(np.abs(found.boxes).max(axis=-1), SIZE)
            assert (np.abs(found.boxes - box).max(axis=-1) / scale).min() <= 1e-3

    interpreter = tf.lite.Interpreter(str(model_dir / "model.tflite"))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images[:1])
    interpreter.invoke()
    outputs = {d["name"]: interpreter.get_tensor(d["index"])
               for d in interpreter.get_output_details()}  # fmt: skip
    tflite_scores = next(v for v in outputs.values() if v.shape[-1] == 3)
    np.testing.assert_allclose(tflite_scores, onnx_scores[:1], atol=1e-4)
