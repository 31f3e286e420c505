"""Serving a trained model: an MLflow pyfunc recommender over exported embedding tables.

``predict`` takes a DataFrame with a ``user_id`` column and returns one row per recommendation,
``user_id, rank, item_id, score`` (top-K over all items, the user's training items excluded), so
``mlflow models predict`` / ``mlflow models serve`` work on it. ``params={"k": K}`` changes K.
"""

from __future__ import annotations

import os
import tempfile

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from raymm.evaluation import topk_excluding
from raymm.graph import TrainGraph


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """Top-K recommender over final user/item embedding tables (what an ID-only student serves)."""

    def load_context(self, context) -> None:
        z = np.load(context.artifacts["tables"])
        self.user_emb = torch.from_numpy(z["user_emb"])
        self.item_emb = torch.from_numpy(z["item_emb"])
        self.exclude = (z["train_indptr"], z["train_items"])
        self.default_k = int(z["k"])

    @property
    def num_users(self) -> int:
        return self.user_emb.shape[0]

    def recommend(self, users: np.ndarray, k: int | None = None) -> pd.DataFrame:
        users = np.asarray(users, dtype=np.int64)
        bad = users[(users < 0) | (users >= self.num_users)]
        if bad.size:
            raise ValueError(f"user ids out of range [0, {self.num_users}): {bad[:5].tolist()}")
        k = min(int(k or self.default_k), self.item_emb.shape[0])
        items, scores = topk_excluding(self.user_emb, self.item_emb, users, self.exclude, k, with_scores=True)
        return pd.DataFrame({"user_id": np.repeat(users, k), "rank": np.tile(np.arange(1, k + 1), len(users)),
                             "item_id": items.reshape(-1).numpy(), "score": scores.reshape(-1).numpy().astype(np.float64)})

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        if "user_id" not in model_input.columns:
            raise ValueError(f"input needs a 'user_id' column, got {list(model_input.columns)}")
        return self.recommend(model_input["user_id"].to_numpy(), (params or {}).get("k"))


def export_tables(path: str, user_emb: torch.Tensor, item_emb: torch.Tensor, graph: TrainGraph, k: int) -> str:
    indptr, items = graph.user_items()
    np.savez(path, user_emb=user_emb.detach().cpu().numpy().astype(np.float32),
             item_emb=item_emb.detach().cpu().numpy().astype(np.float32), train_indptr=indptr, train_items=items, k=k)
    return path


def log_recommender(run_id: str, tracking_uri: str, name: str, user_emb: torch.Tensor, item_emb: torch.Tensor,
                    graph: TrainGraph, k: int, extra_artifacts: dict[str, str] | None = None,
                    registered_model_name: str | None = None, alias: str | None = None):
    """Log the pyfunc recommender (with a signature) into ``run_id``; optionally register it and set
    ``alias`` on the new version. Returns the ModelInfo (and the version via ``.registered_model_version``)."""
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        tables = export_tables(os.path.join(tmp, "tables.npz"), user_emb, item_emb, graph, k)
        model = RecommenderModel()
        model.user_emb, model.item_emb = user_emb.detach().cpu(), item_emb.detach().cpu()
        model.exclude, model.default_k = graph.user_items(), k
        example = pd.DataFrame({"user_id": np.arange(min(3, graph.num_users), dtype=np.int64)})
        signature = infer_signature(example, model.predict(None, example), params={"k": k})
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(name=name, python_model=RecommenderModel(),
                                           artifacts={"tables": tables, **(extra_artifacts or {})},
                                           signature=signature, input_example=example,
                                           registered_model_name=registered_model_name,
                                           pip_requirements=[f"torch=={torch.__version__.split('+')[0]}",
                                                             f"mlflow=={mlflow.__version__}", "raymm"])
    if registered_model_name and alias:
        MlflowClient(tracking_uri).set_registered_model_alias(registered_model_name, alias,
                                                              str(info.registered_model_version))
    return info
