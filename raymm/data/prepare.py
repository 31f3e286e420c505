"""Resolve a config's dataset: open a canonical dataset, or generate the synthetic one once and
cache it under ``<output.dir>/datasets/`` (keyed by the generator's parameters)."""

from __future__ import annotations

import hashlib
import json
import logging
import os

from raymm.config import Config
from raymm.data.store import Dataset, load_dataset
from raymm.data.synthetic import generate

log = logging.getLogger(__name__)


def prepare_dataset(cfg: Config) -> Dataset:
    if cfg.data.source == "path":
        return load_dataset(cfg.data.path)
    params = cfg.data.synthetic.model_dump()
    for key, default in (("sequential", False), ("transition", 3.0), ("split", "fraction"), ("text_words", 0)):
        if params[key] == default:  # options added later: at their defaults, the cache key is unchanged
            params.pop(key)
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    dest = os.path.join(os.path.abspath(cfg.output.dir), "datasets", f"synthetic-{digest}")
    if not os.path.exists(os.path.join(dest, "manifest.json")):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        print(f"[raymm] generating synthetic dataset -> {dest}", flush=True)
        try:
            generate(cfg.data.synthetic, dest)
        except FileExistsError:  # another job generated it meanwhile
            pass
    return load_dataset(dest)
