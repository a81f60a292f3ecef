"""Batched generation: left padding, KV cache, stop at end of turn, prompts sorted by length."""

from __future__ import annotations

from typing import Sequence

import torch


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[list[int]], gen_cfg, stop_ids: list[int],
             batch_size: int = 16, seed: int = 0, progress: bool = False) -> list[str]:
    """Answers for token-id prompts, in input order. Greedy unless gen_cfg.do_sample."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # less padding per batch
    out: list[str] = [""] * len(prompts)
    kwargs = dict(max_new_tokens=gen_cfg.max_new_tokens, do_sample=gen_cfg.do_sample, eos_token_id=stop_ids,
                  pad_token_id=pad_id, repetition_penalty=gen_cfg.repetition_penalty)
    if gen_cfg.do_sample:
        kwargs.update(temperature=gen_cfg.temperature, top_p=gen_cfg.top_p)
        torch.manual_seed(seed)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    iterator = batches
    if progress:
        from tqdm import tqdm

        iterator = tqdm(batches, desc="generate", unit="batch")
    for idx in iterator:
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            p = prompts[i]
            ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
        for row, i in enumerate(idx):
            new = gen[row, width:].tolist()
            cut = next((k for k, t in enumerate(new) if t in stop_ids), len(new))
            out[i] = tokenizer.decode(new[:cut], skip_special_tokens=True).strip()
    if was_training:
        model.train()
    return out
