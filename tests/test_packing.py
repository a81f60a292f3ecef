"""Sequence packing: several samples per row, position ids restarting, no attention across samples."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from rolecraft.data.batching import StepCollator, pack_rows, packed_batch, pad_batch
from rolecraft.data.tokenize import IGNORE_INDEX, Encoded


def test_first_fit_decreasing_respects_the_row_length():
    rows = [Encoded([1] * n, [IGNORE_INDEX] * n) for n in (7, 5, 4, 3, 3, 2, 12)]
    groups = pack_rows(rows, 10)
    assert sorted(len(r.input_ids) for g in groups for r in g) == [2, 3, 3, 4, 5, 7, 12]
    assert all(sum(len(r.input_ids) for r in g) <= 10 for g in groups if len(g) > 1)
    assert len(groups) == 4  # [12], [7,3], [5,4], [3,2]


def test_packed_row_layout():
    a, b = Encoded([5, 6, 7], [IGNORE_INDEX, 6, 7]), Encoded([8, 9], [IGNORE_INDEX, 9])
    batch = packed_batch([a, b])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7, IGNORE_INDEX, 9]]
    assert "attention_mask" not in batch


@pytest.fixture(scope="module")
def tiny(cache_dir):
    from rolecraft.config import ModelConfig
    from rolecraft.data import resolve_data_root, schema
    from rolecraft.data.prompts import PromptBuilder
    from rolecraft.data.tokenize import ChatEncoder
    from rolecraft.modeling.base import load_base

    model_cfg = OmegaConf.structured(ModelConfig())
    model, tok, _ = load_base(model_cfg, cache_dir)
    ds = schema.load(resolve_data_root("embedded:demo"))
    prompts = PromptBuilder(ds, emotions=True, num_exemplars=6)
    enc = ChatEncoder(tok, 1024, 128, model_cfg.chat_template)
    rows = [enc.encode(prompts.messages(s, s.references[0]), s.id) for s in ds.samples[:6]]
    return model, tok, rows


def test_packed_batch_gives_the_same_per_sample_loss_as_unpacked(tiny):
    from rolecraft.modeling.lit_module import token_loss_sum

    model, tok, rows = tiny
    model.eval()
    with torch.no_grad():
        alone = [token_loss_sum(model, pad_batch([r], tok.pad_token_id)) for r in rows]
        padded = token_loss_sum(model, pad_batch(rows, tok.pad_token_id))
        packed = token_loss_sum(model, packed_batch(rows))
        # and sample by sample inside one packed row: the logits of each segment equal its own
        from rolecraft.modeling.lit_module import model_inputs

        logits = model(**model_inputs(packed_batch(rows))).logits[0]
        start = 0
        for r in rows:
            own = model(input_ids=torch.tensor([r.input_ids])).logits[0]
            seg = logits[start:start + len(r.input_ids)]
            assert torch.allclose(seg, own, atol=1e-4), (r, (seg - own).abs().max())
            start += len(r.input_ids)
    total = sum(float(s) for s, _ in alone)
    assert packed[1] == padded[1] == sum(n for _, n in alone)
    assert float(packed[0]) == pytest.approx(total, rel=1e-5)
    assert float(padded[0]) == pytest.approx(total, rel=1e-5)


def test_collator_packs_a_step_into_rows(tiny):
    _, tok, rows = tiny
    step = StepCollator(tok.pad_token_id, micro_batch_size=2, packing=True, pack_length=2048)(rows[:4])
    assert all(set(m) == {"input_ids", "labels", "position_ids"} for m in step["micro"])
    assert step["tokens"] == sum(len(r.input_ids) for r in rows[:4])
    assert sum(m["input_ids"].numel() for m in step["micro"]) == step["tokens"]  # no padding at all
