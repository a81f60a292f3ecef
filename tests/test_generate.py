"""Batched generation's speed features change nothing in the answers.

The reference is plain `model.generate` on one prompt at a time (no padding, no shared cache) —
what a user would write by hand. Prompts are the demo test split as evaluate.py renders them, so
they come in families sharing a long character prefix, plus a few loose ones.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from rolecraft.inference.generate import generate
from rolecraft.inference.planning import MIN_SHARED_PREFIX, plan_batches


def test_plan_groups_families_and_leaves_each_row_a_token_of_its_own():
    family = [[7] * 40 + [i, i + 1] for i in range(5)] + [[7] * 40]  # the last one IS the prefix
    loose = [[1, 2, 3], [9] * 50]
    prompts = family + loose
    batches = plan_batches(prompts, batch_size=4, share_prefix=True)
    assert sorted(i for idx, _ in batches for i in idx) == list(range(len(prompts)))
    for idx, shared in batches:
        assert len(idx) <= 4
        if shared:
            assert shared >= MIN_SHARED_PREFIX and len(idx) > 1
            assert all(prompts[i][:shared] == prompts[idx[0]][:shared] for i in idx)
            assert all(len(prompts[i]) > shared for i in idx)
    shared_rows = {i for idx, shared in batches if shared for i in idx}
    assert shared_rows and shared_rows <= set(range(len(family)))
    assert all(shared == 0 for _, shared in plan_batches(prompts, 4, share_prefix=False))


@pytest.fixture(scope="module")
def demo_prompts(cache_dir):
    from rolecraft.config import BenchmarkConfig, GenerationConfig, ModelConfig
    from rolecraft.data.tokenize import ChatEncoder
    from rolecraft.evaluation.benchmarks import chats, load_benchmark
    from rolecraft.modeling.base import load_base, stop_token_ids

    model_cfg = OmegaConf.structured(ModelConfig())
    model, tok, _ = load_base(model_cfg, cache_dir)
    bench_cfg = OmegaConf.structured(BenchmarkConfig)
    bench = load_benchmark(bench_cfg)
    enc = ChatEncoder(tok, 1024, 0, model_cfg.chat_template)
    from rolecraft.data.prompts import PromptBuilder

    builder = PromptBuilder(bench.dataset, emotions=True, num_exemplars=6)
    prompts = [enc.prompt_ids(c, it.key) for c, it in zip(chats(bench, builder), bench.items)][:24]
    prompts += [prompts[0][-60:], prompts[5][-90:]]  # loose prompts: no long prefix in common with any other
    gen = OmegaConf.structured(GenerationConfig(max_new_tokens=20))
    model.eval()
    stop_ids = stop_token_ids(tok, model_cfg)
    reference = one_at_a_time(model, tok, prompts, gen, stop_ids)
    return model, tok, prompts, gen, stop_ids, reference


def one_at_a_time(model, tok, prompts, gen, stop_ids) -> list[str]:
    out = []
    with torch.no_grad():
        for p in prompts:
            ids = model.generate(input_ids=torch.tensor([p]), max_new_tokens=gen.max_new_tokens, do_sample=False,
                                 eos_token_id=stop_ids, pad_token_id=tok.pad_token_id, temperature=None, top_p=None,
                                 top_k=None)[0, len(p):].tolist()
            cut = next((k for k, t in enumerate(ids) if t in stop_ids), len(ids))
            out.append(tok.decode(ids[:cut], skip_special_tokens=True).strip())
    return out


@pytest.mark.parametrize("share_prefix,drop_finished,continuous", [
    (False, False, False), (True, False, False), (False, True, False), (True, True, False), (False, True, True),
    (True, True, True)])
def test_batched_greedy_answers_equal_one_prompt_at_a_time(demo_prompts, share_prefix, drop_finished, continuous):
    model, tok, prompts, gen, stop_ids, reference = demo_prompts
    assert any(reference) and len(set(reference)) > 5  # the model says different things to different prompts
    cfg = OmegaConf.merge(gen, {"share_prefix": share_prefix, "drop_finished": drop_finished,
                                "continuous": continuous})
    shared = [s for _, s in plan_batches(prompts, 16, share_prefix)]
    assert any(shared) == share_prefix  # the demo prompts do share a long prefix
    assert generate(model, tok, prompts, cfg, stop_ids, batch_size=16) == reference


def test_sampling_still_goes_through_generate_and_is_seeded(demo_prompts):
    model, tok, prompts, gen, stop_ids, _ = demo_prompts
    cfg = OmegaConf.merge(gen, {"do_sample": True})
    a = generate(model, tok, prompts[:6], cfg, stop_ids, batch_size=4, seed=3)
    b = generate(model, tok, prompts[:6], cfg, stop_ids, batch_size=4, seed=3)
    assert a == b and len(a) == 6


def test_remote_code_models_take_the_plain_generate_path(demo_prompts, monkeypatch):
    """Remote-code classes (transformers_modules.*) may keep legacy tuple caches: no own cache handling there."""
    import rolecraft.inference.generate as g

    model, tok, prompts, gen, stop_ids, reference = demo_prompts

    def refuse(*a, **k):
        raise AssertionError("the own greedy loop ran for a remote-code model")

    monkeypatch.setattr(g, "_greedy", refuse)
    monkeypatch.setattr(g, "_prefix_cache", refuse)
    native = type(model)
    model.__class__ = type("RemoteCodeLM", (native,), {"__module__": "transformers_modules.someone.model"})
    try:
        out = g.generate(model, tok, prompts[:8], gen, stop_ids, batch_size=4)
    finally:
        model.__class__ = native
    assert out == reference[:8]


def _forward_count(model):
    calls = []
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def test_continuous_batching_runs_fewer_forward_passes_for_the_same_answers(demo_prompts):
    model, tok, prompts, gen, stop_ids, reference = demo_prompts
    counts = {}
    for continuous in (False, True):
        cfg = OmegaConf.merge(gen, {"continuous": continuous})
        calls, handle = _forward_count(model)
        try:
            assert generate(model, tok, prompts, cfg, stop_ids, batch_size=8) == reference
        finally:
            handle.remove()
        counts[continuous] = len(calls)
    # per batch, every batch decodes to its longest answer; refilled slots keep the batch full
    assert counts[True] < counts[False], counts


def test_a_cache_that_cannot_be_joined_takes_the_per_batch_path(demo_prompts, monkeypatch):
    import rolecraft.inference.continuous as c

    model, tok, prompts, gen, stop_ids, reference = demo_prompts
    monkeypatch.setattr(c, "plain_kv", lambda cache: False)  # as for a sliding-window or hybrid cache
    assert generate(model, tok, prompts[:10], gen, stop_ids, batch_size=4) == reference[:10]


def test_running_batch_joins_left_padded_and_cuts_columns_nobody_uses():
    from transformers.cache_utils import DynamicCache

    from rolecraft.inference.continuous import _Running

    def cache(rows, length, fill):
        t = torch.full((rows, 1, length, 2), float(fill))
        return DynamicCache(ddp_cache_data=[(t, t + 100)])

    run = _Running()
    run.join(cache(1, 6, 1), [10], torch.ones(1, 6, dtype=torch.long), torch.tensor([5]), torch.tensor([7]))
    run.join(cache(2, 3, 2), [11, 12], torch.tensor([[1, 1, 1], [0, 1, 1]]), torch.tensor([2, 1]),
             torch.tensor([8, 9]))
    keys = run.cache.layers[0].keys
    assert keys.shape == (3, 1, 6, 2) and run.rows == [10, 11, 12]
    assert run.mask.tolist() == [[1] * 6, [0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1]]
    assert keys[1, 0, :3].abs().sum() == 0 and (keys[1, 0, 3:] == 2).all()  # the shorter cache is left-padded
    assert (run.cache.layers[0].values[1, 0, 3:] == 102).all()
    run.keep([1, 2])  # the long row leaves: its first three columns are nobody's now
    assert run.mask.tolist() == [[1, 1, 1], [0, 1, 1]] and run.cache.layers[0].keys.shape == (2, 1, 3, 2)
    assert run.rows == [11, 12] and run.nxt.tolist() == [8, 9] and run.last.tolist() == [2, 1]
    run.keep([])
    assert run.rows == [] and run.cache is None


def test_spare_layer_writes_in_place_and_grows_past_its_room():
    from rolecraft.inference.continuous import _spare_layer_class

    k, v = torch.randn(2, 1, 3, 4), torch.randn(2, 1, 3, 4)
    layer = _spare_layer_class()(k, v, spare=2)
    ref_k, ref_v = k, v
    for step in range(5):  # the third token no longer fits in the room of 2
        nk, nv = torch.randn(2, 1, 1, 4), torch.randn(2, 1, 1, 4)
        keys, values = layer.update(nk, nv)
        ref_k, ref_v = torch.cat([ref_k, nk], 2), torch.cat([ref_v, nv], 2)
        assert torch.equal(keys, ref_k) and torch.equal(values, ref_v) and layer.get_seq_length() == 4 + step
    layer.batch_select_indices(torch.tensor([1]))
    assert torch.equal(layer.keys, ref_k[1:]) and torch.equal(layer.values, ref_v[1:])


def test_spare_layer_takes_crop_and_repeat_into_its_buffers():
    from rolecraft.inference.continuous import _spare_layer_class

    k = torch.randn(1, 1, 4, 2)
    layer = _spare_layer_class()(k, k + 1, spare=3)
    layer.crop(-1)
    layer.batch_repeat_interleave(2)
    nk = torch.randn(2, 1, 1, 2)
    keys, values = layer.update(nk, nk + 1)
    expected = torch.cat([k[:, :, :3].repeat_interleave(2, 0), nk], 2)
    assert torch.equal(keys, expected) and torch.equal(values, expected + 1)


def test_no_new_tokens_asked_none_given(demo_prompts):
    model, tok, prompts, gen, stop_ids, _ = demo_prompts
    from rolecraft.inference.continuous import continuous_greedy

    assert continuous_greedy(model, prompts[:3], 4, True, tok.pad_token_id, "cache", 0, stop_ids) == [[], [], []]
