"""Where a model comes from: a base preset (local dir, hub id, embedded:tiny), a finished
train.py run (its adapter on its base), or an endpoint. Each returns an engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rolecraft.errors import ConfigError


@dataclass
class TrainedRun:
    """A finished train.py run, loaded: the peft model, its tokenizer and the run's config."""

    path: Path
    model: object
    tokenizer: object
    config: object  # the run's config.yaml as an OmegaConf node


def check_trained_run(run_dir: str | Path, what: str = "answers.path") -> Path:
    run = Path(str(run_dir)).expanduser()
    if not (run / "config.yaml").is_file() or not (run / "adapter" / "adapter_config.json").is_file():
        raise ConfigError(f"{what}={str(run_dir)!r}: not a finished train.py run (needs config.yaml and "
                          "adapter/adapter_config.json)")
    return run


def load_run(run_dir: str | Path, cache_dir: str, what: str = "answers.path", unquantized: bool = False) -> TrainedRun:
    """``unquantized``: load the base at full precision even when the run trained it quantized (QLoRA),
    as exporting and merging want."""
    from omegaconf import OmegaConf
    from peft import PeftModel

    from rolecraft.modeling.base import load_base

    run = check_trained_run(run_dir, what)
    run_cfg = OmegaConf.load(run / "config.yaml")
    model_cfg = run_cfg.model
    if unquantized and str(model_cfg.get("quantization", "none") or "none") != "none":
        model_cfg = OmegaConf.merge(model_cfg, {"quantization": "none"})
    base, tok, _ = load_base(model_cfg, cache_dir)
    from rolecraft.console import harmless_warnings_silenced

    with harmless_warnings_silenced():  # peft reads a deprecated transformers attribute
        model = PeftModel.from_pretrained(base, str(run / "adapter"))
    model.eval()
    return TrainedRun(run, model, tok, run_cfg)


def run_engine(trained: TrainedRun, device: str | None, max_source_length: int | None = None):
    """An engine over a trained run, with the prompt limits it trained with."""
    from rolecraft.inference.engines import LocalEngine

    limit = max_source_length or trained.config.data.max_source_length
    return LocalEngine(trained.model, trained.tokenizer, trained.config.model, device, limit)


def model_engine(model_cfg, cache_dir: str, device: str | None, max_source_length: int):
    from rolecraft.inference.engines import LocalEngine
    from rolecraft.modeling.base import load_base

    model, tok, _ = load_base(model_cfg, cache_dir)
    model.eval()
    return LocalEngine(model, tok, model_cfg, device, max_source_length)


def api_cache_path(cache_dir: str) -> Path:
    return Path(str(cache_dir)).expanduser() / "api_cache.sqlite"


def endpoint_engine(endpoint_cfg, where: str, model: str, cache_dir: str, progress: bool = True):
    from rolecraft.api.client import Endpoint
    from rolecraft.inference.engines import EndpointEngine

    return EndpointEngine(Endpoint(endpoint_cfg, where, api_cache_path(cache_dir), progress=progress), model)
