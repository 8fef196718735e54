"""Seed 003's custom tags, trainer side (`task=tag`): one tag's one-vs-rest classifier, a
logistic regression fitted on the frozen embedder's embeddings of the tag's positive and
negative images.

The service embeds each image once (with the embedder this container exported, see
embedder.py) and puts the embeddings in the training channel as .npy files, with
`examples.json`:

    {"tag": "dog", "embedder": "<embedder job id>",
     "examples": [{"path": "embeddings/<image id>.npy", "label": 1}, ...]}

The fit is numpy only (no TensorFlow import): standardise each embedding dimension over the
examples, then minimise the class-balanced mean log loss + l2/2 ||w||^2 with Nesterov's
accelerated gradient. It takes well under a second for hundreds of examples, so a tag is
retrained from all its examples each time (the seed's fine-tuning loop: add examples, train
again).

Outputs: tag_model.json (what the service scores images with) and trainyard_model.json.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jobkit.errors import DataError
from jobkit.events import ProgressEmitter, Status
from jobkit.hyperparameters import integer, number, reject_unknown, string
from jobkit.paths import JobPaths

log = logging.getLogger(__name__)

EXAMPLES_FILE = "examples.json"
TAG_MODEL_FILE = "tag_model.json"
MODEL_MANIFEST = "trainyard_model.json"
TAG_SCHEMA = "trainyard.tag/1"
MAX_EXAMPLES = 100_000


@dataclass(frozen=True)
class TagConfig:
    job_id: str
    l2: float = 0.01  # on standardised features; keeps separable data from running off
    max_iterations: int = 500


def parse_tag_config(values: Mapping[str, Any]) -> TagConfig:
    reject_unknown(values, ("job_id", "task", "l2", "max_iterations"))
    return TagConfig(
        job_id=string(values, "job_id"),
        l2=number(values, "l2", TagConfig.l2, above=0.0, maximum=100.0),
        max_iterations=integer(
            values, "max_iterations", TagConfig.max_iterations, minimum=1, maximum=10_000
        ),
    )


@dataclass(frozen=True)
class TagExamples:
    tag: str
    embedder: str
    features: np.ndarray  # (n, d) float64
    labels: np.ndarray  # (n,) 0.0 or 1.0


def load_examples(channel: Path) -> TagExamples:
    try:
        document = json.loads((channel / EXAMPLES_FILE).read_text())
        tag, embedder, examples = document["tag"], document["embedder"], document["examples"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{EXAMPLES_FILE} is missing or malformed: {exc}") from exc
    if not isinstance(examples, list) or not 0 < len(examples) <= MAX_EXAMPLES:
        raise DataError(f"{EXAMPLES_FILE}: examples must be a list of 1..{MAX_EXAMPLES} items")
    rows, labels = [], []
    root = channel.resolve()
    for example in examples:
        path = (channel / str(example["path"])).resolve()
        if not path.is_relative_to(root):
            raise DataError(f"{EXAMPLES_FILE}: {example['path']!r} is outside the channel")
        try:
            vector = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"embedding {example['path']} is unreadable: {exc}") from exc
        if vector.ndim != 1 or not np.isfinite(vector).all():
            raise DataError(f"embedding {example['path']} must be a finite vector")
        rows.append(vector.astype(np.float64))
        labels.append(1.0 if example["label"] else 0.0)
    if len({row.shape for row in rows}) != 1:
        raise DataError("embeddings differ in length: they come from different embedders")
    target = np.asarray(labels)
    if target.min() == target.max():
        raise DataError(f"tag {tag!r} needs positive and negative examples; it has only one kind")
    return TagExamples(str(tag), str(embedder), np.stack(rows), target)


@dataclass(frozen=True)
class TagModel:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def scores(self, features: np.ndarray) -> np.ndarray:
        logits = ((features - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))


def fit_tag(features: np.ndarray, labels: np.ndarray, l2: float, max_iterations: int) -> TagModel:
    """Class-balanced, L2-regularised logistic regression (the bias is not regularised)."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0)  # a constant dimension carries nothing
    x = (features - mean) / scale
    n, d = x.shape
    positives = labels.sum()
    # each class weighs half of the loss, however many examples it has
    sample_weight = np.where(labels > 0, n / (2 * positives), n / (2 * (n - positives))) / n
    # the gradient's Lipschitz constant: 1/4 of the largest weighted Gram eigenvalue, + l2
    xb = np.hstack([x, np.ones((n, 1))])
    lipschitz = 0.25 * float(np.linalg.norm(xb * np.sqrt(sample_weight)[:, None], ord=2) ** 2) + l2
    step = 1.0 / lipschitz
    theta = np.zeros(d + 1)
    previous = theta.copy()
    penalty = np.append(np.full(d, l2), 0.0)
    for iteration in range(1, max_iterations + 1):
        look_ahead = theta + (iteration - 1) / (iteration + 2) * (theta - previous)
        probabilities = 1.0 / (1.0 + np.exp(-np.clip(xb @ look_ahead, -60.0, 60.0)))
        gradient = xb.T @ (sample_weight * (probabilities - labels)) + penalty * look_ahead
        previous, theta = theta, look_ahead - step * gradient
        if float(np.linalg.norm(gradient)) < 1e-6:
            break
    return TagModel(mean, scale, theta[:d], float(theta[d]))


def log_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    clipped = np.clip(scores, 1e-12, 1 - 1e-12)
    return float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))


def run_tag_job(
    values: Mapping[str, Any], paths: JobPaths, emitter: ProgressEmitter, environ: Mapping[str, str]
) -> None:
    del environ  # nothing of the environment matters to a tag fit
    config = parse_tag_config(values)
    emitter.status(Status.DOWNLOADING)
    channel = paths.channel("training")
    examples = load_examples(channel)
    positives = int(examples.labels.sum())
    negatives = len(examples.labels) - positives
    emitter.status(
        Status.DOWNLOADED, message=f"tag {examples.tag}: {positives} positive, {negatives} negative"
    )
    emitter.status(Status.RUNNING, message="fitting a logistic regression on the embeddings")
    started = time.perf_counter()
    model = fit_tag(examples.features, examples.labels, config.l2, config.max_iterations)
    scores = model.scores(examples.features)
    loss = log_loss(scores, examples.labels)
    accuracy = float(np.mean((scores >= 0.5) == (examples.labels > 0)))
    duration = time.perf_counter() - started
    if not math.isfinite(loss):
        raise DataError("the fit diverged (non-finite loss)")
    emitter.epoch(
        epoch=1,
        epochs=1,
        loss=loss,
        val_loss=None,
        lr=None,
        duration_seconds=duration,
        accuracy=accuracy,
    )
    emitter.status(Status.EXPORTING, message=TAG_MODEL_FILE)
    metrics = {"loss": loss, "accuracy": accuracy, "positives": positives, "negatives": negatives}
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    (paths.model_dir / MODEL_MANIFEST).unlink(missing_ok=True)
    (paths.model_dir / TAG_MODEL_FILE).write_text(
        json.dumps(
            {
                "schema": TAG_SCHEMA,
                "tag": examples.tag,
                "embedder": examples.embedder,
                "dimension": int(examples.features.shape[1]),
                "mean": model.mean.tolist(),
                "scale": model.scale.tolist(),
                "weights": model.weights.tolist(),
                "bias": model.bias,
                "metrics": metrics,
                "fit_seconds": duration,
            }
        )
    )
    # written last: its presence marks the model dir complete
    (paths.model_dir / MODEL_MANIFEST).write_text(
        json.dumps(
            {
                "schema": "trainyard.model/1",
                "task": "tag",
                "classes": [examples.tag],
                "exports": {"tag": TAG_MODEL_FILE},
                "metrics": {"loss": loss, "accuracy": accuracy},
            }
        )
    )
    log.info(
        "tag %s fitted in %.3f s: loss %.4f, accuracy %.3f", examples.tag, duration, loss, accuracy
    )
