"""`python evaluate.py ...` / `rolecraft-evaluate ...`: score answers on a benchmark.

As with train.py, only hydra/omegaconf load until the config has composed.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from rolecraft import config as _schema
from rolecraft.paths import config_dir

_schema.register("evaluate_schema")  # only ours: see config.register


@hydra.main(config_path=config_dir(), config_name="evaluate", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float | None:
    from rolecraft.config_checks import one_line, scrub_hydra_records
    from rolecraft.errors import RolecraftError

    scrub_hydra_records()  # Hydra recorded the command line before this task started
    from rolecraft.console import setup

    setup(quiet=cfg.quiet)  # logs on stderr once, known-harmless noise filtered
    try:
        from rolecraft.evaluation.run import run

        metrics = run(cfg)
    except RolecraftError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    return metrics.get("rouge_l/avg")


def main() -> None:
    from rolecraft.paths import quote_non_ascii_overrides

    from rolecraft.config_checks import refuse_secret_command_line

    refuse_secret_command_line(sys.argv[1:])  # before Hydra writes the command line to .hydra/
    sys.argv[1:] = quote_non_ascii_overrides(sys.argv[1:])
    from rolecraft.hydra_help import maybe_print_help

    if maybe_print_help("evaluate", sys.argv[1:]):  # only evaluate's own groups, without Hydra's slow listing
        return
    _hydra_main()


if __name__ == "__main__":
    main()
