"""How prompts are grouped for generation: families that share a long prefix, and batches.

Shared by the per-batch decoder (``generate``) and continuous batching (``continuous``), so the
two never import each other.
"""

from __future__ import annotations

import os
from typing import Sequence

# a prefix shorter than this is not worth a separate forward pass
MIN_SHARED_PREFIX = 32


def _common_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    # commonprefix compares only the smallest and largest sequence: O(n) comparisons + one scan
    return len(os.path.commonprefix([list(p) for p in prompts]))


def plan_families(prompts: Sequence[Sequence[int]], share_prefix: bool) -> list[tuple[list[int], int]]:
    """Groups of prompt indices that share at least MIN_SHARED_PREFIX leading tokens (the
    lexicographic order puts them next to each other), each longest first with the length its
    members share (leaving each at least one token of its own); then the prompts without a
    partner, longest first, as one group with 0. Without share_prefix: all in one group, 0."""
    n = len(prompts)
    if not share_prefix:
        return [(sorted(range(n), key=lambda i: -len(prompts[i])), 0)] if n else []
    lex = sorted(range(n), key=lambda i: prompts[i])
    families: list[list[int]] = []
    for i in lex:
        if families and _common_prefix_length([prompts[families[-1][-1]], prompts[i]]) >= MIN_SHARED_PREFIX:
            families[-1].append(i)
        else:
            families.append([i])
    out = []
    for fam in (f for f in families if len(f) > 1):
        fam.sort(key=lambda i: -len(prompts[i]))
        shared = min(_common_prefix_length([prompts[i] for i in fam]), min(len(prompts[i]) for i in fam) - 1)
        out.append((fam, shared if shared >= MIN_SHARED_PREFIX else 0))
    loose = sorted((i for f in families if len(f) == 1 for i in f), key=lambda i: -len(prompts[i]))
    return out + ([(loose, 0)] if loose else [])


def plan_batches(prompts: Sequence[Sequence[int]], batch_size: int, share_prefix: bool) -> list[tuple[list[int], int]]:
    """Batches of prompt indices, each with the length of the prefix its rows share (0: none used):
    each family of ``plan_families`` cut into batches, a batch's shared length its own rows'."""
    batches = []
    for fam, fam_shared in plan_families(prompts, share_prefix):
        for k in range(0, len(fam), batch_size):
            idx = fam[k:k + batch_size]
            shared = 0
            if fam_shared and len(idx) > 1:
                shared = min(_common_prefix_length([prompts[i] for i in idx]), min(len(prompts[i]) for i in idx) - 1)
            batches.append((idx, shared if shared >= MIN_SHARED_PREFIX else 0))
    return batches


def cache_of(output, cache_kw: str):
    """The KV cache a forward pass returned (models name the output field differently)."""
    cache = getattr(output, "cache", None) if cache_kw == "cache" else None
    return cache if cache is not None else output.past_key_values
