import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import ray

from raymm.cluster import runtime_env
from raymm.data.schema import DataValidationError
from raymm.data.store import load_dataset, write_dataset
from raymm.data.text_features import MiniLMEncoder, encode_item_text


class HashEncoder:
    """A stand-in encoder: a vector determined by the text (the pipeline, not the model, is under test)."""

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        feats = [np.random.default_rng(sum(map(ord, t))).normal(size=4).astype(np.float32) for t in batch["text"]]
        return pd.DataFrame({"item_id": batch["item_id"].to_numpy(), "feature": feats})


def _dataset(tmp_path, texts):
    inter = pa.table({"user_id": [0, 1, 1], "item_id": [0, 1, 2], "split": ["train", "train", "val"]})
    items = pa.table({"item_id": np.arange(len(texts), dtype=np.int64), "text": texts})
    write_dataset(str(tmp_path / "ds"), [inter], {}, 2, len(texts), items=items)
    return str(tmp_path / "ds")


@pytest.mark.integration
def test_encode_item_text_adds_a_modality_in_item_order(tmp_path):
    texts = [f"item number {i}" for i in range(3)]
    uri = _dataset(tmp_path, texts)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env())
    try:
        encode_item_text(uri, "text", replicas=2, batch_size=1, encoder_cls=HashEncoder)
        with pytest.raises(FileExistsError, match="modality 'text' exists"):
            encode_item_text(uri, "text", encoder_cls=HashEncoder)
    finally:
        ray.shutdown()
    ds = load_dataset(uri)  # checksums verified
    x = ds.read_features("text")
    expect = HashEncoder()(pd.DataFrame({"item_id": [0, 1, 2], "text": texts}))
    assert np.allclose(x, np.stack(expect["feature"]))


def test_dataset_without_item_text_is_refused(tmp_path):
    inter = pa.table({"user_id": [0, 0], "item_id": [0, 1], "split": ["train", "val"]})
    write_dataset(str(tmp_path / "ds"), [inter], {}, 1, 2)
    with pytest.raises(DataValidationError, match="column 'text'"):
        encode_item_text(str(tmp_path / "ds"), encoder_cls=HashEncoder)


def test_packaged_minilm_runs_offline_and_embeds_meaning():
    enc = MiniLMEncoder()
    x = enc.encode(["Toy Story (1995). Genres: Animation, Children's, Comedy",
                    "A Bug's Life (1998). Genres: Animation, Children's, Comedy",
                    "Schindler's List (1993). Genres: Drama, War"])
    assert x.shape == (3, 384) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-4)
    assert x[0] @ x[1] > x[0] @ x[2]


@pytest.mark.integration
def test_tokens_are_stored_with_the_dataset_by_ray_data_and_read_back_in_item_order(tmp_path):
    from raymm.data.text_features import read_item_tokens, tokenize_item_text, tokens_file
    from raymm.models.text_encoder import tokenize

    texts = ["soft cotton baby shirt", "wooden toy train", "steel water bottle with a very long name indeed"]
    uri = _dataset(tmp_path, texts)
    assert read_item_tokens(load_dataset(uri), 6) is None
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env())
    try:
        assert tokenize_item_text(uri, 6, replicas=2, batch_size=2) == tokens_file(6)
        with pytest.raises(FileExistsError, match="minilm-6.parquet exists"):
            tokenize_item_text(uri, 6)
    finally:
        ray.shutdown()
    stored = read_item_tokens(load_dataset(uri), 6)
    expect = tokenize(texts, 6)
    for k in ("input_ids", "attention_mask"):
        assert stored[k].dtype == np.int32 and np.array_equal(stored[k], expect[k])
    assert stored["attention_mask"][2].sum() == 6  # truncated to 6 tokens
    assert read_item_tokens(load_dataset(uri), 8) is None  # another length: not stored
