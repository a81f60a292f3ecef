"""What a W&B run records, for train.py and evaluate.py alike.

The config is the resolved, redacted config plus ``_hydra`` (the overrides as typed and the
config-group choices), so `rolecraft report --wandb` can lay W&B runs out exactly like local run
directories. The group defaults to the experiment (the first tag a sweep sets), metrics get
``define_metric`` summaries, predictions go in as a ``wandb.Table``, and with
``logger.wandb.log_model=true`` the adapter as a model artifact.
"""

from __future__ import annotations

from pathlib import Path

# summary of each metric across the run (W&B keeps "last" otherwise)
SUMMARIES = {"val/loss": "min", "train/loss": "last"}


def hydra_record() -> dict:
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
    except Exception:  # noqa: BLE001 - not inside a Hydra run (tests composing by hand)
        return {}
    return {"overrides": list(hc.overrides.task),
            "choices": {k: str(v) for k, v in hc.runtime.choices.items() if not k.startswith("hydra/")}}


def run_config(cfg) -> dict:
    from omegaconf import OmegaConf

    from rolecraft.rundir import redact, redact_override

    out = redact(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    rec = hydra_record()
    if rec.get("overrides"):  # a secret typed on the command line stays out too
        rec["overrides"] = [redact_override(o) for o in rec["overrides"]]
    out["_hydra"] = rec
    from rolecraft.provenance import read as read_provenance

    prov = read_provenance(cfg.paths.output_dir) if cfg.get("paths") is not None else None
    if prov:  # written at the start of the run: base model, data hashes, code version
        out["_provenance"] = prov
    return out


def group_of(cfg) -> str | None:
    w = cfg.logger.wandb
    return w.group or (str(cfg.tags[0]) if cfg.tags else None)


def define_metrics(run) -> None:
    for name, summary in SUMMARIES.items():
        run.define_metric(name, summary=summary)


def log_results(run, metrics: dict, rows: list[dict], adapter: Path | None = None) -> None:
    """Final metrics into the summary, predictions as a table, the adapter as an artifact."""
    import wandb

    for k, v in metrics.items():
        if isinstance(v, (int, float, str)) and not isinstance(v, bool):
            run.summary[k] = v
    if rows:
        cols = [c for c in ("id", "key", "character", "kind", "question", "prediction", "rouge_l", "rpcs")
                if any(c in r for r in rows)]
        run.log({"predictions": wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])})
    if adapter is not None and adapter.is_dir():
        art = wandb.Artifact(f"adapter-{run.id}", type="model",
                             metadata={k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        art.add_dir(str(adapter))
        run.log_artifact(art)
