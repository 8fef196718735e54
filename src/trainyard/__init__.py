"""Trainyard: train and serve custom vision models on demand.

The core package holds the domain, the ports, the use cases (services), the adapters and
the composition root. It depends on pydantic, the standard library, Pillow, numpy and
ONNX Runtime only; TensorFlow, torch and sleap live in the containers.
"""

__version__ = "0.1.0"
