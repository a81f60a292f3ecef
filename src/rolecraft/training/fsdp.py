"""``trainer.strategy=fsdp``: FSDP2 data parallelism through Lightning's ModelParallelStrategy.

Why this and not Lightning's ``FSDPStrategy`` (FSDP1): FSDPStrategy requires CUDA (it refuses
``accelerator=cpu``), and its flat-parameter state-dict hooks broke peft's adapter export (the
reason ``trainer=fsdp`` used to refuse to run). FSDP2's ``fully_shard`` keeps every parameter a
``DTensor`` under its own name, runs on CPU over gloo as on GPUs over nccl, and gathers with
``DTensor.full_tensor()``.

What this subclass changes:
- the mesh is pure data parallelism: every process one data-parallel rank (no tensor parallelism);
- checkpoints are single files (``save_distributed_checkpoint=False``, through the run's
  ``AtomicCheckpointIO``) holding only the trainable (LoRA) parameters, gathered on rank zero:
  Lightning's own version gathers the whole model, frozen base included, onto rank zero's CPU at
  every save (14 GB for a 7B base), only for ``RolePlayModule.on_save_checkpoint`` to drop it;
- the optimizer state in those files is keyed as ``torch.optim.Optimizer.state_dict()`` keys it, so
  checkpoints cross between trainer=gpu/ddp and trainer=fsdp;
- the module shards itself in ``configure_model`` (``rolecraft.modeling.sharding``) when the
  strategy says ``shards_model``.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import ModelParallelStrategy
from typing_extensions import override

from rolecraft.modeling.sharding import gathered_trainable


class ShardedStrategy(ModelParallelStrategy):
    shards_model = True

    def __init__(self, process_group_backend: str | None = None) -> None:
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1, save_distributed_checkpoint=False,
                         process_group_backend=process_group_backend)

    @override
    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes  # every process: one data-parallel rank
        self._tensor_parallel_size = 1
        super().setup_environment()

    @override
    def lightning_module_state_dict(self) -> dict[str, Any]:
        assert self.model is not None
        return gathered_trainable(self.model, rank0_only=True)

    # ---- optimizer state in the unsharded format ---------------------------------------------
    # Lightning's ModelParallelStrategy keys the gathered optimizer state by the position of each
    # parameter among *all* the module's parameters (frozen included), which no other strategy
    # reads. Here it is keyed as torch.optim.Optimizer.state_dict() keys it, by position in the
    # optimizer's own parameter list, so a checkpoint written by trainer=gpu/ddp resumes under
    # trainer=fsdp and the other way round.
    def _optimizer_names(self, optimizer) -> list[str]:
        assert self.model is not None
        name_of = {id(p): n for n, p in self.model.named_parameters()}
        return [name_of[id(p)] for group in optimizer.param_groups for p in group["params"]]

    @override
    def optimizer_state(self, optimizer) -> dict[str, Any]:
        from lightning.pytorch.core.optimizer import LightningOptimizer
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        if isinstance(optimizer, LightningOptimizer):
            optimizer = optimizer._optimizer
        full = get_optimizer_state_dict(self.model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.global_rank != 0:
            return {}
        index = {n: i for i, n in enumerate(self._optimizer_names(optimizer))}
        return {"state": {index[n]: s for n, s in full["state"].items()},
                "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in full["param_groups"]]}

    @override
    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict[str, Any]:
        import torch
        from lightning.fabric.strategies.model_parallel import _load_raw_module_state
        from pathlib import Path
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        path = Path(self.broadcast(checkpoint_path))
        checkpoint = torch.load(path, mmap=True, map_location="cpu", weights_only=False)
        assert self.model is not None and self.lightning_module is not None
        _load_raw_module_state(checkpoint.pop("state_dict"), self.model, strict=self.lightning_module.strict_loading)
        for optimizer, saved in zip(self.optimizers, checkpoint.get("optimizer_states", [])):
            names = self._optimizer_names(optimizer)
            state = {"state": {names[int(i)]: s for i, s in saved["state"].items()},
                     "param_groups": [{**g, "params": [names[int(i)] for i in g["params"]]} for g in saved["param_groups"]]}
            set_optimizer_state_dict(self.model, optimizer, optim_state_dict=state,
                                     options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
        return checkpoint
