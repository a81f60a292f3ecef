"""FSDP2 (torch's per-parameter ``fully_shard``) for a peft LoRA model, and gathering it back.

Used by ``trainer.strategy=fsdp`` (``rolecraft.training.fsdp.ShardedStrategy``). Each decoder layer
is one FSDP unit (its frozen base weights and its LoRA matrices together: FSDP2 shards every
parameter on dim 0, frozen or not, so mixing them in one unit is fine), and the transformers model
is the root unit (embeddings, final norm, lm_head). Parameter names do not change (no
``_fsdp_wrapped_module`` prefixes as in FSDP1), so checkpoints, ``save_pretrained`` and resumed runs
see the same keys as unsharded training.
"""

from __future__ import annotations

import torch


def is_sharded(model) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def _mixed_precision(model):
    """A bf16 base with peft's fp32 LoRA matrices: gather and compute the LoRA matrices in the base's
    dtype too (what autocast does to their matmuls anyway; it also keeps peft from casting every
    activation entering a LoRA layer to fp32), keep fp32 shards for the optimizer and reduce the
    gradients in fp32. A uniform model is left as it is."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if len(dtypes) <= 1:
        return MixedPrecisionPolicy()
    low = min(dtypes, key=lambda d: torch.finfo(d).bits)
    return MixedPrecisionPolicy(param_dtype=low, reduce_dtype=torch.float32)


def fully_shard_model(model, mesh) -> int:
    """Shard ``model`` (a peft model) over ``mesh`` in place; returns the number of FSDP units.
    Idempotent: Lightning calls ``configure_model`` once per fit/validate/test."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    from rolecraft.modeling.compile import decoder_layers

    root = model.get_base_model() if hasattr(model, "get_base_model") else model
    if isinstance(root, FSDPModule):
        return 0
    mp = _mixed_precision(model)
    layers = decoder_layers(model)
    units = 0
    for layer in layers if layers is not None else []:
        fully_shard(layer, mesh=mesh, mp_policy=mp)
        units += 1
    # the root's parameters are needed again at once by the backward: keep them gathered
    fully_shard(root, mesh=mesh, mp_policy=mp, reshard_after_forward=False)
    return units + 1


def gathered_trainable(module, rank0_only: bool = True) -> dict[str, torch.Tensor]:
    """Full (unsharded) CPU copies of the trainable parameters, by name. A collective under FSDP:
    every rank must call it; with ``rank0_only`` the other ranks get an empty dict."""
    from torch.distributed.tensor import DTensor

    rank = torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0
    out = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        full = p.full_tensor() if isinstance(p, DTensor) else p
        if rank == 0 or not rank0_only:
            out[name] = full.detach().to("cpu", copy=True)
    return out


def clip_grad_norm(params, max_norm: float) -> torch.Tensor:
    """Clip by the global L2 norm of all gradients: over every rank's shards under FSDP (the norm
    of DTensor gradients is reduced across the mesh), the plain norm otherwise. Returns the norm
    before clipping."""
    from torch.distributed.tensor import DTensor

    params = [p for p in params if p.grad is not None]
    if not params:
        return torch.zeros(())
    total = torch.nn.utils.get_total_norm([p.grad for p in params], norm_type=2.0)
    if isinstance(total, DTensor):
        total = total.full_tensor()
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total
