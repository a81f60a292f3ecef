"""`trainer.compile=layers`: torch.compile each decoder layer (LoRA included) in place.

Per layer rather than the whole model: the layers are identical, so one graph serves all of them,
compilation stays short, and the lm_head/loss and generation code stay eager. In place
(`Module.compile`), so parameter names, checkpoints and the saved adapter are unchanged. Measured on
an H200 (README, GPU table): +37% tokens/s for a 1.2 B model, LoRA's elementwise work being
memory-bound in eager mode.
"""

from __future__ import annotations

from rolecraft.errors import ConfigError

MODES = ("none", "layers")


def decoder_layers(model):
    """The decoder's layer list: transformers' get_decoder().layers, else the longest ModuleList of
    identical blocks (remote-code models)."""
    import torch.nn as nn

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if isinstance(layers, nn.ModuleList) and len(layers):
        return layers
    lists = [m for m in base.modules() if isinstance(m, nn.ModuleList) and len(m)
             and len({type(c) for c in m}) == 1]
    return max(lists, key=len) if lists else None


def apply_compile(model, mode: str) -> int:
    """Compile per ``mode``; returns the number of modules compiled."""
    if mode not in MODES:
        raise ConfigError(f"trainer.compile={mode!r}: use one of {', '.join(MODES)}")
    if mode == "none":
        return 0
    layers = decoder_layers(model)
    if layers is None:
        raise ConfigError(f"trainer.compile=layers: found no decoder layer list in {type(model).__name__}; "
                          "use trainer.compile=none")
    for layer in layers:
        layer.compile()
    return len(layers)
