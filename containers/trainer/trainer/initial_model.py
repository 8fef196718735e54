"""Fine-tuning from an earlier model (docs/job-contract.md, `initial_model`).

The channel `initial_model` holds the earlier model's `model.keras` and its
`trainyard_model.json`. The new classifier is built as usual for the dataset's classes, then
takes the earlier model's weights: the whole backbone, and, in the final Dense layer, the
column (and bias) of every class the earlier model knew. A class new to this dataset keeps
its fresh initialisation, so the class set can grow without losing what was learnt.

Only the file checks run before TensorFlow is imported: a missing or mismatched earlier
model fails the job at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobkit.errors import ConfigError

from .contract import TrainingConfig

if TYPE_CHECKING:
    from .models import Classifier

INITIAL_MODEL_CHANNEL = "initial_model"
KERAS_FILE = "model.keras"
MANIFEST_FILE = "trainyard_model.json"
OUTPUT_LAYER = "probabilities"  # models.build_classifier's final Dense layer


@dataclass(frozen=True)
class InitialModel:
    keras_file: Path
    classes: tuple[str, ...]


def read_initial_model(channel_dir: Path, config: TrainingConfig) -> InitialModel:
    """The earlier model's files, checked against this job's configuration: the same
    backbone (and alpha) and image size, since its weights must fit the new model."""
    keras_file, manifest_file = channel_dir / KERAS_FILE, channel_dir / MANIFEST_FILE
    for path in (keras_file, manifest_file):
        if not path.is_file():
            raise ConfigError(
                f"initial_model is true but channel {INITIAL_MODEL_CHANNEL} has no {path.name}"
            )
    try:
        manifest: dict[str, Any] = json.loads(manifest_file.read_text())
    except ValueError as exc:
        raise ConfigError(f"initial model's {MANIFEST_FILE} is not valid JSON: {exc}") from None
    if manifest.get("task", "classification") != "classification":
        raise ConfigError(f"initial model is a {manifest.get('task')} model, not a classifier")
    for key, wanted in (("backbone", config.backbone), ("image_size", config.image_size)):
        if manifest.get(key) != wanted:
            raise ConfigError(
                f"initial model has {key} {manifest.get(key)!r}; this job has {wanted!r}:"
                " fine-tuning keeps the earlier model's architecture"
            )
    classes = manifest.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ConfigError(f"initial model's {MANIFEST_FILE} has no list of classes")
    return InitialModel(keras_file, tuple(classes))


def apply_initial_weights(
    classifier: Classifier, initial: InitialModel, classes: tuple[str, ...]
) -> list[str]:
    """Copy the earlier model's backbone and known-class output weights into `classifier`
    (built for `classes`). Returns the classes that are new, i.e. start untrained."""
    import keras  # noqa: PLC0415 (TensorFlow only once the job has passed its checks)
    import numpy as np  # noqa: PLC0415

    earlier = keras.saving.load_model(initial.keras_file, compile=False)
    earlier_backbone = earlier.get_layer(classifier.backbone.name)
    classifier.backbone.set_weights(earlier_backbone.get_weights())

    earlier_output = earlier.get_layer("head").get_layer(OUTPUT_LAYER)
    output = classifier.head.get_layer(OUTPUT_LAYER)
    earlier_kernel, earlier_bias = earlier_output.get_weights()
    kernel, bias = output.get_weights()
    if earlier_kernel.shape[0] != kernel.shape[0]:
        raise ValueError(
            f"initial model's features have {earlier_kernel.shape[0]} values; this model's"
            f" have {kernel.shape[0]}"
        )
    earlier_index = {name: i for i, name in enumerate(initial.classes)}
    new_classes = []
    for index, name in enumerate(classes):
        if name in earlier_index:
            kernel[:, index] = earlier_kernel[:, earlier_index[name]]
            bias[index] = earlier_bias[earlier_index[name]]
        else:
            new_classes.append(name)
    output.set_weights([np.asarray(kernel), np.asarray(bias)])
    return new_classes
