"""Load a base causal LM and its tokenizer: hub id, local directory or "embedded:tiny"."""

from __future__ import annotations

import logging
import math
import os
import threading
from pathlib import Path

from rolecraft.errors import ConfigError
from rolecraft.modeling.tiny import EMBEDDED_PREFIX, ensure_embedded

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16", "auto": "auto"}

log = logging.getLogger("rolecraft")

# The longest any one request to the hub may wait for an answer (connect, or the next bytes of a
# reply). huggingface_hub's own `model_info` (reached from `from_pretrained`) has no read timeout at
# all, so a hub that accepts and never answers would hang a run forever.
HUB_TIMEOUT_ENV = "ROLECRAFT_HUB_TIMEOUT"
DEFAULT_HUB_TIMEOUT = 60.0


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


def resolve_base(model_cfg, cache_dir: str | Path) -> str:
    """:func:`resolve_model_path` of a model preset: with ``model.tiny=true``, the directory of the
    preset's architecture twin (built on first use; rolecraft.modeling.twins)."""
    from rolecraft.modeling.twins import ensure_twin, wants_twin

    if wants_twin(model_cfg):
        return str(ensure_twin(model_cfg, cache_dir))
    return resolve_model_path(model_cfg.name_or_path, cache_dir)


def base_reference(model_cfg) -> str:
    """What adapter_config.json records as the base: the hub id or embedded name, ``twin:<preset>`` for a
    twin (never a machine path, which breaks when folders move)."""
    from rolecraft.modeling.twins import wants_twin

    return f"twin:{model_cfg.name}" if wants_twin(model_cfg) else str(model_cfg.name_or_path)


def hub_timeout() -> float:
    """Seconds from ``ROLECRAFT_HUB_TIMEOUT`` (default 60)."""
    raw = os.environ.get(HUB_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_HUB_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{HUB_TIMEOUT_ENV}={raw!r}: give a positive number of seconds (default {DEFAULT_HUB_TIMEOUT:g})")
    return value


def bound_hub_requests(seconds: float) -> None:
    """Make every request huggingface_hub sends wait at most ``seconds`` for an answer.

    - HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT (read once, when huggingface_hub is imported,
      into ``huggingface_hub.constants``) are set to ``seconds`` unless the user set them;
    - calls that pass no timeout at all (``model_info``: ``timeout=None`` means "wait forever" to
      httpx) or a longer one (the 60 s metadata retry) are capped by a request hook on the shared
      client, which every huggingface_hub call goes through.
    A download that keeps receiving bytes is not cut: the read timeout bounds each wait, not the file.
    """
    from huggingface_hub import constants, set_client_factory
    from huggingface_hub.utils import _http

    for name in ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT"):
        if not os.environ.get(name):
            setattr(constants, name, max(1, math.ceil(seconds)))
    previous = _http._GLOBAL_CLIENT_FACTORY
    if getattr(previous, "rolecraft_hub_timeout", None) == seconds:
        return
    previous = getattr(previous, "rolecraft_wrapped", previous)

    def cap(request) -> None:
        t = dict(request.extensions.get("timeout") or {})
        for key in ("connect", "read", "write", "pool"):
            t[key] = seconds if t.get(key) is None else min(float(t[key]), seconds)
        request.extensions["timeout"] = t

    def factory():
        client = previous()
        client.event_hooks["request"].append(cap)
        return client

    factory.rolecraft_hub_timeout = seconds
    factory.rolecraft_wrapped = previous
    set_client_factory(factory)


def is_hub_id(path: str) -> bool:
    return not os.path.isabs(path) and not os.path.exists(path)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true")


def check_hub_answers(model_cfg, seconds: float) -> None:
    """Ask the hub about the model once, bounded, before the long load: a hub that does not answer
    is a one-line error naming the model within about ``seconds``, not a hang. Run in a daemon
    thread under a watchdog too, for the parts no HTTP timeout covers (name resolution). Other
    failures (refused, offline) are left to the load, which may still find the files in the cache."""
    from huggingface_hub import constants

    name = model_cfg.name_or_path
    outcome: dict = {}

    def ask() -> None:
        try:
            from huggingface_hub import HfApi

            HfApi().model_info(name, revision=model_cfg.revision, timeout=seconds)
            outcome["ok"] = True
        except BaseException as e:  # reported by the waiting thread
            outcome["error"] = e

    t = threading.Thread(target=ask, name="rolecraft-hub-check", daemon=True)
    t.start()
    t.join(seconds + 5.0)
    err = outcome.get("error")
    stalled = t.is_alive() or (err is not None and "timeout" in type(err).__name__.lower())
    if not stalled:
        return
    if _cached(name, model_cfg.revision):
        log.warning("model.name_or_path=%r: the hub at %s did not answer within %gs; loading the cached copy",
                    name, constants.ENDPOINT, seconds)
        return
    raise ConfigError(f"model.name_or_path={name!r}: the hub at {constants.ENDPOINT} did not answer within {seconds:g}s "
                      f"({HUB_TIMEOUT_ENV}); check the network and HF_ENDPOINT, raise {HUB_TIMEOUT_ENV}, or set "
                      "model.name_or_path to a local copy")


def _cached(name: str, revision: str | None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json", revision=revision), str)
    except Exception:
        return False


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

    from rolecraft.modeling.quant import quantization_kwargs

    kwargs = {"trust_remote_code": model_cfg.trust_remote_code, "revision": model_cfg.revision}
    if model_cfg.dtype not in DTYPES:
        raise ConfigError(f"model.dtype={model_cfg.dtype!r}: use one of {', '.join(DTYPES)}")
    kwargs["dtype"] = model_cfg.dtype if model_cfg.dtype == "auto" else getattr(torch, model_cfg.dtype)
    if model_cfg.attn_implementation:
        kwargs["attn_implementation"] = model_cfg.attn_implementation
    kwargs.update(quantization_kwargs(model_cfg))
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def load_base(model_cfg, cache_dir: str | Path):
    """(model, tokenizer, resolved path). Errors are one line naming the key and value."""
    from rolecraft.modeling.quant import check_quantization_runtime

    check_quantization_runtime(model_cfg)  # before anything loads (or downloads)
    path = resolve_base(model_cfg, cache_dir)
    seconds = hub_timeout()
    if is_hub_id(path):
        from huggingface_hub import constants

        bound_hub_requests(seconds)
        where = "the local cache (HF_HUB_OFFLINE)" if _offline() else f"the hub at {constants.ENDPOINT}"
        log.info("model.name_or_path=%r: loading from %s; a first download of a large model takes minutes "
                 "(each hub request waits at most %gs: %s)", model_cfg.name_or_path, where, seconds, HUB_TIMEOUT_ENV)
        if not _offline():
            check_hub_answers(model_cfg, seconds)
    try:
        tok = load_tokenizer(path, model_cfg)
        model = load_model(path, model_cfg)
    except Exception as e:
        if not _is_load_failure(e):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "timeout" in type(e).__name__.lower() or "timed out" in first.lower():
            raise ConfigError(f"model.name_or_path={model_cfg.name_or_path!r}: a hub request got no answer within "
                              f"{seconds:g}s ({first}); check the network and HF_ENDPOINT, raise {HUB_TIMEOUT_ENV}, "
                              "or set model.name_or_path to a local copy") from None
        raise ConfigError(f"model.name_or_path={model_cfg.name_or_path!r} could not be loaded ({first}); "
                          "offline machines need a local copy (set model.name_or_path to its directory)") from None
    return model, tok, path


def _is_load_failure(e: BaseException) -> bool:
    """File and network errors from the hub client (httpx2 errors are not OSErrors)."""
    if isinstance(e, OSError):
        return True
    try:
        import httpx2

        if isinstance(e, httpx2.HTTPError):
            return True
    except ImportError:
        pass
    try:
        from huggingface_hub.errors import HfHubHTTPError

        return isinstance(e, HfHubHTTPError)
    except ImportError:
        return False


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
