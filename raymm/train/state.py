"""Training state that survives restarts: what a checkpoint holds besides the weights.

A checkpoint directory holds ``state.pt`` (this state, the current model and optimiser) and
``best_model.pt`` (the best-by-validation model so far, with its hyperparameters). Because every
checkpoint carries the best model, keeping only the latest checkpoints is enough both to resume
and to return the best model.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import torch

STATE_FILE = "state.pt"
BEST_FILE = "best_model.pt"


@dataclass
class TrainState:
    next_epoch: int = 0
    best_score: float = float("-inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)  # one row of metrics per finished epoch
    best_val: dict = field(default_factory=dict)
    best_test: dict = field(default_factory=dict)

    def observe(self, epoch: int, score: float, patience: int, min_epochs: int = 0) -> bool:
        """Record an evaluated epoch (counted from 0); return True when it is the new best. The run
        stops early after ``patience`` evaluations without a new best; evaluations within the first
        ``min_epochs`` epochs never count against it (the objective is still changing)."""
        if score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        if epoch + 1 > min_epochs:
            self.bad_epochs += 1
        self.stopped_early = self.bad_epochs >= patience
        return False


def save_checkpoint(directory: str, state: TrainState, model_state: dict, optim_state: dict,
                    best_model: dict) -> None:
    torch.save({"state": asdict(state), "model": model_state, "optimizer": optim_state},
               os.path.join(directory, STATE_FILE))
    torch.save(best_model, os.path.join(directory, BEST_FILE))


def load_checkpoint(directory: str, map_location="cpu") -> tuple[TrainState, dict, dict, dict]:
    """(state, model_state, optimizer_state, best_model) from a checkpoint directory."""
    raw = torch.load(os.path.join(directory, STATE_FILE), map_location=map_location, weights_only=True)
    best = torch.load(os.path.join(directory, BEST_FILE), map_location=map_location, weights_only=True)
    return TrainState(**raw["state"]), raw["model"], raw["optimizer"], best
