"""`python train.py ...` / `rolecraft-train ...`: compose the config, then train and evaluate.

Only hydra/omegaconf are imported until the config has composed, so `--help`, `--cfg job` and
typos in keys or group options answer in well under a second.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from rolecraft import config as _schema
from rolecraft.paths import config_dir

_schema.register("train_schema")  # only ours: see config.register


@hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float | None:
    from rolecraft.config_checks import one_line, scrub_hydra_records
    from rolecraft.errors import RolecraftError

    scrub_hydra_records()  # Hydra recorded the command line before this task started
    from rolecraft.console import setup

    setup(quiet=cfg.quiet)  # logs on stderr once, known-harmless noise filtered
    try:
        from rolecraft.training.run import run  # run() range-checks every value before anything heavy loads

        metrics = run(cfg)
    except RolecraftError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    # a number for Hydra sweepers (e.g. Optuna) to optimise
    return None if metrics is None else metrics.get("test/rouge_l/avg")


def main() -> None:
    from rolecraft.paths import quote_non_ascii_overrides

    from rolecraft.config_checks import refuse_secret_command_line

    refuse_secret_command_line(sys.argv[1:])  # before Hydra writes the command line to .hydra/
    sys.argv[1:] = quote_non_ascii_overrides(sys.argv[1:])
    from rolecraft.hydra_help import maybe_print_help

    if maybe_print_help("train", sys.argv[1:]):  # only train's own groups, without Hydra's slow listing
        return
    _hydra_main()


if __name__ == "__main__":
    main()
