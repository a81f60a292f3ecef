"""Batched generation: left padding, KV cache, stop at end of turn, prompts sorted by length.

Role-play prompts repeat a long character context (profile, exemplars) in front of every question.
With ``share_prefix`` the prompts of a batch that start with the same tokens get that prefix
prefilled once; its KV cache is copied to every row and only each row's own tail is prefilled.
The padding then sits between the shared prefix and each tail, masked out, and position ids follow
the mask, so every row sees exactly the positions and tokens it would see alone.
"""

from __future__ import annotations

from typing import Sequence

import torch

from rolecraft.inference.planning import cache_of as _cache_of, plan_batches
from rolecraft.modeling.capabilities import accepts_logits_to_keep, cache_kwarg, is_native_transformers

def _prefix_cache(model, prefix: list[int], rows: int, device, cache_kw: str):
    kw = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}
    cache = _cache_of(model(input_ids=torch.tensor([prefix], device=device), use_cache=True, **kw), cache_kw)
    cache.batch_repeat_interleave(rows)
    return cache


def _greedy(model, ids, mask, cache, cache_kw: str, max_new_tokens: int, stop_ids: list[int]) -> list[list[int]]:
    """Greedy decoding that drops a row from the batch (and from the KV cache) as soon as it has
    produced a stop token, instead of carrying it to the end of the longest answer as `generate`
    does. Each row's new tokens, its stop token included."""
    rows = ids.size(0)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    start = cache.get_seq_length() if cache is not None else 0
    stops = torch.tensor(stop_ids, device=ids.device)
    alive = torch.arange(rows, device=ids.device)
    new: list[list[int]] = [[] for _ in range(rows)]
    kw = {cache_kw: cache} if cache is not None else {}
    if accepts_logits_to_keep(model):  # only the last position's logits are needed
        kw["logits_to_keep"] = 1
    o = model(input_ids=ids[:, start:], attention_mask=mask, position_ids=pos[:, start:], use_cache=True, **kw)
    cache, nxt, last = _cache_of(o, cache_kw), o.logits[:, -1].float().argmax(-1), pos[:, -1]
    for step in range(max_new_tokens):
        for r, t in zip(alive.tolist(), nxt.tolist()):
            new[r].append(t)
        keep = ~torch.isin(nxt, stops)
        if step == max_new_tokens - 1 or not keep.any():
            break
        if not keep.all():
            sel = keep.nonzero().squeeze(1)
            cache.batch_select_indices(sel)
            mask, nxt, last, alive = mask[sel], nxt[sel], last[sel], alive[sel]
        mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], dim=1)
        last = last + 1
        o = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last[:, None], use_cache=True,
                  **{cache_kw: cache})
        cache, nxt = _cache_of(o, cache_kw), o.logits[:, -1].float().argmax(-1)
    return new


def _decode(tokenizer, new: list[int], stop_ids: list[int]) -> str:
    cut = next((k for k, t in enumerate(new) if t in stop_ids), len(new))
    return tokenizer.decode(new[:cut], skip_special_tokens=True).strip()


@torch.inference_mode()  # not just no_grad: no version counters on the many small tensors (~10% on CPU)
def generate(model, tokenizer, prompts: Sequence[list[int]], gen_cfg, stop_ids: list[int],
             batch_size: int = 16, seed: int = 0, progress: bool = False) -> list[str]:
    """Answers for token-id prompts, in input order. Greedy unless gen_cfg.do_sample."""
    was_training = model.training
    model.eval()
    bar = None
    if progress:
        from rolecraft.console import progress as progress_bar

        bar = progress_bar(total=len(prompts), desc="generate", unit="prompt")
    try:
        news = _generate_tokens(model, tokenizer, prompts, gen_cfg, stop_ids, batch_size, seed, bar)
    finally:
        if bar is not None:
            bar.close()
        if was_training:
            model.train()
    return [_decode(tokenizer, new, stop_ids) for new in news]


def _generate_tokens(model, tokenizer, prompts, gen_cfg, stop_ids, batch_size, seed, bar) -> list[list[int]]:
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    kwargs = dict(max_new_tokens=gen_cfg.max_new_tokens, do_sample=gen_cfg.do_sample, eos_token_id=stop_ids,
                  pad_token_id=pad_id, repetition_penalty=gen_cfg.repetition_penalty)
    if gen_cfg.do_sample:
        kwargs.update(temperature=gen_cfg.temperature, top_p=gen_cfg.top_p)
        torch.manual_seed(seed)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    # the fast paths handle the KV cache themselves: only for transformers' own model classes
    native = is_native_transformers(model)
    share = native and bool(getattr(gen_cfg, "share_prefix", False))
    # the own greedy loops cover plain greedy decoding; sampling and penalties go through `generate`
    own_loop = (native and bool(getattr(gen_cfg, "drop_finished", False)) and not gen_cfg.do_sample
                and gen_cfg.repetition_penalty == 1.0)
    cache_kw = cache_kwarg(model) if share or own_loop else ""
    if own_loop and getattr(gen_cfg, "continuous", False):
        from rolecraft.inference.continuous import continuous_greedy

        news = continuous_greedy(model, prompts, batch_size, share, pad_id, cache_kw, gen_cfg.max_new_tokens,
                                 stop_ids, bar)
        if news is not None:
            return news
    out: list[list[int]] = [[] for _ in prompts]
    for idx, shared in plan_batches(prompts, batch_size, share):
        tails = [prompts[i][shared:] for i in idx]
        width = max(len(t) for t in tails)
        ids = torch.full((len(idx), shared + width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), shared + width), dtype=torch.long)
        if shared:
            ids[:, :shared] = torch.tensor(prompts[idx[0]][:shared])
            mask[:, :shared] = 1
        for row, tail in enumerate(tails):
            ids[row, shared + width - len(tail):] = torch.tensor(tail)
            mask[row, shared + width - len(tail):] = 1
        cache = _prefix_cache(model, prompts[idx[0]][:shared], len(idx), device, cache_kw) if shared else None
        ids, mask = ids.to(device), mask.to(device)
        if own_loop:
            news = _greedy(model, ids, mask, cache, cache_kw, gen_cfg.max_new_tokens, stop_ids)
        else:
            extra = {cache_kw: cache} if cache is not None else {}
            news = [row.tolist() for row in model.generate(input_ids=ids, attention_mask=mask, **kwargs, **extra)
                    [:, shared + width:]]
        for new, i in zip(news, idx):
            out[i] = new
        if bar is not None:
            bar.update(len(idx))
    return out
