"""What a run directory holds besides the adapter: resolved config (redacted), metrics, predictions."""

from __future__ import annotations

import re
from pathlib import Path

SECRET_KEY = re.compile(r"(^|_)(api_?key|token|secret|password|authorization)$", re.I)


def redact(obj):
    """Replace the values of secret-looking keys (api_key, hf_token, password ...)."""
    if isinstance(obj, dict):
        return {k: ("***" if SECRET_KEY.search(str(k)) and v not in (None, "")
                    else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def write_config(cfg, out: Path) -> None:
    from omegaconf import OmegaConf

    from rolecraft.fileio import write_text

    resolved = redact(OmegaConf.to_container(cfg, resolve=True))
    write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(resolved)))
