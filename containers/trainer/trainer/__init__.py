"""Trainyard's TensorFlow/Keras training container (docs/job-contract.md).

Run as `python -m trainer [train]`.
"""

import os

# Before anything imports TensorFlow: keep its C++ INFO/WARNING chatter out of job logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
