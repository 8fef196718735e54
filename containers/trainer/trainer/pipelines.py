"""tf.data input pipelines: batch, seeded shuffle, float32 cast, optional augmentation."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

# "Small" augmentations, per the contract: mirror images, rotate up to ±18° (0.05 of a
# turn) and zoom up to ±10%. Reflect-filling keeps the borders free of black wedges.
ROTATION_FACTOR = 0.05
ZOOM_FACTOR = 0.1


def make_augmenter(seed: int) -> keras.Sequential:
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(ROTATION_FACTOR, fill_mode="reflect", seed=seed + 1),
            keras.layers.RandomZoom(ZOOM_FACTOR, fill_mode="reflect", seed=seed + 2),
        ],
        name="augmentation",
    )


def make_pipeline(
    inputs: np.ndarray,
    labels: np.ndarray | None,
    *,
    batch_size: int,
    shuffle_seed: int | None = None,
    augmenter: keras.Sequential | None = None,
) -> tf.data.Dataset:
    """Batches of float32 inputs, paired with int32 labels unless `labels` is None.

    `inputs` are uint8 images or cached float32 features; `shuffle_seed` None keeps the
    order (evaluation, feature extraction).
    """
    elements = inputs if labels is None else (inputs, labels)
    dataset = tf.data.Dataset.from_tensor_slices(elements)
    if shuffle_seed is not None:
        # A full-size buffer is a true shuffle; reshuffled every epoch, reproducibly.
        dataset = dataset.shuffle(len(inputs), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def to_model_input(batch: tf.Tensor) -> tf.Tensor:
        # Casting whole batches is one vectorised op per batch instead of one per image.
        batch = tf.cast(batch, tf.float32)
        return augmenter(batch, training=True) if augmenter is not None else batch

    if labels is None:
        dataset = dataset.map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(
            lambda x, y: (to_model_input(x), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)
