"""MLflow tracking: one run per job, found again by its run name when the job is relaunched.

Default store: ``sqlite:///<output.dir>/mlflow.db`` with artifacts under ``<output.dir>/mlartifacts``
(MLflow 3 refuses the old ``./mlruns`` file store as a backend). Any tracking URI works by config.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from raymm.config import Config, flatten
from raymm.errors import TrackingUnavailableError

RUN_NAME_TAG = "raymm.run_name"
KNOWN_SCHEMES = {"http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "file"}


def tracking_uri(cfg: Config) -> str:
    if cfg.mlflow.tracking_uri:
        return cfg.mlflow.tracking_uri
    return f"sqlite:///{Path(cfg.output.dir).resolve() / 'mlflow.db'}"


def check_tracking_store(uri: str, timeout_s: float = 5.0) -> None:
    """Fail at once, before any training, when a tracking server does not answer (MLflow's own
    client would retry for minutes). Only ``http(s)://`` servers are probed; an HTTP error status
    (401, 404 ...) still means something answered. An unknown scheme is refused."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme not in KNOWN_SCHEMES:
        raise TrackingUnavailableError(f"mlflow.tracking_uri {uri!r}: unknown scheme {scheme!r} (expected one of "
                                       f"{', '.join(sorted(KNOWN_SCHEMES))}; null = a local SQLite store)")
    if uri.startswith("sqlite:///"):  # MLflow would retry a store it cannot write for minutes
        from raymm.storage import unwritable

        db = Path(uri[len("sqlite:///"):])
        bad = db if db.exists() and not os.access(db, os.W_OK) else unwritable(str(db.parent))
        if bad:
            raise TrackingUnavailableError(f"mlflow.tracking_uri {uri}: {bad} is not writable (null: a local SQLite "
                                           "store under output.dir)")
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise TrackingUnavailableError(f"MLflow tracking server {uri} is unreachable ({reason}); start it, or set "
                                       "mlflow.tracking_uri to a running server (null: a local SQLite store)") from None


def _init_sqlite_store(uri: str) -> None:
    """Create a new SQLite store with its artifact root beside it (``<dir>/mlartifacts``). MLflow
    otherwise gives the ``Default`` experiment it creates a location under the process's working
    directory, which for ``ray job submit`` is a temporary copy deleted when the job ends."""
    db = Path(uri[len("sqlite:///"):])
    if db.exists():
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    db.parent.mkdir(parents=True, exist_ok=True)
    SqlAlchemyStore(uri, (db.parent / "mlartifacts").as_uri()).engine.dispose()


def ui_command(uri: str) -> str:
    """The command that opens ``uri`` in the MLflow UI, with this interpreter's ``mlflow`` by its full
    path (works without activating the virtual environment)."""
    import sys

    mlflow_bin = os.path.join(os.path.dirname(sys.executable), "mlflow")
    if not os.path.exists(mlflow_bin):
        mlflow_bin = "mlflow"
    return f"{mlflow_bin} ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"


def metric_key(name: str) -> str:
    """MLflow metric names allow no '@': ``val_recall@20`` -> ``val_recall_at_20``."""
    return name.replace("@", "_at_")


@dataclass
class EpochLogger:
    """Picklable per-epoch metric logger, called by the rank-0 worker (``step`` = epoch)."""

    tracking_uri: str
    run_id: str

    def warm(self) -> None:
        """Import MLflow and open the tracking store ahead of the first epoch's log, which otherwise
        pays for both (about 1.4 s in a fresh worker process); the rank-0 worker runs it in a thread
        from its start, beside its setup and first batch. Reads the run only."""
        from mlflow.tracking import MlflowClient

        MlflowClient(self.tracking_uri).get_run(self.run_id)

    def __call__(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        now = int(time.time() * 1000)
        rows = [Metric(metric_key(k), float(v), now, step) for k, v in metrics.items() if isinstance(v, (int, float))]
        MlflowClient(self.tracking_uri).log_batch(self.run_id, metrics=rows)


class Tracker:
    """The MLflow run of one job."""

    def __init__(self, cfg: Config, run_name: str, parent: "Tracker | None" = None):
        import mlflow
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri(cfg)
        check_tracking_store(self.uri)
        if self.uri.startswith("sqlite:///"):
            _init_sqlite_store(self.uri)
        self.client = MlflowClient(self.uri)
        try:
            exp = self.client.get_experiment_by_name(cfg.mlflow.experiment)
        except Exception as e:  # noqa: BLE001 - any failure here means the store is unusable
            raise TrackingUnavailableError(f"MLflow tracking store {self.uri} is unreachable or unusable: {e}") from None
        if exp is None:
            artifacts = None
            if self.uri.startswith("sqlite:///"):
                artifacts = (Path(self.uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
            exp_id = self.client.create_experiment(cfg.mlflow.experiment, artifact_location=artifacts)
        else:
            exp_id = exp.experiment_id
        previous = self.client.search_runs([exp_id], f"tags.`{RUN_NAME_TAG}` = '{run_name}'",
                                           order_by=["attributes.start_time DESC"], max_results=1)
        if previous and previous[0].info.status != "FINISHED":
            self.run_id = previous[0].info.run_id  # a relaunch of an interrupted job continues its run
            self.client.update_run(self.run_id, status="RUNNING")
            self.resumed = True
        else:
            tags = {RUN_NAME_TAG: run_name}
            if parent is not None:
                tags["mlflow.parentRunId"] = parent.run_id
            run = self.client.create_run(exp_id, run_name=run_name, tags=tags)
            self.run_id = run.info.run_id
            self.resumed = False
            for key, value in flatten(cfg).items():
                self.client.log_param(self.run_id, key, json.dumps(value) if isinstance(value, (list, dict)) else value)
        self._mlflow = mlflow
        self.cfg = cfg

    def child(self, name: str, run_name: str) -> "Tracker":
        """A child run (``mlflow.parentRunId``) of this run, e.g. one per training stage."""
        return Tracker(self.cfg, f"{run_name}/{name}", parent=self)

    def epoch_logger(self) -> EpochLogger:
        return EpochLogger(self.uri, self.run_id)

    def log_metrics(self, metrics: dict[str, float], prefix: str = "") -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(metric_key(prefix + k), float(v), now, 0)
                                                    for k, v in metrics.items()])

    def log_artifact(self, path: str | Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def log_model(self, model, name: str = "model") -> str:
        """Log a torch module (pickle format: torch 2.2 has no pt2 export here); return its URI."""
        import mlflow.pytorch
        import torch

        self._mlflow.set_tracking_uri(self.uri)
        with self._mlflow.start_run(run_id=self.run_id):
            info = mlflow.pytorch.log_model(model, name=name, serialization_format="pickle",
                                            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "raymm"])
        return info.model_uri

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


def learning_curve_png(history: list[dict], path: str | Path, selector: str, loss_label: str = "loss") -> Path:
    """Train loss (labelled ``loss_label``) and validation metrics per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] + 1 for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], marker="o")
    ax1.set(xlabel="epoch", ylabel=f"train loss ({loss_label})", title="training loss")
    k = selector.split("@")[1]
    for key in dict.fromkeys((f"val_{selector}", f"val_ndcg@{k}")):
        pts = [(h["epoch"] + 1, h[key]) for h in history if key in h]
        if pts:
            ax2.plot(*zip(*pts), marker="o", label=key)
    ax2.set(xlabel="epoch", ylabel="metric", title="validation")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_json(obj, path: str | Path) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path
