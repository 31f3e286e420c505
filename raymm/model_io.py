"""Loading saved models: a training checkpoint directory, a ``best_model.pt`` file (student, LightGCN
or PromptMM teacher), or an MLflow model URI (``runs:/<id>/model``, ``models:/<name>@<alias>``)."""

from __future__ import annotations

import os
import tempfile

import torch
from torch import nn

from raymm.errors import ModelMismatchError
from raymm.models.lightgcn import LightGCN
from raymm.models.promptmm import PromptMMTeacher
from raymm.storage import is_dir, is_uri, local_checkpoint
from raymm.train.state import BEST_FILE


def load_payload(path: str) -> dict:
    """A saved ``best_model.pt`` payload (``kind``, ``hparams``, ``state_dict`` ...) from a file or a
    checkpoint directory, local or at a URI (``s3://...``)."""
    if is_uri(path):
        if is_dir(path):
            with local_checkpoint(path) as d:
                return load_payload(d)
        import pyarrow.fs as pafs

        with tempfile.TemporaryDirectory() as d:
            local = os.path.join(d, BEST_FILE)
            pafs.copy_files(path, local)
            return load_payload(local)
    path = path[len("file://"):] if path.startswith("file://") else path
    if os.path.isdir(path):
        path = os.path.join(path, BEST_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no saved model at {path} (expected a checkpoint directory, {BEST_FILE}, "
                                "or an MLflow model URI)")
    try:  # tensors and plain containers only: a model file is never unpickled into arbitrary objects
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several types for a file that is not a plain tensor dict
        raise ModelMismatchError(f"{path} is not a raymm model file ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(saved, dict) or "hparams" not in saved or "state_dict" not in saved:
        raise ModelMismatchError(f"{path} is not a raymm model file (missing 'hparams'/'state_dict')")
    return saved


def load_model(ref: str, tracking_uri: str | None = None, features: dict | None = None) -> nn.Module:
    """The model behind ``ref``, in eval mode on the CPU; ``model.normalization`` names the
    adjacency normalisation it was trained with.

    A PromptMM teacher needs the dataset's modality ``features`` to be rebuilt.
    """
    if ref.startswith(("runs:/", "models:/", "mlflow-artifacts:/")):
        import mlflow
        import mlflow.pytorch

        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        model = mlflow.pytorch.load_model(ref, map_location="cpu")
        return model.eval()
    saved = load_payload(ref)
    if saved.get("kind") == "promptmm_teacher":
        if features is None:
            raise ModelMismatchError(f"{ref} is a PromptMM teacher: its dataset's modality features are needed to run it")
        model = PromptMMTeacher.from_payload(saved, features)
    else:
        model = LightGCN(**saved["hparams"])
        model.load_state_dict(saved["state_dict"])
    return model.eval()
