"""What a loaded causal LM's forward accepts: the fast paths ask before they use a keyword.

Cheap (signature inspection only) and free of torch/lightning imports of its own, so both the
training module and the generation path can use it.
"""

from __future__ import annotations

import inspect


def _forward_parameters(model) -> set[str]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under a peft wrapper
    return set(inspect.signature(base.forward).parameters)


def accepts_logits_to_keep(model) -> bool:
    """Whether the model can project selected positions only onto the vocabulary (transformers'
    ``logits_to_keep``; remote-code models such as ChatGLM3 cannot)."""
    return "logits_to_keep" in _forward_parameters(model)


def cache_kwarg(model) -> str:
    """transformers 5 calls the KV cache argument ``cache``; earlier versions ``past_key_values``."""
    return "cache" if "cache" in _forward_parameters(model) else "past_key_values"


def is_native_transformers(model) -> bool:
    """A model class shipped by transformers itself (remote-code classes live in
    ``transformers_modules.*`` and may use legacy tuple caches or ignore position ids)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__module__.startswith("transformers.")
