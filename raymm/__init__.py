"""raymm: multimodal knowledge distillation for recommendation on Ray."""

import os

# DGL picks its tensor backend from this variable (or ~/.dgl/config.json) at import time.
os.environ.setdefault("DGLBACKEND", "pytorch")

__version__ = "0.1.0"
