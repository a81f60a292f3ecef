"""LightningModule: one training_step = one optimizer step over a whole accumulation window."""

from __future__ import annotations

import math
import time

import lightning as L
import torch
import torch.nn.functional as F

from rolecraft.data.tokenize import IGNORE_INDEX
from rolecraft.modeling.capabilities import accepts_logits_to_keep


def model_inputs(batch: dict) -> dict:
    """Padded micro-batches carry an attention mask; packed rows carry position ids instead, and
    transformers derives the per-sample (block-diagonal) mask from them only without a mask and a cache."""
    if "position_ids" in batch:
        return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "attention_mask": None,
                "use_cache": False}
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}


@torch.no_grad()
def packed_rows_are_isolated(model) -> bool:
    """Whether this model keeps the samples of a packed row apart (block-diagonal attention from
    restarting position ids). transformers' own architectures do; remote-code models such as
    ChatGLM3 ignore position ids for masking and would let a sample attend to the one before it.
    Probed on 14 tokens: the second of two packed samples must get the logits it gets alone."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        first, second = torch.arange(3, 11, device=device), torch.arange(20, 26, device=device)
        pos = torch.cat([torch.arange(8, device=device), torch.arange(6, device=device)])
        packed = model(**model_inputs({"input_ids": torch.cat([first, second])[None], "position_ids": pos[None]})).logits
        alone = model(input_ids=second[None], use_cache=False).logits
    finally:
        model.train(was_training)
    packed, alone = packed[0, 8:].float(), alone[0].float()
    return bool((packed - alone).abs().max() <= 1e-2 * alone.abs().max().clamp(min=1.0))


def token_loss_sum(model, batch: dict, label_logits_only: bool = False) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over label tokens, and their count.

    With ``label_logits_only`` the vocabulary projection (and the softmax) runs only at positions
    whose next token is a label of some row — the answer, ~1/6 of a RoleInstruct sample — instead
    of at every position; the loss is the same sum over the same tokens.
    """
    targets = batch["labels"][:, 1:]
    keep = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1) if label_logits_only else None
    if keep is not None and keep.numel() < targets.size(1):  # else every position is needed anyway
        if keep.numel() == 0:  # no label at all: any one position, every target there is ignored
            keep = torch.zeros(1, dtype=torch.long, device=targets.device)
        logits = model(**model_inputs(batch), logits_to_keep=keep).logits
        targets = targets[:, keep]
    else:
        logits = model(**model_inputs(batch)).logits[:, :-1, :]
    loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, int((targets != IGNORE_INDEX).sum())


def batch_samples(batch: dict) -> int:
    """Samples in one step's batch (StepCollator records them; hand-made batches of padded
    micro-batches are counted by rows)."""
    if "samples" in batch:
        return int(batch["samples"])
    return sum(int(m["input_ids"].shape[0]) for m in batch["micro"])


class RolePlayModule(L.LightningModule):
    def __init__(self, model, optim_cfg, max_steps: int, label_logits_only: bool = True,
                 started: float | None = None):
        super().__init__()
        self.model = model
        # falls back to full logits where the model cannot select positions
        self.label_logits_only = label_logits_only and accepts_logits_to_keep(model)
        self.optim_cfg = optim_cfg
        self.max_steps = max_steps
        self.automatic_optimization = False
        # checkpoints hold only the adapter: the frozen base is missing from them on purpose
        self.strict_loading = False
        self.last_train_loss: float | None = None
        self.train_tokens = 0
        self.samples_seen = 0  # training samples consumed by the optimizer steps, over all ranks
        # seconds from ``started`` (default: the package's first import) to the first training step
        self.started = started
        self.first_step_seconds: float | None = None
        self.step_marks: list[tuple[float, int]] = []  # (time, train_tokens) after each step

    # ---- training -------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        if self.first_step_seconds is None:
            import rolecraft

            self.first_step_seconds = time.perf_counter() - (self.started or rolecraft.STARTED)
        opt = self.optimizers()
        sched = self.lr_schedulers()
        # label tokens of the whole window on all ranks: DDP averages gradients, so scaling by
        # world_size / global count makes the update the exact per-token mean over everything
        # [label tokens, samples] of this rank; one all-reduce gives both totals over all ranks (sums and
        # maxima here are all-reduces, not Lightning's all_gather: that goes through torch's deprecated
        # differentiable gather and warns on every run)
        counts = torch.tensor([float(sum(int((m["labels"][:, 1:] != IGNORE_INDEX).sum()) for m in batch["micro"])),
                               float(batch_samples(batch))], device=self.device)
        n_local = counts[0]
        micro, real = self._micro_on_every_rank(batch["micro"])
        totals = counts.clone()
        if self.trainer.world_size > 1:
            torch.distributed.all_reduce(totals)
        n_global = totals[0]
        self.samples_seen += int(totals[1])
        scale = self.trainer.world_size / n_global.clamp(min=1.0)
        total = torch.zeros((), device=self.device)
        for k, mb in enumerate(micro):
            loss_sum, _ = token_loss_sum(self.model, mb, self.label_logits_only)
            self.manual_backward(loss_sum * (scale if k < real else 0.0))
            if k < real:
                total += loss_sum.detach()
        opt.step()  # clips in on_before_optimizer_step: after the AMP unscale, before the update
        opt.zero_grad(set_to_none=True)
        sched.step()
        tokens = torch.tensor(float(batch["tokens"]), device=self.device)
        if self.trainer.world_size > 1:  # the step's loss and tokens over all ranks, as one process would see them
            both = torch.stack([total, tokens])
            torch.distributed.all_reduce(both)
            total, tokens = both[0], both[1]
        loss = total / n_global.clamp(min=1.0)
        self.last_train_loss = float(loss)
        self.train_tokens += int(tokens)
        self.step_marks.append((time.perf_counter(), self.train_tokens))  # float(loss) above synchronised
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(batch["micro"]))
        self.log("train/lr", sched.get_last_lr()[0], on_step=True, on_epoch=False)
        return loss

    def steady_tokens_per_second(self) -> float | None:
        """Tokens per second (all ranks) over the second half of this fit's steps: compilation,
        warm-up and the first validation stay out of it. None below 4 steps."""
        marks = self.step_marks
        if len(marks) < 4:
            return None
        (t0, n0), (t1, n1) = marks[len(marks) // 2 - 1], marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None

    def on_before_optimizer_step(self, optimizer) -> None:
        # Lightning's precision plugin calls this inside opt.step(): under precision=16-mixed after
        # the GradScaler has unscaled the gradients (so the bound applies to true gradients, not to
        # gradients times the loss scale), and for every other precision just before the update.
        self._clip_gradients(optimizer)

    def _clip_gradients(self, opt) -> None:
        """Clip by the global L2 norm of the trainable gradients.

        Written out (not Lightning's ``gradient_clip_val``) because this module optimises manually.
        Under DDP every rank holds the whole (averaged) gradient; under FSDP2 each rank holds a shard
        of each gradient as a DTensor, and the norm is reduced over the mesh before any gradient is
        scaled, so every rank scales by the same global factor (a per-shard norm would not)."""
        max_norm = self.optim_cfg.gradient_clip_val
        if not max_norm:
            return
        from rolecraft.modeling.sharding import clip_grad_norm

        clip_grad_norm([p for p in self.model.parameters() if p.requires_grad], max_norm)

    def configure_model(self) -> None:
        """Lightning's hook for sharding: under ``trainer.strategy=fsdp`` shard the model over the
        data-parallel mesh (FSDP2); under every other strategy nothing happens."""
        if getattr(self.trainer.strategy, "shards_model", False):
            from rolecraft.modeling.sharding import fully_shard_model

            fully_shard_model(self.model, self.device_mesh["data_parallel"])

    # ---- validation -----------------------------------------------------------------------
    def on_validation_epoch_start(self):
        self._val_sum = torch.zeros((), device=self.device)
        self._val_n = torch.zeros((), device=self.device)

    def validation_step(self, batch, batch_idx):
        micro, real = self._micro_on_every_rank(batch["micro"])
        for k, mb in enumerate(micro):
            s, n = token_loss_sum(self.model, mb, self.label_logits_only)
            if k < real:
                self._val_sum += s
                self._val_n += n

    def _micro_on_every_rank(self, micro: list) -> tuple[list, int]:
        """The micro-batches to run, and how many of them are real. Under DDP every backward (under
        FSDP every forward) is a collective, so all ranks must run as many; packing makes the count
        vary, so a rank with fewer repeats its last one, to be weighted zero."""
        micro = list(micro)
        if self.trainer.world_size == 1:
            return micro, len(micro)
        most = torch.tensor(float(len(micro)), device=self.device)
        torch.distributed.all_reduce(most, op=torch.distributed.ReduceOp.MAX)
        most = int(most)
        return micro + micro[-1:] * (most - len(micro)), len(micro)

    def on_validation_epoch_end(self):
        s, n = self._val_sum, self._val_n
        if self.trainer.world_size > 1:
            s, n = s.clone(), n.clone()
            torch.distributed.all_reduce(s)
            torch.distributed.all_reduce(n)
        self.log("val/loss", s / n.clamp(min=1.0), prog_bar=True, rank_zero_only=False, sync_dist=False)

    # ---- optimizer ------------------------------------------------------------------------
    def configure_optimizers(self):
        c = self.optim_cfg
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=c.lr, betas=tuple(c.betas), eps=c.eps, weight_decay=c.weight_decay)
        warm, total = c.warmup_steps, max(1, self.max_steps)

        def factor(step: int) -> float:
            if warm and step < warm:
                return (step + 1) / warm
            if c.scheduler == "constant":
                return 1.0
            progress = min(1.0, (step - warm) / max(1, total - warm))
            if c.scheduler == "linear":
                return 1.0 - progress
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- checkpoints: adapter weights + optimizer + RNG, never the frozen base -------------
    def on_save_checkpoint(self, checkpoint):
        trainable = {n for n, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}
        state = torch.get_rng_state()
        # every rank's generator (LoRA dropout draws differ per rank): Lightning builds the checkpoint
        # on every rank and rank zero writes it, so gather them here for an exact multi-rank resume
        per_rank = [state]
        if self.trainer.world_size > 1 and torch.distributed.is_initialized():
            per_rank = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(per_rank, state)
        checkpoint["rolecraft_rng"] = {"torch": state, "torch_per_rank": per_rank, "train_tokens": self.train_tokens,
                                       "samples_seen": self.samples_seen}

    def on_load_checkpoint(self, checkpoint):
        extra = checkpoint.get("rolecraft_rng")
        if extra:
            per_rank = extra.get("torch_per_rank") or []
            rank = self.trainer.global_rank if self.trainer is not None else 0
            same_world = self.trainer is not None and len(per_rank) == self.trainer.world_size
            torch.set_rng_state(per_rank[rank] if same_world else extra["torch"])
            self.train_tokens = int(extra.get("train_tokens", 0))
            seen = extra.get("samples_seen")
            if seen is None:  # a checkpoint from before samples were counted: every step takes a full batch per rank
                world = self.trainer.world_size if self._trainer is not None else 1
                seen = int(checkpoint.get("global_step", 0)) * self.optim_cfg.batch_size * world
            self.samples_seen = int(seen)
