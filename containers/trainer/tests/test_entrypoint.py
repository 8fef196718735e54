"""`python -m trainer` against SageMaker-style job directories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from conftest import TRAINER_ROOT, JobDir, make_job_dir

from trainer.__main__ import main
from trainer.dataset import load_dataset

E2E_HYPERPARAMETERS = {
    "job_id": "job_e2e", "backbone": "small_cnn", "epochs": 3, "image_size": 32,
    "batch_size": 16, "learning_rate": 0.003, "seed": 1, "lr_step_size": 2, "lr_gamma": 0.5,
    "validation_split": 0.25, "weights": None,
}  # fmt: skip


def run_container(job: JobDir, timeout: float = 240, **extra_env: str) -> subprocess.Popen[str]:
    # As the local launcher starts it: its own virtualenv's python, cwd the container dir,
    # a minimal environment, with the shared contract library on the path.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(job.base),
           "PYTHONPATH": str(TRAINER_ROOT.parent / "jobkit"),
           "PYTHONUNBUFFERED": "1", **job.environment(**extra_env)}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "trainer", "train"],
        cwd=TRAINER_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.mark.filterwarnings(r"ignore:\s*Warning. tf.lite.Interpreter is deprecated")
def test_end_to_end_small_cnn_job(tmp_path: Path) -> None:
    job = make_job_dir(tmp_path / "job", E2E_HYPERPARAMETERS, per_class=40, size=32, seed=0)
    process = run_container(job)
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, output
    assert not job.failure_file.exists()

    events = job.events()
    assert [e["event_id"] for e in events] == [
        "job_e2e:status:DOWNLOADING", "job_e2e:status:DOWNLOADED", "job_e2e:status:RUNNING",
        "job_e2e:epoch:1", "job_e2e:epoch:2", "job_e2e:epoch:3", "job_e2e:status:EXPORTING",
    ]  # fmt: skip
    assert all(e["schema"] == "trainyard.job-progress/1" and e["job_id"] == "job_e2e"
               for e in events)  # fmt: skip
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert [(e["epoch"], e["epochs"]) for e in epochs] == [(1, 3), (2, 3), (3, 3)]
    assert [e["lr"] for e in epochs] == pytest.approx([0.003, 0.003, 0.0015], rel=1e-6)
    for event in epochs:
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "duration_seconds"):
            assert isinstance(event[key], float), key

    files = {p.name for p in job.model_dir.iterdir()}
    assert files == {"model.keras", "model.onnx", "model.tflite", "trainyard_model.json"}
    manifest = json.loads((job.model_dir / "trainyard_model.json").read_text())
    assert manifest["schema"] == "trainyard.model/1" and manifest["task"] == "classification"
    assert manifest["classes"] == ["blue triangle", "green square", "red circle"]
    assert manifest["exports"] == {"keras": "model.keras", "onnx": "model.onnx",
                                   "tflite": "model.tflite"}  # fmt: skip
    assert manifest["backbone"] == "small_cnn" and manifest["image_size"] == 32
    assert manifest["input"] | {"name": None} == {
        "name": None, "height": 32, "width": 32, "channels": 3, "dtype": "float32",
        "layout": "NHWC", "range": [0, 255], "color": "RGB", "resize": "bilinear",
    }  # fmt: skip
    assert manifest["output"]["kind"] == "probabilities"
    assert manifest["onnx_check"]["images"] == 20
    assert manifest["onnx_check"]["max_abs_diff"] < 1e-4
    last = epochs[-1]
    assert manifest["metrics"] == {k: last[k] for k in ("loss", "val_loss", "accuracy",
                                                        "val_accuracy")}  # fmt: skip
    assert last["val_accuracy"] >= 0.8  # three shapes in three colours: an easy set

    # Check the exports independently of the container's own check, on every validation
    # image, decoded the way the service decodes them.
    dataset = load_dataset(job.channel, image_size=32, validation_split=0.25, seed=1)
    assert dataset.validation is not None
    images = dataset.validation.images.astype(np.float32)
    session = onnxruntime.InferenceSession(str(job.model_dir / "model.onnx"))
    assert session.get_inputs()[0].name == manifest["input"]["name"]
    assert session.get_outputs()[0].name == manifest["output"]["name"]
    onnx_probabilities = session.run(None, {manifest["input"]["name"]: images})[0]

    import keras  # noqa: PLC0415 - TensorFlow only for the tests that need it
    import tensorflow as tf  # noqa: PLC0415

    keras_model = keras.saving.load_model(job.model_dir / "model.keras")
    keras_probabilities = keras_model.predict(images, verbose=0)
    assert np.abs(onnx_probabilities - keras_probabilities).max() < 1e-4
    accuracy = float(np.mean(onnx_probabilities.argmax(axis=1) == dataset.validation.labels))
    assert accuracy == pytest.approx(last["val_accuracy"], abs=1e-6)

    interpreter = tf.lite.Interpreter(str(job.model_dir / "model.tflite"))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images[:1])
    interpreter.invoke()
    tflite_probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert np.abs(tflite_probabilities - keras_probabilities[:1]).max() < 1e-4


def _run_main(job: JobDir, **extra_env: str) -> int:
    return main(["train"], job.environment(**extra_env))


def test_imagenet_weights_missing_fails_with_the_file_named(tmp_path: Path) -> None:
    job = make_job_dir(
        tmp_path / "job",
        {"job_id": "job_w", "backbone": "mobilenet_v2", "weights": "imagenet", "image_size": 96},
        per_class=2,
    )
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    assert _run_main(job, TRAINYARD_WEIGHTS_DIR=str(weights_dir)) == 1

    reason = job.failure_file.read_text().splitlines()[0]
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in reason
    assert f"TRAINYARD_WEIGHTS_DIR={weights_dir}" in reason
    events = job.events()
    assert [e["event_id"] for e in events] == ["job_w:status:DOWNLOADING", "job_w:failed"]
    assert events[-1]["kind"] == "failed" and events[-1]["error"] == reason
    assert not (job.model_dir / "trainyard_model.json").exists()


def test_an_out_of_bounds_hyperparameter_fails_the_job(tmp_path: Path) -> None:
    job = make_job_dir(tmp_path / "job", {"job_id": "job_b", "epochs": 0}, per_class=2)
    job.failure_file.parent.mkdir(parents=True)
    job.failure_file.write_text("stale reason from an earlier attempt\n")
    assert _run_main(job) == 1
    reason = job.failure_file.read_text().strip()
    assert reason == "hyperparameter epochs=0 is out of bounds: must be in [1, 500]"
    assert [(e["event_id"], e["error"]) for e in job.events()] == [("job_b:failed", reason)]


def test_without_a_job_id_only_the_failure_file_reports(tmp_path: Path) -> None:
    job = make_job_dir(tmp_path / "job", {"epochs": 1}, per_class=2)
    assert _run_main(job) == 1
    assert job.failure_file.read_text().strip() == "hyperparameter job_id is required"
    assert job.events() == []


def test_an_undecodable_image_fails_the_job_naming_it(tmp_path: Path) -> None:
    job = make_job_dir(tmp_path / "job", {"job_id": "job_d", "image_size": 32}, per_class=3)
    (job.channel / "class_2" / "0001.png").write_bytes(b"\x89PNG truncated")
    assert _run_main(job) == 1
    reason = job.failure_file.read_text().strip()
    assert reason.startswith("cannot decode image 'class_2/0001.png'")
    assert job.events()[-1]["error"] == reason


def test_an_unknown_task_fails_the_job_naming_the_tasks(tmp_path: Path) -> None:
    job = make_job_dir(tmp_path / "job", {"job_id": "j", "task": "segmentation"}, per_class=2)
    assert _run_main(job) == 1
    assert job.failure_file.read_text().startswith(
        "hyperparameter task='segmentation' is not supported by this container "
        "(classification, detection, tag or embedder)"
    )


def test_unexpected_arguments_are_refused(tmp_path: Path) -> None:
    assert main(["serve"], {"SAGEMAKER_BASE_DIR": str(tmp_path)}) == 2


def test_sigterm_stops_a_running_job_promptly(tmp_path: Path) -> None:
    job = make_job_dir(
        tmp_path / "job",
        {**E2E_HYPERPARAMETERS, "job_id": "job_cancel", "epochs": 500},
        per_class=40,
        size=32,
    )
    process = run_container(job)
    deadline = time.monotonic() + 120
    while not any(e["kind"] == "epoch" for e in job.events()):
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no epoch event within 120 s"
        time.sleep(0.2)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGTERM
    assert time.monotonic() - signalled < 10
    assert not job.failure_file.exists()  # a killed job has no failure file
    assert not (job.model_dir / "trainyard_model.json").exists()
