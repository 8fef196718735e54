"""Prediction with ONNX Runtime on the model's ONNX export, in the API process.

TensorFlow is never imported here. Sessions are kept in a small LRU cache: loading one costs
far more than running it. Preprocessing follows the model's manifest (docs/job-contract.md):
RGB, bilinear resize to the model's input size, float32 pixels in [0, 255]; normalisation is
inside the model. A classifier answers probabilities; a detector boxes and per-class scores,
which detection.py turns into detections.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..domain import Model, ModelStatus
from ..errors import Conflict
from ..ports import BlobStore
from .detection import DEFAULT_NMS_IOU_THRESHOLD, postprocess
from .images import open_checked_image
from .jobs import model_prefix

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image as PILImage

# numpy, Pillow and onnxruntime are imported where they are used, not at module import: the
# API's Lambda cold start should not pay for them until a prediction needs them.


def preprocess(image: PILImage.Image, height: int, width: int) -> np.ndarray:
    import numpy as np
    from PIL import Image as PILImage

    rgb = image.convert("RGB").resize((width, height), PILImage.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.float32)[None, ...]


class Predictor:
    def __init__(self, blobs: BlobStore, cache_size: int, max_image_pixels: int) -> None:
        self._blobs = blobs
        self._cache_size = cache_size
        self._max_pixels = max_image_pixels
        self._sessions: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def _session(self, model: Model) -> Any:
        with self._lock:
            if model.id in self._sessions:
                self._sessions.move_to_end(model.id)
                return self._sessions[model.id]
        import onnxruntime  # imported on first use: keeps the Lambda cold start short

        path = self._blobs.local_path(
            model_prefix(model.tenant_id, model.id) + model.manifest["exports"]["onnx"]
        )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # requests run in parallel threads already
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        with self._lock:
            self._sessions[model.id] = session
            while len(self._sessions) > self._cache_size:
                self._sessions.popitem(last=False)
        return session

    def evict(self, model_id: str) -> None:
        with self._lock:
            self._sessions.pop(model_id, None)

    def _run(
        self, model: Model, image: bytes, outputs: list[str]
    ) -> tuple[list[np.ndarray], tuple[int, int]]:
        """The model's named outputs for one image, and the image's (width, height)."""
        if model.status is not ModelStatus.READY:
            raise Conflict(f"model {model.id} is not ready (status {model.status.value})")
        decoded = open_checked_image(image, "image", self._max_pixels)  # checked and decoded once
        spec = model.manifest["input"]
        batch = preprocess(decoded, int(spec["height"]), int(spec["width"]))
        return list(self._session(model).run(outputs, {spec["name"]: batch})), decoded.size

    def probabilities(self, model: Model, image: bytes) -> np.ndarray:
        import numpy as np

        (output,), _ = self._run(model, image, [model.manifest["output"]["name"]])
        return np.asarray(output[0], dtype=np.float64)

    def predict(self, model: Model, image: bytes, top_k: int) -> list[dict[str, Any]]:
        import numpy as np

        scores = self.probabilities(model, image)
        order = np.argsort(-scores)[:top_k]
        return [{"label": model.classes[i], "score": float(scores[i])} for i in order]

    def detect(
        self, model: Model, image: bytes, score_threshold: float, max_detections: int
    ) -> dict[str, Any]:
        """A detector's boxes on one image, in its original pixels, best first."""
        output, spec = model.manifest["output"], model.manifest["input"]
        (boxes, scores), (width, height) = self._run(model, image, [output["boxes"], output["scores"]])
        found = postprocess(
            boxes[0],
            scores[0],
            iou_threshold=float(
                model.manifest.get("postprocess", {}).get("nms_iou_threshold", DEFAULT_NMS_IOU_THRESHOLD)
            ),
            score_threshold=score_threshold,
            max_detections=max_detections,
            input_size=(int(spec["width"]), int(spec["height"])),
            image_size=(width, height),
        )
        return {"width": width, "height": height, "boxes": [d.public(model.classes) for d in found]}
