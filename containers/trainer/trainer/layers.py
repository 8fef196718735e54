"""Custom Keras layers used inside exported models.

Registered as serializable so model.keras reloads with `import trainer.layers` and no Lambda
(Lambda layers hold Python bytecode: they are unsafe to load and break across versions).
"""

from __future__ import annotations

from typing import Any

import keras

# keras.applications.imagenet_utils "caffe" mode: ImageNet channel means, in BGR order.
IMAGENET_BGR_MEANS = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="trainyard")
class CaffeImagenetPreprocessing(keras.layers.Layer):
    """RGB pixels 0..255 → BGR minus the ImageNet channel means.

    This is `keras.applications.resnet50.preprocess_input` (and vgg16's) as a layer, so the
    normalisation travels inside the model and the exported ONNX takes plain RGB pixels.
    The channel swap is a gather (ONNX Gather), which every runtime supports.
    """

    def call(self, inputs: Any) -> Any:
        bgr = keras.ops.take(inputs, [2, 1, 0], axis=-1)
        means = keras.ops.convert_to_tensor(IMAGENET_BGR_MEANS, dtype=self.compute_dtype)
        return bgr - means

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape
