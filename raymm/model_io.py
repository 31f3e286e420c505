"""Loading saved models: a training checkpoint directory, a ``best_model.pt`` file, or an MLflow
model URI (``runs:/<id>/model``, ``models:/<name>@<alias>``)."""

from __future__ import annotations

import os

import torch

from raymm.models.lightgcn import LightGCN
from raymm.train.state import BEST_FILE


def load_model(ref: str, tracking_uri: str | None = None) -> LightGCN:
    """The model behind ``ref``, on the CPU, in eval mode."""
    if ref.startswith(("runs:/", "models:/")) or ("://" in ref and not ref.startswith("file://")):
        import mlflow
        import mlflow.pytorch

        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        model = mlflow.pytorch.load_model(ref, map_location="cpu")
    else:
        path = ref[len("file://"):] if ref.startswith("file://") else ref
        if os.path.isdir(path):
            path = os.path.join(path, BEST_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no saved model at {ref} (expected a checkpoint directory, {BEST_FILE}, "
                                    "or an MLflow model URI)")
        saved = torch.load(path, map_location="cpu")
        if not isinstance(saved, dict) or "hparams" not in saved or "state_dict" not in saved:
            raise ValueError(f"{path} is not a raymm model file (missing 'hparams'/'state_dict')")
        model = LightGCN(**saved["hparams"])
        model.load_state_dict(saved["state_dict"])
    return model.eval()
