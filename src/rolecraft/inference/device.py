"""The one place that decides where a local model runs."""

from __future__ import annotations


def pick_device(requested: str | None = None, accelerator: str | None = None) -> str:
    """``requested`` wins (cpu, cuda, cuda:1 …); else CUDA when available and the run's
    accelerator allows it (a ``trainer.accelerator=cpu`` run evaluates on the CPU it trained on)."""
    import torch

    if requested:
        return requested
    if accelerator not in (None, "gpu", "cuda", "auto"):
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"
