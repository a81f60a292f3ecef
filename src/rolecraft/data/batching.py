"""Batches: one loader item = one optimizer step, split into padded (or packed) micro-batches.

Keeping a whole accumulation window in one item lets the loss be normalised by the label tokens
of the whole window (not a mean of per-micro-batch means), and makes the data order a pure
function of (seed, epoch, step): resuming from a checkpoint continues with exactly the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
import random
from typing import Callable, Sequence

import torch

from rolecraft.data.tokenize import IGNORE_INDEX, Encoded
from rolecraft.errors import ConfigError

log = logging.getLogger("rolecraft")


def pad_batch(rows: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest row of this micro-batch (dynamic padding)."""
    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        labels[i, :n] = torch.tensor(r.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pack_rows(rows: Sequence[Encoded], pack_length: int) -> list[list[Encoded]]:
    """First-fit decreasing: groups of rows whose lengths sum to at most ``pack_length``
    (a longer row gets a group of its own)."""
    bins: list[list[Encoded]] = []
    room: list[int] = []
    for r in sorted(rows, key=lambda r: len(r.input_ids), reverse=True):
        n = len(r.input_ids)
        for i, free in enumerate(room):
            if n <= free:
                bins[i].append(r)
                room[i] -= n
                break
        else:
            bins.append([r])
            room.append(pack_length - n)
    return bins


def packed_batch(rows: Sequence[Encoded]) -> dict[str, torch.Tensor]:
    """One row holding several samples. Position ids restart at 0 for each sample and no attention
    mask is passed, so transformers builds a block-diagonal causal mask (no attention across
    samples). Each sample's first label is ignored, so no sample is trained to predict the next."""
    ids, labels, pos = [], [], []
    for r in rows:
        ids.extend(r.input_ids)
        labels.append(IGNORE_INDEX)
        labels.extend(r.labels[1:])
        pos.extend(range(len(r.input_ids)))
    # dtype given: rows from the encoding cache are int32 arrays, and the loss needs int64 labels
    return {"input_ids": torch.tensor([ids], dtype=torch.long), "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([pos], dtype=torch.long)}


class StepCollator:
    def __init__(self, pad_id: int, micro_batch_size: int, packing: bool = False, pack_length: int | None = None):
        self.pad_id, self.micro = pad_id, micro_batch_size
        self.packing, self.pack_length = packing, pack_length
        if packing and not pack_length:
            raise ConfigError("data.packing=true needs a positive data.pack_length (or max lengths to derive it)")

    def __call__(self, rows: list[Encoded]) -> dict:
        rows = sorted(rows, key=lambda r: len(r.input_ids), reverse=True)
        if self.packing:
            micro = [packed_batch(group) for group in pack_rows(rows, self.pack_length)]
        else:
            micro = [pad_batch(rows[i:i + self.micro], self.pad_id) for i in range(0, len(rows), self.micro)]
        return {
            "micro": micro,
            "label_tokens": sum(int((m["labels"] != IGNORE_INDEX).sum()) for m in micro),
            "tokens": sum(len(r.input_ids) for r in rows),
            "samples": len(rows),  # this rank's share of the step: train/samples_seen sums it over ranks
        }


class StepBatchSampler:
    """Per optimizer step, this rank's share of a global batch; seeded by (seed, epoch).

    ``position`` returns (epoch, global_step) of the trainer when an epoch starts: after a resume
    mid-epoch, the steps already taken in that epoch are skipped.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group_by_length: bool,
                 rank: int = 0, world_size: int = 1, position: Callable[[], tuple[int, int]] | None = None):
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.group_by_length, self.rank, self.world = group_by_length, rank, world_size
        self.position = position or (lambda: (0, 0))
        if len(self) == 0:
            raise ConfigError(
                f"{len(self.lengths)} training samples cannot fill one step of optim.batch_size={batch_size} "
                f"x {world_size} device(s); lower optim.batch_size or add data")

    def __len__(self) -> int:
        return len(self.lengths) // (self.batch_size * self.world)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed * 100_003 + epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        g = self.batch_size * self.world
        if self.group_by_length:  # sort within mega-chunks so a step's samples have similar length
            mega = g * 16
            order = [i for c in range(0, len(order), mega)
                     for i in sorted(order[c:c + mega], key=lambda j: -self.lengths[j])]
        steps = [order[i:i + g] for i in range(0, len(self) * g, g)]
        if self.group_by_length:
            rng.shuffle(steps)
        return [s[self.rank * self.batch_size:(self.rank + 1) * self.batch_size] for s in steps]

    def __iter__(self):
        epoch, global_step = self.position()
        skip = max(0, global_step - epoch * len(self))
        yield from self.epoch_batches(epoch)[skip:]

    # ---- Lightning's stateful-loader protocol (through StepLoader) -------------------------
    def order_fingerprint(self) -> dict:
        """What fixes the order of the batches: equal fingerprints give equal batches at every
        (epoch, step)."""
        import hashlib

        digest = hashlib.sha256(",".join(map(str, self.lengths)).encode()).hexdigest()[:16]
        return {"samples": len(self.lengths), "lengths_sha256": digest, "batch_size": self.batch_size,
                "world_size": self.world, "seed": self.seed, "group_by_length": self.group_by_length}

    def state_dict(self) -> dict:
        epoch, global_step = self.position()
        return {"order": self.order_fingerprint(), "epoch": epoch, "global_step": global_step}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore (the position comes back with the trainer's global step): check that
        the resumed run orders its data as the checkpointed one did, and say so either way."""
        saved, mine = state.get("order") or {}, self.order_fingerprint()
        changed = [f"{k} {saved[k]} -> {mine[k]}" for k in mine if k in saved and saved[k] != mine[k]]
        if changed:
            log.warning("resuming from step %s with a different data order than the checkpoint's (%s): the "
                        "remaining steps will not see the batches the interrupted run would have seen",
                        state.get("global_step"), "; ".join(changed))
        else:
            log.info("resuming at step %s: batches are a function of (seed, epoch, step), so the remaining "
                     "steps see exactly the batches the interrupted run would have seen", state.get("global_step"))


def eval_batches(n: int, micro_batch_size: int, rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """Fixed-order micro-batches of this rank's share of ``n`` validation rows.

    With several ranks every rank gets the same number of batches (under FSDP every forward is a
    collective): a rank short of one gets ``[n]``, the index of the filler row the datamodule
    appends (``FILLER``: no labels, so it adds nothing to the validation loss)."""
    mine = list(range(n))[rank::world_size]
    batches = [mine[i:i + micro_batch_size] for i in range(0, len(mine), micro_batch_size)]
    if world_size > 1:
        most = max(len(range(r, n, world_size)) for r in range(world_size))
        batches += [[n]] * (-(-most // micro_batch_size) - len(batches))
    return batches


def filler_row(pad_id: int) -> Encoded:
    """A two-token row without labels: run through the model, it contributes no loss and no tokens."""
    return Encoded(input_ids=[pad_id, pad_id], labels=[IGNORE_INDEX, IGNORE_INDEX])
