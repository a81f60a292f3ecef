"""Where the shipped Hydra configs live: inside the installed package, or conf/ of a checkout."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> str:
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"RoleCraft configs not found in {here / 'conf'} or {here.parent.parent / 'conf'}")
