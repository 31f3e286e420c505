"""Cold-start splits: hold some items out of a dataset entirely, so that a model trained on the rest
has never seen them (PTMRec's cold-start check: embed such an item from its text alone and rank it).

The held-out ("cold") items keep their ids, features and item-table rows: they stay in the catalogue,
with no interaction in any split. Their train and validation interactions become the cold-start
evaluation pairs (:func:`cold_pairs`); their test interactions are dropped, so the test split stays
for independent checks only.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raymm.data.schema import Manifest
from raymm.data.store import Dataset, write_dataset
from raymm.errors import InputError


def cold_item_ids(num_items: int, fraction: float, seed: int) -> np.ndarray:
    """(round(fraction * num_items),) sorted item ids drawn uniformly without replacement."""
    if not 0 < fraction < 1:
        raise InputError(f"cold-item fraction {fraction!r}: expected 0 < fraction < 1")
    n = int(round(fraction * num_items))
    if n < 1:
        raise InputError(f"cold-item fraction {fraction} of {num_items} items holds out no item")
    return np.sort(np.random.default_rng([seed, 7001]).choice(num_items, n, replace=False)).astype(np.int64)


def cold_pairs(src: Dataset, cold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((n,) users, (n,) items): the train and validation interactions of the ``cold`` items in ``src``."""
    splits = src.read_interactions()
    users, items = (np.concatenate([splits[s][k] for s in ("train", "val") if s in splits]) for k in (0, 1))
    keep = np.isin(items, cold)
    return users[keep], items[keep]


def hold_out_items(src: Dataset, dest: str, cold: np.ndarray, overwrite: bool = False) -> Manifest:
    """Write ``src`` to ``dest`` without any interaction of the ``cold`` items (every split).

    Validation and test rows of users left with no training interaction are dropped (there is no
    one to rank for). Features and the item table are copied unchanged; the manifest's ``source``
    names ``src`` and the number of items held out. Written atomically (:func:`write_dataset`)."""
    shards = [t.filter(pa.array(~np.isin(t.column("item_id").to_numpy(), cold))) for _, t in src.interaction_tables()]
    is_train = [pc.equal(t.column("split"), "train").to_numpy(zero_copy_only=False) for t in shards]
    train_users = np.unique(np.concatenate([t.column("user_id").to_numpy()[m] for t, m in zip(shards, is_train)]))

    def known(t: pa.Table, train_rows: np.ndarray) -> pa.Table:
        return t.filter(pa.array(train_rows | np.isin(t.column("user_id").to_numpy(), train_users)))

    items = src.read_items()
    table = pa.table(items) if items else None
    m = src.manifest
    return write_dataset(dest, (known(t, train_rows) for t, train_rows in zip(shards, is_train)),
                         src.read_all_features(), m.num_users, m.num_items,
                         source=f"{src.uri} with {len(cold)} items held out (cold start)", overwrite=overwrite,
                         items=table, split_protocol=m.split_protocol)
