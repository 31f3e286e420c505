"""Serving a trained model as an MLflow pyfunc recommender, so ``mlflow models predict`` /
``mlflow models serve`` work on it; ``params={"k": K}`` changes K.

- Graph family (:class:`RecommenderModel`): exported user and item embedding tables; ``predict``
  takes a ``user_id`` column and returns ``user_id, rank, item_id, score`` (top-K over all items,
  the user's training items excluded).
- Sequential family (:class:`SequentialRecommenderModel`): the saved model itself; ``predict``
  takes a ``history`` column (item ids, oldest first) and returns the same columns.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings

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
        self.weights = context.artifacts.get("weights")  # the saved model behind the tables

    def add_items(self, item_emb: np.ndarray) -> None:
        """Append (n, d) final embeddings of new items (ids ``num_items`` .. ``num_items + n - 1``):
        they are ranked with the catalogue from now on (no user has them in training)."""
        self.item_emb = torch.cat([self.item_emb, torch.as_tensor(np.asarray(item_emb, np.float32))])

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

    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        tables = export_tables(os.path.join(tmp, "tables.npz"), user_emb, item_emb, graph, k)
        model = RecommenderModel()
        model.user_emb, model.item_emb = user_emb.detach().cpu(), item_emb.detach().cpu()
        model.exclude, model.default_k = graph.user_items(), k
        example = pd.DataFrame({"user_id": np.arange(min(3, graph.num_users), dtype=np.int64)})
        with _quiet_mlflow():
            signature = infer_signature(example, model.predict(None, example), params={"k": k})
        with mlflow.start_run(run_id=run_id), _quiet_mlflow():
            info = mlflow.pyfunc.log_model(name=name, python_model=RecommenderModel(),
                                           artifacts={"tables": tables, **(extra_artifacts or {})},
                                           signature=signature, input_example=example,
                                           registered_model_name=registered_model_name,
                                           pip_requirements=[f"torch=={torch.__version__.split('+')[0]}",
                                                             f"mlflow=={mlflow.__version__}", "raymm"])
    _set_alias(tracking_uri, registered_model_name, alias, info)
    return info


class SequentialRecommenderModel(mlflow.pyfunc.PythonModel):
    """Top-K next items from a user's recent history (the sequential family's served format).

    ``predict`` takes a DataFrame with a ``history`` column (a list of item ids per row, oldest
    first; only the last ``max_len`` are read) and an optional ``user_id`` column, and returns one
    row per recommendation, ``user_id`` (or the row number), ``rank``, ``item_id``, ``score``. Items
    already in the history are not recommended; ``params={"k": K}`` changes K."""

    def load_context(self, context) -> None:
        from raymm.models.registry import from_payload

        payload = torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True)
        self.model = from_payload(payload).eval()
        self.default_k = int(payload.get("serving_k", 20))

    def recommend(self, histories: list, k: int | None = None, user_ids=None) -> pd.DataFrame:
        num_items, max_len = self.model.num_items, self.model.max_len
        k = min(int(k or self.default_k), num_items)
        windows = np.zeros((len(histories), max_len), np.int64)
        for row, h in enumerate(histories):
            h = np.asarray(h if h is not None else [], dtype=np.int64)
            bad = h[(h < 0) | (h >= num_items)]
            if bad.size:
                raise ValueError(f"history of row {row}: item ids out of range [0, {num_items}): {bad[:5].tolist()}")
            tail = h[-max_len:]
            if len(tail):
                windows[row, -len(tail):] = tail + 1
        with torch.no_grad():
            scores = self.model.score(torch.from_numpy(windows)).float()
        for row, h in enumerate(histories):
            if h is not None and len(h):
                scores[row, torch.as_tensor(np.asarray(h, dtype=np.int64))] = -torch.inf
        top = torch.topk(scores, k, dim=1)
        ids = np.arange(len(histories)) if user_ids is None else np.asarray(user_ids)
        return pd.DataFrame({"user_id": np.repeat(ids, k), "rank": np.tile(np.arange(1, k + 1), len(histories)),
                             "item_id": top.indices.reshape(-1).numpy(),
                             "score": top.values.reshape(-1).numpy().astype(np.float64)})

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        if "history" not in model_input.columns:
            raise ValueError(f"input needs a 'history' column (item ids, oldest first), got {list(model_input.columns)}")
        users = model_input["user_id"].to_numpy() if "user_id" in model_input.columns else None
        return self.recommend(list(model_input["history"]), (params or {}).get("k"), users)


def log_sequential_recommender(run_id: str, tracking_uri: str, name: str, weights: str, k: int,
                               registered_model_name: str | None = None, alias: str | None = None,
                               extra_artifacts: dict[str, str] | None = None):
    """Log the sequential pyfunc recommender over the saved payload ``weights`` (with a signature
    and an input example) into ``run_id``; optionally register it. Returns the ModelInfo."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import Array, ColSpec, Schema

    from raymm.models.registry import from_payload

    mlflow.set_tracking_uri(tracking_uri)
    payload = torch.load(weights, map_location="cpu", weights_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "weights.pt")
        torch.save({**payload, "serving_k": k}, path)
        model = SequentialRecommenderModel()
        model.model, model.default_k = from_payload(payload).eval(), k
        example = pd.DataFrame({"user_id": [0, 1], "history": [[0, 1, 2], [3]]})
        with _quiet_mlflow():
            inferred = infer_signature(example, model.predict(None, example), params={"k": k})
        inputs = Schema([ColSpec("long", "user_id", required=False), ColSpec(Array("long"), "history")])
        signature = ModelSignature(inputs=inputs, outputs=inferred.outputs, params=inferred.params)
        with mlflow.start_run(run_id=run_id), _quiet_mlflow():
            info = mlflow.pyfunc.log_model(name=name, python_model=SequentialRecommenderModel(),
                                           artifacts={"weights": path, **(extra_artifacts or {})}, signature=signature,
                                           input_example=example, registered_model_name=registered_model_name,
                                           pip_requirements=[f"torch=={torch.__version__.split('+')[0]}",
                                                             f"mlflow=={mlflow.__version__}", "raymm"])
    _set_alias(tracking_uri, registered_model_name, alias, info)
    return info


@contextlib.contextmanager
def _quiet_mlflow():
    """MLflow's known-harmless output while a recommender is logged: no artifact progress bars
    (``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``, unless the user set it) and no hint that integer
    columns cannot hold missing values (user and item ids never are missing)."""
    unset = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR" not in os.environ
    if unset:
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
            yield
    finally:
        if unset:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)


def _set_alias(tracking_uri: str, name: str | None, alias: str | None, info) -> None:
    if name and alias:
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri).set_registered_model_alias(name, alias, str(info.registered_model_version))


def log_served_model(run_id: str, tracking_uri: str, name: str, model, weights: str, graph: TrainGraph, k: int,
                     registered_model_name: str | None = None, alias: str | None = None,
                     extra_artifacts: dict[str, str] | None = None):
    """Log (and optionally register) the served recommender of a trained model, in its family's
    format: embedding tables (graph) or the model over histories (sequential). ``weights`` is the
    saved payload of ``model``."""
    if not hasattr(model, "full_embeddings"):
        return log_sequential_recommender(run_id, tracking_uri, name, weights, k, registered_model_name, alias,
                                          extra_artifacts)
    with torch.no_grad():
        users, items = model.full_embeddings(graph.normalized_adjacency(normalization=model.normalization))
    return log_recommender(run_id, tracking_uri, name, users, items, graph, k,
                           {"weights": weights, **(extra_artifacts or {})}, registered_model_name, alias)


def model_metrics(model, shared, cfg, which: str) -> dict[str, float]:
    """Full-ranking metrics of a trained model on the ``val`` or ``test`` split of ``shared``
    (this process, CPU): from its tables (graph) or from each example's history (sequential)."""
    from raymm.evaluation import finalize, metric_sums

    if hasattr(model, "full_embeddings"):
        split = shared.val if which == "val" else shared.test
        with torch.no_grad():
            users, items = model.full_embeddings(shared.graph.normalized_adjacency(normalization=model.normalization))
        return finalize(metric_sums(users, items, split, shared.graph, cfg.eval.ks), cfg.eval.ks)
    from raymm.sequences import next_item_sums

    seq = shared.extras["sequences"]
    model.eval()
    sums = next_item_sums(model.score, seq, seq.examples(which), model.max_len, cfg.eval.ks, cfg.eval.mask_history,
                          "cpu", cfg.eval.user_batch_size)
    return finalize(sums, cfg.eval.ks)
