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
    labels: np.ndarray,
    *,
    batch_size: int,
    shuffle_seed: int | None = None,
    augmenter: keras.Sequential | None = None,
) -> tf.data.Dataset:
    """Batches of (float32 inputs, int32 labels). `inputs` are uint8 images or cached
    float32 features; `shuffle_seed` None keeps the order (evaluation, feature extraction)."""
    dataset = tf.data.Dataset.from_tensor_slices((inputs, labels))
    if shuffle_seed is not None:
        # A full-size buffer is a true shuffle; reshuffled every epoch, reproducibly.
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    # Casting after batching is one vectorised op per batch instead of one per image.
    dataset = dataset.map(
        lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE
    )
    if augmenter is not None:
        dataset = dataset.map(
            lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)
