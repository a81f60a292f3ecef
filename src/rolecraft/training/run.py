"""One training run: data -> prompts -> LoRA fit -> generation on the test split -> Rouge-L.

Everything the run produces lands in ``cfg.paths.output_dir`` (the Hydra run directory):
config.yaml, metrics.json, predictions.jsonl, adapter/, checkpoints/, logs/.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from rolecraft.errors import ConfigError

log = logging.getLogger("rolecraft")


def _rank_zero() -> bool:
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


def _quiet_known_warnings() -> None:
    import warnings

    # expected with adapter-only checkpoints, manual optimisation and embedded base names
    for pattern in (r".*base_model_name_or_path.*was renamed.*", r".*Could not find a config file in embedded.*",
                    r".*Using ModelCheckpoint with manual optimization.*", r".*is_gradient_checkpointing.*deprecated.*",
                    r".*LeafSpec.*deprecated.*"):
        warnings.filterwarnings("ignore", message=pattern)


def run(cfg) -> dict | None:
    t_start = time.perf_counter()
    _quiet_known_warnings()
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    # -- data (pure Python, fails fast on bad input before torch loads) ----------------------
    from rolecraft.data import resolve_data_root
    from rolecraft.data import schema
    from rolecraft.data.mixing import evaluation_samples, training_samples
    from rolecraft.data.prompts import PromptBuilder

    from rolecraft.training.trainer import check_strategy

    check_strategy(cfg.trainer)
    ds = schema.load(resolve_data_root(cfg.data.root))
    train = training_samples(ds, cfg.data.mix, "train", cfg.data.specific_ratio, cfg.data.train_on_raw,
                             cfg.data.max_train_samples, seed=cfg.seed)
    val = training_samples(ds, cfg.data.mix, "val", None, cfg.data.train_on_raw, seed=cfg.seed)
    test = evaluation_samples(ds, cfg.eval.split, cfg.data.max_eval_samples) if cfg.eval.enabled else []
    if not train:
        raise ConfigError(f"data.mix={cfg.data.mix}: no training samples in {cfg.data.root}")
    from rolecraft.retrieval.index import build_retriever

    prompts = PromptBuilder(ds, emotions=cfg.emotions.enabled, num_exemplars=cfg.data.num_exemplars,
                            retriever=build_retriever(cfg.retrieval, ds, cfg.paths.cache_dir))

    if _rank_zero():
        from rolecraft.rundir import write_config

        write_config(cfg, out)

    # -- model --------------------------------------------------------------------------------
    import lightning as L

    from rolecraft.data.datamodule import RoleDataModule
    from rolecraft.data.tokenize import ChatEncoder
    from rolecraft.modeling.base import load_base
    from rolecraft.modeling.compile import apply_compile
    from rolecraft.modeling.lit_module import RolePlayModule, packed_rows_are_isolated
    from rolecraft.modeling.lora import apply_lora
    from rolecraft.training.trainer import build_trainer

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    base, tok, model_path = load_base(cfg.model, cfg.paths.cache_dir)
    base.train()  # transformers 5 returns models in eval mode
    encoder = ChatEncoder(tok, cfg.data.max_source_length, cfg.data.max_target_length, cfg.model.chat_template)
    train_rows = [encoder.encode(prompts.messages(s, s.references[0]), s.id) for s in train]
    val_rows = [encoder.encode(prompts.messages(s, s.references[0]), s.id) for s in val]
    model = apply_lora(base, cfg.lora, cfg.model, cfg.model.name_or_path)

    packing = cfg.data.packing
    if packing and not packed_rows_are_isolated(model):
        log.warning("data.packing=true: %s lets packed samples attend to each other (it does not mask by "
                    "position ids); training on padded micro-batches instead", type(base).__name__)
        packing = False
    apply_compile(model, cfg.trainer.compile)
    pack_length = cfg.data.pack_length or (cfg.data.max_source_length + cfg.data.max_target_length)
    dm = RoleDataModule(train_rows, val_rows, tok.pad_token_id, cfg.optim.batch_size, cfg.optim.micro_batch_size,
                        cfg.seed, cfg.data.group_by_length, cfg.data.num_workers, packing, pack_length)
    module = RolePlayModule(model, cfg.optim, cfg.trainer.max_steps, cfg.trainer.label_logits_only)
    trainer = build_trainer(cfg, out)
    if not val_rows:
        trainer.limit_val_batches = 0
    t_fit = time.perf_counter()
    log.info("import-to-fit %.1fs", t_fit - t_start)
    trainer.fit(module, datamodule=dm, ckpt_path=cfg.ckpt_path)
    fit_s = time.perf_counter() - t_fit
    if not trainer.is_global_zero:
        return None

    # -- export and evaluate (rank zero) -----------------------------------------------------
    model.save_pretrained(str(out / "adapter"))
    metrics: dict = {
        "train/loss": module.last_train_loss,
        "train/steps": int(trainer.global_step),
        "train/world_size": int(trainer.world_size),
        "train/samples": len(train_rows),
        "train/tokens": module.train_tokens,
        "train/fit_seconds": round(fit_s, 3),
        "data/truncated_prompts": encoder.truncated.prompts,
        "data/truncated_responses": encoder.truncated.responses,
    }
    if "val/loss" in trainer.callback_metrics:
        metrics["val/loss"] = float(trainer.callback_metrics["val/loss"])
    if test:
        metrics.update(evaluate_split(cfg, module.model, tok, encoder, prompts, test, out))
    if module.first_step_seconds is not None:
        metrics["time/launch_to_first_step_seconds"] = round(module.first_step_seconds, 3)
    metrics["time/total_seconds"] = round(time.perf_counter() - t_start, 3)
    from rolecraft.fileio import write_json

    _log_metrics(trainer, metrics)
    _log_wandb(cfg, trainer, metrics, out)
    write_json(out / "metrics.json", metrics)  # last: a run directory with metrics.json is a finished run
    summary = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items() if "/options/" not in k}
    print(json.dumps(summary, ensure_ascii=False))
    return metrics


def evaluate_split(cfg, model, tok, encoder, prompts, samples, out: Path) -> dict:
    """Greedy answers for ``samples``, Rouge-L per kind, predictions.jsonl."""
    import torch

    from rolecraft.evaluation.generate import generate
    from rolecraft.evaluation.metrics import score_predictions
    from rolecraft.evaluation.rouge import RougeOptions
    from rolecraft.fileio import write_jsonl
    from rolecraft.modeling.base import stop_token_ids

    if torch.cuda.is_available() and cfg.trainer.accelerator in ("gpu", "cuda", "auto"):
        model.to("cuda")
    truncated_before = encoder.truncated.prompts
    ids = [encoder.prompt_ids(prompts.messages(s), s.id) for s in samples]
    t0 = time.perf_counter()
    preds = generate(model, tok, ids, cfg.eval.generation, stop_token_ids(tok, cfg.model),
                     batch_size=cfg.eval.batch_size, seed=cfg.seed)
    gen_s = time.perf_counter() - t0
    rows = [{"id": s.id, "character": s.character, "kind": s.kind, "question": s.instruction,
             "prompt": tok.decode(p, skip_special_tokens=False), "prediction": pred,
             "references": s.references} for s, p, pred in zip(samples, ids, preds)]
    r = cfg.eval.rouge
    m = score_predictions(rows, RougeOptions(r.tokenizer, r.stat, r.references, r.postprocess),
                          prefix=cfg.eval.split)
    write_jsonl(out / "predictions.jsonl", rows)
    m[f"{cfg.eval.split}/truncated_prompts"] = encoder.truncated.prompts - truncated_before
    m[f"{cfg.eval.split}/generation_seconds"] = round(gen_s, 3)
    return m


def _log_wandb(cfg, trainer, metrics: dict, out: Path) -> None:
    from lightning.pytorch.loggers import WandbLogger

    for lg in trainer.loggers:
        if isinstance(lg, WandbLogger):
            from rolecraft.fileio import read_jsonl
            from rolecraft.tracking import log_results

            preds = out / "predictions.jsonl"
            rows = [obj for _, obj in read_jsonl(preds)] if preds.is_file() else []
            log_results(lg.experiment, metrics, rows, out / "adapter" if cfg.logger.wandb.log_model else None)


def _log_metrics(trainer, metrics: dict) -> None:
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for lg in trainer.loggers:
        lg.log_metrics(numeric, step=trainer.global_step)
        lg.save()
