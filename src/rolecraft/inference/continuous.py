"""Continuous batching for greedy evaluation: a finished row's slot goes to the next prompt at once.

Per-batch decoding runs every batch to its longest answer, so at batch 16 a 125-prompt test split
took ~10 batches x up to 64 steps while answers average ~36 tokens. Here the batch is one running
KV cache: once a quarter of its rows have stopped they leave it, and as many new prompts (of any
character) are prefilled - against their character's shared prefix, computed once - and joined
to it. Rows of different lengths sit
side by side by left-padding the shorter cache with masked columns; position ids are tracked per
row, so every row sees exactly the positions and tokens it would see alone. Columns no live row
uses any more are cut off the left.

Only for plain ``DynamicCache``s (full attention in every layer); ``generate`` takes the
per-batch path for anything else.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch

from rolecraft.inference.planning import cache_of as _cache_of, plan_families
from rolecraft.modeling.capabilities import accepts_logits_to_keep

# new prompts are admitted once this share of the batch is free (or the batch is empty): each
# admission is one extra forward pass, so admitting one row at a time would cost more than it saves
ADMIT_FRACTION = 0.25


def plain_kv(cache) -> bool:
    """Whether the cache is one this module can pad, join and cut: a DynamicCache of full layers."""
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer
    except ImportError:  # transformers < 4.56 keeps the cache as lists of tensors
        return False
    return type(cache) is DynamicCache and all(type(layer) is DynamicLayer for layer in cache.layers)


def _pad_left(t: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    if n == 0:
        return t
    shape = list(t.shape)
    shape[dim] = n
    return torch.cat([t.new_zeros(shape), t], dim=dim)


@lru_cache(maxsize=1)  # one class, defined on first use: transformers is imported lazily
def _spare_layer_class():
    from transformers.cache_utils import DynamicLayer

    class SpareLayer(DynamicLayer):
        """A full-attention cache layer whose keys/values are views into buffers with room to spare
        along the sequence: a decode step writes its token in place instead of copying the whole
        cache as DynamicLayer's torch.cat does (that copy was 18% of a CPU evaluation)."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, spare: int):
            super().__init__()
            self.device, self.is_initialized, self.spare = keys.device, True, spare
            self.assign(keys, values)

        def assign(self, keys: torch.Tensor, values: torch.Tensor, room: int = 0) -> None:
            b, h, n, d = keys.shape
            self._k = keys.new_empty((b, h, n + max(self.spare, room), d))
            self._v = values.new_empty((b, h, n + max(self.spare, room), values.size(-1)))
            self._k[:, :, :n], self._v[:, :, :n] = keys, values
            self._n = n
            self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            m = key_states.size(2)
            if self._n + m > self._k.size(2):
                self.assign(self.keys, self.values, room=m)
            self._k[:, :, self._n:self._n + m], self._v[:, :, self._n:self._n + m] = key_states, value_states
            self._n += m
            self.keys, self.values = self._k[:, :, :self._n], self._v[:, :, :self._n]
            return self.keys, self.values

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            self.assign(self.keys[indices], self.values[indices])

        # DynamicLayer's other in-place edits replace self.keys/values: take them into the buffers
        def crop(self, tokens_to_remove: int) -> None:
            super().crop(tokens_to_remove)
            self.assign(self.keys, self.values)

        def batch_repeat_interleave(self, repeats: int) -> None:
            super().batch_repeat_interleave(repeats)
            self.assign(self.keys, self.values)

        def reorder_cache(self, beam_idx: torch.Tensor) -> None:
            super().reorder_cache(beam_idx)
            self.assign(self.keys, self.values)

    return SpareLayer


class _Running:
    """The running batch: one KV cache and, per row, its prompt, mask, last position and next token."""

    def __init__(self, spare: int = 64):
        self.spare = spare
        self.cache = None
        self.rows: list[int] = []
        self.done: list[bool] = []  # per row: its answer is complete
        self.mask = self.last = self.nxt = None

    def join(self, cache, rows: list[int], mask: torch.Tensor, last: torch.Tensor, nxt: torch.Tensor) -> None:
        if self.cache is None:
            spare_layer = _spare_layer_class()
            cache.layers = [spare_layer(layer.keys, layer.values, self.spare) for layer in cache.layers]
            self.cache, self.rows, self.mask, self.last, self.nxt = cache, list(rows), mask, last, nxt
            self.done = [False] * len(rows)
            return
        width = max(self.mask.size(1), mask.size(1))
        a, b = width - self.mask.size(1), width - mask.size(1)
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.assign(torch.cat([_pad_left(mine.keys, a, 2), _pad_left(theirs.keys, b, 2)]),
                        torch.cat([_pad_left(mine.values, a, 2), _pad_left(theirs.values, b, 2)]))
        self.mask = torch.cat([_pad_left(self.mask, a, 1), _pad_left(mask, b, 1)])
        self.rows += rows
        self.done += [False] * len(rows)
        self.last, self.nxt = torch.cat([self.last, last]), torch.cat([self.nxt, nxt])

    def keep(self, keep: list[int]) -> None:
        if not keep:
            self.__init__(self.spare)
            return
        sel = torch.tensor(keep, device=self.mask.device)
        self.mask, self.last, self.nxt = self.mask[sel], self.last[sel], self.nxt[sel]
        self.rows, self.done = [self.rows[i] for i in keep], [self.done[i] for i in keep]
        dead = int(self.mask.any(0).int().argmax())  # leading columns no remaining row attends to
        self.mask = self.mask[:, dead:]
        for layer in self.cache.layers:
            layer.assign(layer.keys[:, :, dead:].index_select(0, sel), layer.values[:, :, dead:].index_select(0, sel))


def _prefill(model, prompts, idx: list[int], shared: int, prefix, pad_id: int, device, cache_kw: str):
    """Prefills the prompts idx (their first `shared` tokens come from the 1-row `prefix` cache):
    their cache, attention mask, last position and first greedy token."""
    from transformers.cache_utils import DynamicCache

    tails = [prompts[i][shared:] for i in idx]
    width = max(len(t) for t in tails)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    for row, tail in enumerate(tails):
        ids[row, width - len(tail):] = torch.tensor(tail)
        mask[row, shared + width - len(tail):] = 1
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    kw = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}
    if shared:
        kw[cache_kw] = DynamicCache(ddp_cache_data=[(layer.keys.expand(len(idx), -1, -1, -1).contiguous(),
                                      layer.values.expand(len(idx), -1, -1, -1).contiguous())
                                     for layer in prefix.layers])
    o = model(input_ids=ids, attention_mask=mask, position_ids=pos[:, shared:], use_cache=True, **kw)
    return _cache_of(o, cache_kw), mask, pos[:, -1], o.logits[:, -1].float().argmax(-1)


def continuous_greedy(model, prompts: Sequence[Sequence[int]], batch_size: int, share_prefix: bool, pad_id: int,
                      cache_kw: str, max_new_tokens: int, stop_ids: list[int], bar=None) -> list[list[int]] | None:
    """Each prompt's new tokens (its stop token included), or None when the model's cache is not a
    plain DynamicCache (found at the first prefill: use the per-batch path). `bar`: a tqdm to
    advance by each finished prompt."""
    if max_new_tokens <= 0:
        return [[] for _ in prompts]
    device = next(model.parameters()).device
    fams = plan_families(prompts, share_prefix)
    queue = [(i, f) for f, (idx, _) in enumerate(fams) for i in idx]
    left = [len(idx) for idx, _ in fams]  # prompts of each family not admitted yet
    prefixes: dict[int, object] = {}
    new: list[list[int]] = [[] for _ in prompts]
    stops = set(stop_ids)
    run, head = _Running(spare=max_new_tokens), 0
    admit_at = max(1, int(batch_size * ADMIT_FRACTION))
    while True:
        live = [k for k, d in enumerate(run.done) if not d]
        dead = len(run.rows) - len(live)
        admit = head < len(queue) and (not live or batch_size - len(live) >= admit_at)
        # a finished row stays in the batch (decoding what nobody reads) until enough have finished
        # to make cutting them out, and refilling their slots, worth a copy of the cache
        if dead and (admit or not live or dead >= admit_at):
            run.keep(live)
        if admit:
            take = queue[head:head + batch_size - len(run.rows)]
            head += len(take)
            for f in dict.fromkeys(f for _, f in take):  # one prefill per family among the admitted
                idx, shared = [i for i, g in take if g == f], fams[f][1]
                if shared and f not in prefixes:
                    kw = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}
                    out = model(input_ids=torch.tensor([list(prompts[idx[0]][:shared])], device=device),
                                use_cache=True, **kw)
                    prefixes[f] = _cache_of(out, cache_kw)
                    if not plain_kv(prefixes[f]):
                        return None
                cache, mask, last, nxt = _prefill(model, prompts, idx, shared, prefixes.get(f), pad_id, device,
                                                  cache_kw)
                if not plain_kv(cache):
                    return None
                run.join(cache, idx, mask, last, nxt)
                left[f] -= len(idx)
                if not left[f]:
                    prefixes.pop(f, None)
        if not run.rows:
            break
        finished = 0
        for k, (r, t) in enumerate(zip(run.rows, run.nxt.tolist())):
            if not run.done[k]:
                new[r].append(t)
                if t in stops or len(new[r]) >= max_new_tokens:
                    run.done[k], finished = True, finished + 1
        if finished and bar is not None:
            bar.update(finished)
        if all(run.done):
            continue
        run.mask = torch.cat([run.mask, run.mask.new_ones(run.mask.size(0), 1)], dim=1)
        run.last = run.last + 1
        o = model(input_ids=run.nxt[:, None], attention_mask=run.mask, position_ids=run.last[:, None],
                  use_cache=True, **{cache_kw: run.cache})
        run.cache, run.nxt = _cache_of(o, cache_kw), o.logits[:, -1].float().argmax(-1)
    return new
