"""Saved payloads: kind -> class, format version, clear errors for unknown or old payloads."""

import pytest
import torch

from raymm.errors import ModelMismatchError
from raymm.models.lightgcn import LightGCN
from raymm.models.registry import MODELS, from_payload, to_payload


def test_round_trip_and_every_method_model_is_registered():
    import raymm.methods.registry  # noqa: F401

    assert {"lightgcn", "promptmm_teacher", "lightgcn_m"} <= set(MODELS)
    model = LightGCN(5, 7, dim=3, num_layers=2)
    payload = to_payload(model)
    assert payload["kind"] == "lightgcn" and payload["version"] == 1
    back = from_payload(payload)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))


@pytest.mark.parametrize("change, message", [({"kind": "mystery"}, "unknown model kind 'mystery'"),
                                             ({"version": 99}, "format version 99"),
                                             ({"version": None}, "older raymm: retrain it")])
def test_unknown_or_mismatched_payload_is_refused(change, message):
    payload = {**to_payload(LightGCN(5, 7, dim=3, num_layers=1)), **change}
    with pytest.raises(ModelMismatchError, match=message):
        from_payload(payload, source="saved.pt")
