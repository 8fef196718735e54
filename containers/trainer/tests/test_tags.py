"""Seed 003's trainer tasks: a tag's logistic regression (numpy only) and the embedder export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from conftest import encode_hyperparameters

from jobkit.errors import DataError
from trainer.__main__ import main
from trainer.tags import fit_tag, load_examples


def job_dir(base: Path, hyperparameters: dict[str, object]) -> dict[str, str]:
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps(encode_hyperparameters(hyperparameters))
    )
    (base / "input" / "data" / "training").mkdir(parents=True)
    return {
        "SAGEMAKER_BASE_DIR": str(base),
        "SM_MODEL_DIR": str(base / "model"),
        "TRAINYARD_EVENTS_FILE": str(base / "events.jsonl"),
    }


def write_examples(channel: Path, features: np.ndarray, labels: np.ndarray) -> None:
    (channel / "embeddings").mkdir(exist_ok=True)
    examples = []
    for index, (row, label) in enumerate(zip(features, labels, strict=True)):
        np.save(channel / "embeddings" / f"{index}.npy", row.astype(np.float32))
        examples.append({"path": f"embeddings/{index}.npy", "label": int(label)})
    (channel / "examples.json").write_text(
        json.dumps({"tag": "dog", "embedder": "fp", "examples": examples})
    )


def separable(rng: np.random.Generator, n: int, d: int = 50) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(n) % 2
    features = rng.normal(0, 1, (n, d)) + np.outer(labels * 2 - 1, np.eye(d)[0]) * 2.0
    return features, labels.astype(float)


def test_fit_generalises_and_balances_classes() -> None:
    rng = np.random.default_rng(0)
    features, labels = separable(rng, 40, d=10)
    model = fit_tag(features, labels, 0.01, 500)
    test_features, test_labels = separable(rng, 400, d=10)
    accuracy = np.mean((model.scores(test_features) >= 0.5) == (test_labels > 0))
    assert accuracy >= 0.9
    # 5 positives against 35 negatives: balancing keeps positives from being drowned out
    skewed = np.r_[np.ones(5), np.zeros(35)]
    shifted = rng.normal(0, 1, (40, 5)) + np.outer(skewed, np.ones(5)) * 1.5
    assert np.mean(fit_tag(shifted, skewed, 0.01, 500).scores(shifted[:5]) >= 0.5) >= 0.8


def test_examples_are_refused_when_unusable(tmp_path: Path) -> None:
    write_examples(tmp_path, np.ones((2, 3)), np.array([1, 1]))
    with pytest.raises(DataError, match="only one kind"):
        load_examples(tmp_path)
    document = json.loads((tmp_path / "examples.json").read_text())
    document["examples"][0]["path"] = "../../outside.npy"
    (tmp_path / "examples.json").write_text(json.dumps(document))
    with pytest.raises(DataError, match="outside the channel"):
        load_examples(tmp_path)
    (tmp_path / "embeddings" / "1.npy").write_bytes(b"garbage")
    document["examples"][0]["path"] = "embeddings/1.npy"
    (tmp_path / "examples.json").write_text(json.dumps(document))
    with pytest.raises(DataError, match="unreadable"):
        load_examples(tmp_path)


def test_tag_job_writes_weights_and_events(tmp_path: Path) -> None:
    environ = job_dir(tmp_path, {"job_id": "job_t", "task": "tag"})
    features, labels = separable(np.random.default_rng(1), 30)
    write_examples(tmp_path / "input" / "data" / "training", features, labels)
    assert main(["train"], environ) == 0
    model = json.loads((tmp_path / "model" / "tag_model.json").read_text())
    manifest = json.loads((tmp_path / "model" / "trainyard_model.json").read_text())
    assert manifest["classes"] == ["dog"] and manifest["exports"] == {"tag": "tag_model.json"}
    assert model["embedder"] == "fp" and len(model["weights"]) == 50
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["status"] for e in events if e["kind"] == "status"] == [
        "DOWNLOADING",
        "DOWNLOADED",
        "RUNNING",
        "EXPORTING",
    ]
    assert next(e for e in events if e["kind"] == "epoch")["accuracy"] >= 0.9


def test_fallback_embedder_exports_a_checked_onnx(tmp_path: Path) -> None:
    environ = job_dir(tmp_path, {"job_id": "job_e", "task": "embedder", "seed": 0})
    assert main(["train"], environ) == 0
    manifest = json.loads((tmp_path / "model" / "trainyard_model.json").read_text())
    assert manifest["embedder"] == "random_conv" and manifest["base_model"] is None
    assert manifest["classes"] == [] and manifest["onnx_check"]["max_abs_diff"] < 1e-3
    session = onnxruntime.InferenceSession(str(tmp_path / "model" / "model.onnx"))
    images = np.random.default_rng(0).uniform(0, 255, (2, 128, 128, 3)).astype(np.float32)
    (embedding,) = session.run([manifest["output"]["name"]], {"image": images})
    assert embedding.shape == (2, manifest["output"]["dimension"])
    # features keep a usable scale through the random stages (they do not vanish)
    assert np.all(np.isfinite(embedding)) and embedding.std() > 1e-3
