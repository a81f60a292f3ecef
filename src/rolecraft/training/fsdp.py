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
