"""LightningDataModule over already-encoded samples (encoding happens once, before the trainer)."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from rolecraft.data.batching import StepBatchSampler, StepCollator, eval_batches, filler_row
from rolecraft.data.tokenize import Encoded


class StepLoader(DataLoader):
    """The training loader, stateful the way Lightning expects (``state_dict`` /
    ``load_state_dict``, saved in each checkpoint). Its order is a pure function of (seed, epoch,
    step), so the state is what fixes that order: a resume checks it instead of Lightning warning
    that a mid-epoch resume "can cause unreliable results"."""

    def state_dict(self) -> dict:
        return self.batch_sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.load_state_dict(state)


class RoleDataModule(L.LightningDataModule):
    def __init__(self, train: list[Encoded], val: list[Encoded], pad_id: int, batch_size: int,
                 micro_batch_size: int, seed: int, group_by_length: bool, num_workers: int = 0,
                 packing: bool = False, pack_length: int | None = None):
        super().__init__()
        self.train_rows, self.val_rows = train, val
        self.pad_id = pad_id
        self.collate = StepCollator(pad_id, micro_batch_size, packing, pack_length)
        self.batch_size, self.micro = batch_size, micro_batch_size
        self.seed, self.group_by_length, self.num_workers = seed, group_by_length, num_workers

    def _rank_world(self) -> tuple[int, int]:
        t = self.trainer
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def _position(self) -> tuple[int, int]:
        t = self.trainer
        return (t.current_epoch, t.global_step) if t is not None else (0, 0)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_world()
        sampler = StepBatchSampler([len(r.input_ids) for r in self.train_rows], self.batch_size, self.seed,
                                   self.group_by_length, rank, world, self._position)
        # own generator: iterating the loader must not consume the global RNG (exact resume)
        return StepLoader(self.train_rows, batch_sampler=sampler, collate_fn=self.collate,
                          num_workers=self.num_workers, generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank_world()
        rows = self.val_rows + [filler_row(self.pad_id)] if world > 1 else self.val_rows
        return DataLoader(rows, batch_sampler=eval_batches(len(self.val_rows), self.micro, rank, world),
                          collate_fn=self.collate, num_workers=self.num_workers)
