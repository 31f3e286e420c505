import pytest
import torch

from raymm.models.registry import from_payload, to_payload
from raymm.models.text_encoder import DIM, TextEncoder, tokenize

TEXTS = ["soft cotton baby shirt", "wooden toy train", "organic baby food pouch", "steel water bottle"]


def _tokens():
    t = tokenize(TEXTS, 12)
    return torch.tensor(t["input_ids"]), torch.tensor(t["attention_mask"])


def _train_steps(enc, steps=3):
    ids, mask = _tokens()
    opt = torch.optim.Adam([p for p in enc.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        out = enc(ids, mask)
        loss = -(out[0] * out[1]).sum()  # pull two texts together
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_frozen_encoder_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from raymm.models.text_encoder import base_path

    ref = SentenceTransformer(base_path(), device="cpu").encode(TEXTS, convert_to_tensor=True)
    with torch.no_grad():
        ours = TextEncoder("none").eval()(*_tokens())
    assert ours.shape == (4, DIM)
    assert torch.allclose(ours, ref, atol=1e-5)
    assert TextEncoder("none").trainable_fraction()[0] == 0


@pytest.mark.parametrize("peft", ["lora", "prompt"])
def test_peft_trains_only_the_adapter_and_the_saved_model_holds_only_it(peft):
    torch.manual_seed(0)
    enc = TextEncoder(peft, lora_rank=4, prompt_tokens=3)
    base = {n: p.detach().clone() for n, p in enc.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in enc.named_parameters() if p.requires_grad}
    trainable, total = enc.trainable_fraction()
    assert adapters and 0 < trainable < 0.01 * total
    assert trainable == (6 * 2 * 2 * 4 * DIM if peft == "lora" else 3 * DIM)  # 6 layers x (q, v) x (A, B)
    _train_steps(enc)
    for n, p in enc.named_parameters():
        if n in base:
            assert torch.equal(p, base[n]) and p.grad is None, n  # the base never changes, never gets a gradient
        else:
            assert not torch.equal(p, adapters[n]), n  # every adapter tensor learned something
    payload = to_payload(enc)
    assert set(payload["state_dict"]) == {n for n, p in enc.named_parameters() if p.requires_grad}
    again = from_payload(payload)
    with torch.no_grad():
        assert torch.allclose(again(*_tokens()), enc.eval()(*_tokens()), atol=1e-6)
        assert not torch.allclose(again(*_tokens()), TextEncoder("none").eval()(*_tokens()), atol=1e-4)


def test_prompt_tokens_are_attended_not_pooled():
    enc = TextEncoder("prompt", prompt_tokens=2).eval()
    with torch.no_grad():
        enc.model.prompt_encoder.default.embedding.weight.zero_()
        a = enc(*_tokens())
        enc.model.prompt_encoder.default.embedding.weight.normal_()
        b = enc(*_tokens())
    assert a.shape == (4, DIM) and not torch.allclose(a, b, atol=1e-4)
