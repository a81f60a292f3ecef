"""Batched generation's speed features change nothing in the answers.

The reference is plain `model.generate` on one prompt at a time (no padding, no shared cache) —
what a user would write by hand. Prompts are the demo test split as evaluate.py renders them, so
they come in families sharing a long character prefix, plus a few loose ones.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from rolecraft.evaluation.generate import MIN_SHARED_PREFIX, generate, plan_batches


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
    from rolecraft.evaluation.benchmarks import load_benchmark
    from rolecraft.modeling.base import load_base, stop_token_ids

    model_cfg = OmegaConf.structured(ModelConfig())
    model, tok, _ = load_base(model_cfg, cache_dir)
    bench_cfg = OmegaConf.structured(BenchmarkConfig)
    bench = load_benchmark(bench_cfg)
    enc = ChatEncoder(tok, 1024, 0, model_cfg.chat_template)
    prompts = [enc.prompt_ids(bench.messages(it, bench_cfg.num_exemplars, bench_cfg.emotions), it.key)
               for it in bench.items][:24]
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


@pytest.mark.parametrize("share_prefix,drop_finished", [(False, False), (True, False), (False, True), (True, True)])
def test_batched_greedy_answers_equal_one_prompt_at_a_time(demo_prompts, share_prefix, drop_finished):
    model, tok, prompts, gen, stop_ids, reference = demo_prompts
    assert any(reference) and len(set(reference)) > 5  # the model says different things to different prompts
    cfg = OmegaConf.merge(gen, {"share_prefix": share_prefix, "drop_finished": drop_finished})
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
    import rolecraft.evaluation.generate as g

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
