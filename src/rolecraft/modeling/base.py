"""Load a base causal LM and its tokenizer: hub id, local directory or "embedded:tiny"."""

from __future__ import annotations

import os
from pathlib import Path

from rolecraft.errors import ConfigError
from rolecraft.modeling.tiny import EMBEDDED_PREFIX, ensure_embedded

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16", "auto": "auto"}


def resolve_model_path(name_or_path: str, cache_dir: str | Path) -> str:
    """A local directory for embedded models and paths; hub ids pass through unchanged.

    A value that looks like a path (absolute, ./, ../, ~) but does not exist fails here, before
    any download is attempted.
    """
    if name_or_path.startswith(EMBEDDED_PREFIX):
        name = name_or_path[len(EMBEDDED_PREFIX):]
        try:
            return str(ensure_embedded(name, cache_dir))
        except ValueError as e:
            raise ConfigError(f"model.name_or_path={name_or_path!r}: {e}") from None
    expanded = os.path.expanduser(name_or_path)
    looks_local = name_or_path.startswith(("/", "./", "../", "~")) or os.path.exists(expanded)
    if looks_local:
        if not os.path.isdir(expanded):
            raise ConfigError(f"model.name_or_path={name_or_path!r}: no such directory; give a saved model "
                              "directory, a hub id such as Qwen/Qwen2.5-7B-Instruct, or embedded:tiny")
        if not os.path.isfile(os.path.join(expanded, "config.json")):
            raise ConfigError(f"model.name_or_path={name_or_path!r}: directory has no config.json "
                              "(is it a save_pretrained directory?)")
        return os.path.abspath(expanded)
    return name_or_path


def load_tokenizer(path: str, model_cfg):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=model_cfg.trust_remote_code,
                                        revision=model_cfg.revision)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, model_cfg):
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"trust_remote_code": model_cfg.trust_remote_code, "revision": model_cfg.revision}
    if model_cfg.dtype not in DTYPES:
        raise ConfigError(f"model.dtype={model_cfg.dtype!r}: use one of {', '.join(DTYPES)}")
    kwargs["dtype"] = model_cfg.dtype if model_cfg.dtype == "auto" else getattr(torch, model_cfg.dtype)
    if model_cfg.attn_implementation:
        kwargs["attn_implementation"] = model_cfg.attn_implementation
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def load_base(model_cfg, cache_dir: str | Path):
    """(model, tokenizer, resolved path). Errors are one line naming the key and value."""
    path = resolve_model_path(model_cfg.name_or_path, cache_dir)
    try:
        tok = load_tokenizer(path, model_cfg)
        model = load_model(path, model_cfg)
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"model.name_or_path={model_cfg.name_or_path!r} could not be loaded ({first}); "
                          "offline machines need a local copy (set model.name_or_path to its directory)") from None
    return model, tok, path


def stop_token_ids(tokenizer, model_cfg) -> list[int]:
    """eos plus the preset's end-of-turn tokens that exist in this vocabulary."""
    ids = []
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    for t in model_cfg.stop_tokens:
        tid = tokenizer.convert_tokens_to_ids(t)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids
