"""Loading saved models: a training checkpoint directory, a ``best_model.pt`` payload file (any
registered kind, see :mod:`raymm.models.registry`), an MLflow artifact URI of such a file, or the
served MLflow model (``runs:/<id>/model``, ``models:/<name>@<alias>``: the pyfunc recommender of
:mod:`raymm.serving`, which every job logs)."""

from __future__ import annotations

import os
import tempfile

import torch

from raymm.errors import ModelMismatchError
from raymm.storage import is_dir, is_uri, local_checkpoint
from raymm.train.state import BEST_FILE

MLFLOW_PREFIXES = ("runs:/", "models:/", "mlflow-artifacts:")


def load_payload(path: str, tracking_uri: str | None = None) -> dict:
    """A saved ``best_model.pt`` payload (``kind``, ``version``, ``hparams``, ``state_dict`` ...)
    from a file or a checkpoint directory, local, at a URI (``s3://...``) or an MLflow artifact URI."""
    if path.startswith(MLFLOW_PREFIXES):
        import mlflow.artifacts

        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=path, tracking_uri=tracking_uri)
        except Exception as e:  # noqa: BLE001 - MLflow raises several types for a missing artifact
            raise ModelMismatchError(f"{path}: cannot download it from MLflow ({type(e).__name__}: "
                                     f"{str(e).splitlines()[0][:200]})") from None
        return load_payload(local)
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


def is_served_model(ref: str) -> bool:
    """True for an MLflow model URI (the pyfunc recommender), False for a payload or checkpoint."""
    if ref.startswith("models:/"):
        return True
    return ref.startswith("runs:/") and not ref.rstrip("/").endswith(".pt")


def load_served(ref: str, tracking_uri: str | None = None):
    """The served raymm recommender behind an MLflow model URI: a :class:`raymm.serving.RecommenderModel`
    (graph family) or a :class:`raymm.serving.SequentialRecommenderModel`."""
    import mlflow.pyfunc

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(ref)
    except Exception as e:  # noqa: BLE001 - MLflow raises several types for a missing model
        raise ModelMismatchError(f"{ref}: cannot load it from MLflow ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0][:200]})") from None
    from raymm.serving import RecommenderModel, SequentialRecommenderModel

    inner = model.unwrap_python_model()
    if not isinstance(inner, (RecommenderModel, SequentialRecommenderModel)):
        raise ModelMismatchError(f"{ref} is not a raymm recommender (it is a {type(inner).__name__})")
    return inner


def load_recommender(ref: str, tracking_uri: str | None = None):
    """The served :class:`raymm.serving.RecommenderModel` (user ids -> top-K) behind an MLflow model URI."""
    from raymm.serving import RecommenderModel

    inner = load_served(ref, tracking_uri)
    if not isinstance(inner, RecommenderModel):
        raise ModelMismatchError(f"{ref} is a sequential recommender: it ranks from a user's history (predict with a "
                                 "'history' column, e.g. mlflow models predict), not from user ids")
    return inner


def sequential_model(ref: str, tracking_uri: str | None = None):
    """The torch model behind ``ref`` when it is a sequential one (it ranks from histories:
    ``score(windows)``), else None."""
    from raymm.models.registry import from_payload, model_class
    from raymm.serving import SequentialRecommenderModel

    if is_served_model(ref):
        inner = load_served(ref, tracking_uri)
        return inner.model if isinstance(inner, SequentialRecommenderModel) else None
    payload = load_payload(ref, tracking_uri)
    if hasattr(model_class(payload, ref), "full_embeddings"):
        return None
    return from_payload(payload, None, ref).eval()


def ranking_tables(ref: str, graph, features: dict | None = None, tracking_uri: str | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """((U, d) user, (I, d) item) final embeddings of the model behind ``ref``: a served MLflow model
    gives its tables; a payload is rebuilt (its kind from the registry) and run on the full graph."""
    if is_served_model(ref):
        rec = load_recommender(ref, tracking_uri)
        users, items = rec.user_emb, rec.item_emb
    else:
        from raymm.models.registry import from_payload

        model = from_payload(load_payload(ref, tracking_uri), features, ref)
        if not hasattr(model, "full_embeddings"):
            raise ModelMismatchError(f"{ref} is a sequential model ({type(model).__name__}): it ranks from a user's "
                                     "history, not from user embeddings (raymm.model_io.sequential_model loads it)")
        users, items = model.full_embeddings(graph.normalized_adjacency(normalization=model.normalization))
    if (users.shape[0], items.shape[0]) != (graph.num_users, graph.num_items):
        raise ModelMismatchError(f"model {ref} has {users.shape[0]} users / {items.shape[0]} items, the dataset has "
                                 f"{graph.num_users} / {graph.num_items}")
    return users, items
