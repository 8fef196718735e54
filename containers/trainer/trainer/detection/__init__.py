"""Object detection (task=detection): keras-hub's RetinaNet, trained on the `training`
channel's annotations.json and exported with its anchor decoding inside the graph."""
