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


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_label_logits_only_gives_the_same_loss_and_gradients(tiny, layout):
    """The speed switch trainer.label_logits_only projects fewer positions; loss and LoRA gradients must not move."""
    from rolecraft.config import LoraConfig, ModelConfig
    from rolecraft.modeling.capabilities import accepts_logits_to_keep
    from rolecraft.modeling.lit_module import token_loss_sum
    from rolecraft.modeling.lora import apply_lora

    model, tok, rows = tiny
    torch.manual_seed(0)
    peft_model = apply_lora(model, OmegaConf.structured(LoraConfig()), OmegaConf.structured(ModelConfig()), "embedded:tiny")
    assert accepts_logits_to_keep(peft_model)
    peft_model.eval()  # no dropout: the two passes must see the same network
    batch = pad_batch(rows[:3], tok.pad_token_id) if layout == "padded" else packed_batch(rows[:3])
    results = []
    for selected in (False, True):
        peft_model.zero_grad(set_to_none=True)
        loss, n = token_loss_sum(peft_model, batch, label_logits_only=selected)
        loss.backward()
        grads = {k: p.grad.clone() for k, p in peft_model.named_parameters() if p.requires_grad}
        results.append((float(loss.detach()), n, grads))
    (full, n_full, g_full), (sel, n_sel, g_sel) = results
    peft_model.unload()  # the module-scoped base model goes back to its plain layers
    assert n_sel == n_full > 0
    assert sel == pytest.approx(full, rel=1e-5)
    assert g_full.keys() == g_sel.keys() and g_full
    for k in g_full:
        assert torch.allclose(g_full[k], g_sel[k], rtol=1e-4, atol=1e-6), k


def test_a_batch_without_labels_has_zero_loss_either_way(tiny):
    from rolecraft.modeling.lit_module import token_loss_sum

    model, tok, rows = tiny
    r = rows[0]
    batch = pad_batch([Encoded(r.input_ids, [IGNORE_INDEX] * len(r.input_ids))], tok.pad_token_id)
    with torch.no_grad():
        for selected in (False, True):
            loss, n = token_loss_sum(model, batch, label_logits_only=selected)
            assert n == 0 and float(loss) == 0.0


def test_the_packing_probe_tells_isolating_models_from_leaking_ones(tiny):
    """train.py packs by default only where the model keeps packed samples apart."""
    from rolecraft.modeling.lit_module import packed_rows_are_isolated

    model, _, _ = tiny

    class CausalOverTheWholeRow(torch.nn.Module):
        """Masks like a remote-code model that ignores position ids: one causal mask over the row."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, position_ids=None, attention_mask=None, use_cache=None):
            return self.inner(input_ids=input_ids, use_cache=False)

    was = model.training
    model.train()
    assert packed_rows_are_isolated(model) is True
    assert model.training  # the probe restores the mode it found
    assert packed_rows_are_isolated(CausalOverTheWholeRow(model)) is False
    model.train(was)


@pytest.mark.slow
def test_speed_switches_leave_the_training_losses_where_they_were(tmp_path, cache_dir):
    """train.py with packing + label-only logits (the defaults) against both off, same seed and
    same samples per step: packing only rearranges a step's rows, so without dropout the losses
    agree up to float rounding."""
    from conftest import FAST, read_metrics, run_train

    metrics = {}
    for name, switches in {"fast": [], "plain": ["data.packing=false", "trainer.label_logits_only=false"]}.items():
        runs = tmp_path / name
        r = run_train(["lora.dropout=0", "eval.enabled=false", *FAST, *switches], cache_dir, runs)
        assert r.returncode == 0, r.stderr[-3000:]
        (path,) = list(runs.rglob("metrics.json"))
        metrics[name] = read_metrics(path.parent)
    fast, plain = metrics["fast"], metrics["plain"]
    assert fast["train/steps"] == plain["train/steps"] == 6
    assert fast["train/loss"] == pytest.approx(plain["train/loss"], rel=1e-3)
    assert fast["val/loss"] == pytest.approx(plain["val/loss"], rel=1e-3)
