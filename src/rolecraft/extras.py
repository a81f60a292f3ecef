"""Which optional install extra a feature needs, checked before anything heavy is imported.

The core install (config, data, construction, API evaluation, reports) runs without the
deep-learning stack; training and local models need ``rolecraft[train]``. A missing extra is one
line that names the command, the missing packages and the pip command, instead of an ImportError
from deep inside a run.
"""

from __future__ import annotations

import importlib.util

from rolecraft.errors import ConfigError

# extra -> the import names it provides (the distribution names are in pyproject.toml)
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("torch", "lightning", "transformers", "peft", "tokenizers", "huggingface_hub", "datasets"),
    "data": ("datasets",),
    "embed": ("sentence_transformers",),
    "wandb": ("wandb",),
    "report": ("matplotlib",),
}


def missing(extra: str) -> list[str]:
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]


def require(extra: str, what: str) -> None:
    """Raise a one-line ConfigError when ``extra``'s packages are not installed."""
    absent = missing(extra)
    if absent:
        raise ConfigError(f"{what} needs the '{extra}' extra ({', '.join(absent)} not installed): "
                          f"pip install 'rolecraft[{extra}]' (or '.[{extra}]' in a checkout)")
