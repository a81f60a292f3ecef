"""Which samples train and which evaluate (data=general|specific|hybrid; paper Table 6; data=dialogue
and data.dialogue=on for multi-turn dialogue, beyond the paper)."""

from __future__ import annotations

import random

from rolecraft.data.schema import KINDS, RoleInstruct, Sample
from rolecraft.errors import ConfigError

MIXES = {"general": ("general",), "specific": ("specific",), "hybrid": ("general", "specific"),
         "dialogue": ("dialogue",)}


def _with_share(rng: random.Random, share: float, part: list[Sample], rest: list[Sample]) -> tuple[list, list]:
    """The largest mix in which ``part`` makes exactly ``share`` that both pools can supply."""
    total = min(len(part) / share, len(rest) / (1 - share))
    n_part = round(total * share)
    return rng.sample(part, n_part), rng.sample(rest, round(total) - n_part)


def training_samples(ds: RoleInstruct, mix: str, split: str = "train", specific_ratio: float | None = None,
                     train_on_raw: bool = False, max_samples: int | None = None, seed: int = 0,
                    dialogue: bool = False, dialogue_ratio: float | None = None) -> list[Sample]:
    """The samples of ``split`` that train under ``mix``, in a seeded order; ``dialogue`` adds the
    dialogue samples (``dialogue_ratio``: their share of the result, else all of them)."""
    if mix not in MIXES:
        raise ConfigError(f"data.mix={mix!r} is not one of {', '.join(MIXES)}")
    kinds = set(MIXES[mix]) | ({"raw"} if train_on_raw else set()) | ({"dialogue"} if dialogue else set())
    by_kind = {k: [s for s in ds.samples if s.split == split and s.kind == k] for k in kinds}
    rng = random.Random(seed)
    if mix == "hybrid" and specific_ratio is not None:
        if not 0.0 < specific_ratio < 1.0:
            raise ConfigError(f"data.specific_ratio={specific_ratio} must be between 0 and 1 (exclusive), or null")
        by_kind["specific"], by_kind["general"] = _with_share(rng, specific_ratio, by_kind["specific"],
                                                              by_kind["general"])
    out = [s for k in KINDS if k in by_kind for s in by_kind[k]]
    if dialogue and dialogue_ratio is not None and mix != "dialogue":
        if not 0.0 < dialogue_ratio < 1.0:
            raise ConfigError(f"data.dialogue_ratio={dialogue_ratio} must be between 0 and 1 (exclusive), or null")
        dlg, rest = _with_share(rng, dialogue_ratio, by_kind["dialogue"], [s for s in out if s.kind != "dialogue"])
        out = rest + dlg
    rng.shuffle(out)
    if max_samples is not None:
        out = out[:max_samples]
    return out


def evaluation_samples(ds: RoleInstruct, split: str = "test", max_per_kind: int | None = None) -> list[Sample]:
    """Every kind of ``split`` (RAW, CUS and SPE are always all scored), at most ``max_per_kind`` each."""
    out = []
    for kind in KINDS:
        rows = [s for s in ds.samples if s.split == split and s.kind == kind]
        out.extend(rows[:max_per_kind] if max_per_kind is not None else rows)
    return out
