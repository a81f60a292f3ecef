"""One training run: data -> prompts -> LoRA fit -> evaluation of the trained model.

Everything the run produces lands in ``cfg.paths.output_dir`` (the Hydra run directory, in the
format of ``rolecraft.rundir``): config.yaml, prompt.yaml, metrics.json, samples.jsonl, adapter/,
checkpoints/, logs/. The end-of-run evaluation is the evaluation package's, called on the trained
model through the inference layer, so ``evaluate.py answers=run`` reproduces it exactly.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from rolecraft.errors import ConfigError

log = logging.getLogger("rolecraft")

RUN_LOCK = ".rolecraft.lock"  # in the run directory, held by the run writing it


def _rank_zero() -> bool:
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


_jobs_in_process = 0


def job_started() -> float:
    """The origin of this job's ``time/`` keys (a ``time.perf_counter()`` value). For the first
    job of a process it is the launch (``rolecraft.STARTED``: imports and config composition are
    waited for too); a Hydra multirun runs its later jobs one after another in the same process,
    and each of those starts its own clock, so every job's timings share one origin and
    ``launch_to_first_step <= total`` holds in each."""
    global _jobs_in_process
    import rolecraft

    now = time.perf_counter()
    _jobs_in_process += 1
    return rolecraft.STARTED if _jobs_in_process == 1 else now


def run(cfg) -> dict | None:
    t_start = job_started()
    from rolecraft.config_checks import check_train

    check_train(cfg)  # values range-checked before anything is written or loaded
    from rolecraft.extras import require

    require("train", "python train.py")  # one line on a core-only install, before any import fails
    from rolecraft.modeling.quant import check_quantization_runtime, quantization

    if quantization(cfg.model) != "none":  # CUDA or a working CPU backend, before anything loads
        check_quantization_runtime(cfg.model, cfg.trainer.accelerator)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    lock = _hold_run_lock(out) if _rank_zero() else None
    try:
        return _run(cfg, out, t_start)
    finally:
        if lock is not None:
            lock.release(force=True)


def _hold_run_lock(out: Path):
    """The run directory's lock, held while this run writes there: `sweep run-local` never clears
    a directory whose lock is held, and a second run into the same directory stops here."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(out / RUN_LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"{out}: another run is writing this directory (it holds {RUN_LOCK}); wait for it to end "
                          "or choose another hydra.run.dir") from None
    return lock


def _run(cfg, out: Path, t_start: float) -> dict | None:
    from rolecraft.console import silence_known_noise

    silence_known_noise()  # also when run() is called from Python, not train.py

    # -- data (pure Python, fails fast on bad input before torch loads) ----------------------
    from rolecraft.data import resolve_data_root
    from rolecraft.data import schema
    from rolecraft.data.mixing import training_samples
    from rolecraft.data.prompts import PromptSpec
    from rolecraft.retrieval.index import prompt_builder

    from rolecraft.training.trainer import check_strategy

    check_strategy(cfg.trainer)
    from rolecraft.training.checkpoints import validate_checkpoint

    validate_checkpoint(cfg.ckpt_path)  # a bad checkpoint is named now, not after the model has loaded
    ds = schema.load(resolve_data_root(cfg.data.root))
    from rolecraft.data.dialogue import add_script_dialogue

    add_script_dialogue(ds, cfg.data, bool(cfg.prompt.emotions))  # data.dialogue=on: the script's scene windows
    train = training_samples(ds, cfg.data.mix, "train", cfg.data.specific_ratio, cfg.data.train_on_raw,
                             cfg.data.max_train_samples, seed=cfg.seed, dialogue=cfg.data.dialogue,
                             dialogue_ratio=cfg.data.dialogue_ratio)
    val = training_samples(ds, cfg.data.mix, "val", None, cfg.data.train_on_raw, seed=cfg.seed,
                           dialogue=cfg.data.dialogue)
    if not train:
        raise ConfigError(f"data.mix={cfg.data.mix}: no training samples in {cfg.data.root}")
    if cfg.eval.enabled:
        _check_eval_split(cfg, ds)
    spec = PromptSpec.from_config(cfg.prompt)
    prompts = prompt_builder(ds, spec, cfg.paths.cache_dir)

    if _rank_zero():
        from rolecraft.data.prompts import write_spec
        from rolecraft.rundir import write_config

        write_config(cfg, out)
        write_spec(out, spec)
        from rolecraft import provenance

        provenance.write(out, provenance.build(
            "train.py", provenance.model_record(cfg.model), provenance.dataset_record(str(cfg.data.root), ds), spec,
            resumed_from=str(cfg.ckpt_path) if cfg.ckpt_path else None))

    # -- model --------------------------------------------------------------------------------
    import lightning as L

    from rolecraft.data.datamodule import RoleDataModule
    from rolecraft.data.tokenize import ChatEncoder
    from rolecraft.modeling.base import base_reference, load_base, stop_token_ids
    from rolecraft.modeling.compile import apply_compile
    from rolecraft.modeling.lit_module import RolePlayModule, packed_rows_are_isolated
    from rolecraft.modeling.lora import apply_lora
    from rolecraft.training.trainer import build_trainer

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    base, tok, model_path = load_base(cfg.model, cfg.paths.cache_dir)
    base.train()  # transformers 5 returns models in eval mode
    encoder = ChatEncoder(tok, cfg.data.max_source_length, cfg.data.max_target_length, cfg.model.chat_template,
                          end_ids=stop_token_ids(tok, cfg.model))
    from rolecraft.data.encoding import encode_splits

    # the per-sample encoding; cached under cache_dir by its inputs (data/encoding.py): every input of
    # encode beyond the encoder, the prompt spec and the samples must be named in extra_key
    loss = str(cfg.data.dialogue_loss)  # which assistant turns of a dialogue sample train
    encode = lambda s: encoder.encode(prompts.messages(s, s.references[0]), s.id, loss)  # noqa: E731
    train_rows, val_rows = encode_splits(ds, {"train": train, "val": val}, encode, encoder, spec,
                                         cfg.paths.cache_dir if cfg.data.encoding_cache else None,
                                         extra_key={"dialogue_loss": loss})
    model = apply_lora(base, cfg.lora, cfg.model, base_reference(cfg.model))

    packing = cfg.data.packing
    if packing and not packed_rows_are_isolated(model):
        log.warning("data.packing=true: %s lets packed samples attend to each other (it does not mask by "
                    "position ids); training on padded micro-batches instead", type(base).__name__)
        packing = False
    apply_compile(model, cfg.trainer.compile)
    pack_length = cfg.data.pack_length or (cfg.data.max_source_length + cfg.data.max_target_length)
    dm = RoleDataModule(train_rows, val_rows, tok.pad_token_id, cfg.optim.batch_size, cfg.optim.micro_batch_size,
                        cfg.seed, cfg.data.group_by_length, cfg.data.num_workers, packing, pack_length)
    module = RolePlayModule(model, cfg.optim, cfg.trainer.max_steps, cfg.trainer.label_logits_only, started=t_start)
    trainer = build_trainer(cfg, out)
    if not val_rows:
        trainer.limit_val_batches = 0
    t_fit = time.perf_counter()
    log.info("import-to-fit %.1fs", t_fit - t_start)
    _fit(trainer, module, dm, cfg.ckpt_path, out)
    fit_s = time.perf_counter() - t_fit
    from rolecraft.modeling.sharding import gathered_trainable, is_sharded

    sharded = is_sharded(model)
    # under FSDP the LoRA matrices are DTensor shards: every rank takes part in gathering them
    adapter_state = gathered_trainable(model) if sharded else None
    if not trainer.is_global_zero:
        return None

    # -- export and evaluate (rank zero) -----------------------------------------------------
    model.save_pretrained(str(out / "adapter"), state_dict=adapter_state)
    if sharded:  # rank zero holds a shard of the base only: evaluate base + the exported adapter
        import weakref

        sharded_model = weakref.ref(model)
        del model, base  # with module.model, the last references to the sharded modules
        _release_sharded(trainer, module)
        if sharded_model() is not None:
            log.warning("trainer=fsdp: the sharded model is still referenced after training; rank zero holds it "
                        "and the unsharded evaluation model at once")
        model = _plain_model(cfg, out / "adapter") if cfg.eval.enabled else None
    metrics: dict = {
        "train/loss": module.last_train_loss,
        "train/steps": int(trainer.global_step),
        "train/world_size": int(trainer.world_size),
        "train/dataset_samples": len(train_rows),  # the training set (runs before 2026-12: train/samples)
        "train/samples_seen": module.samples_seen,  # consumed by the optimizer steps, over all ranks
        "train/tokens": module.train_tokens,
        "train/fit_seconds": round(fit_s, 3),
        "data/truncated_prompts": encoder.truncated.prompts,
        "data/truncated_responses": encoder.truncated.responses,
        # multi-turn dialogue in the training mix (issue 17)
        "data/dialogue_samples": sum(s.kind == "dialogue" for s in train),
        "data/dialogue_share": round(sum(s.kind == "dialogue" for s in train) / len(train), 4),
    }
    if encoder.truncated.last_only:  # dialogue_loss=all on a template that re-renders earlier turns
        metrics["data/dialogue_last_only"] = encoder.truncated.last_only
    steady = module.steady_tokens_per_second()
    if steady is not None:
        metrics["train/tokens_per_second"] = round(steady, 1)
    if "val/loss" in trainer.callback_metrics:
        metrics["val/loss"] = float(trainer.callback_metrics["val/loss"])
    if cfg.eval.enabled:
        metrics.update(evaluate_trained(cfg, model, tok, ds, prompts, spec, out))
    if module.first_step_seconds is not None:
        metrics["time/launch_to_first_step_seconds"] = round(module.first_step_seconds, 3)
    metrics["time/total_seconds"] = round(time.perf_counter() - t_start, 3)
    from rolecraft.rundir import write_metrics

    _log_metrics(trainer, metrics)
    _log_wandb(cfg, trainer, metrics, out)
    write_metrics(out, metrics)  # last: a run directory with metrics.json is a finished run
    summary = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items() if "/options/" not in k}
    print(json.dumps(summary, ensure_ascii=False))
    return metrics


def _release_sharded(trainer, module) -> None:
    """Drop the sharded model and its optimizer state before the unsharded one loads on rank zero
    (a 9B: its shard, AdamW state and the whole bf16 base would not fit a 24 GB card together)."""
    import gc

    import torch

    strategy = trainer.strategy
    strategy.optimizers, strategy.lr_scheduler_configs = [], []
    module.model = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _plain_model(cfg, adapter_dir: Path):
    """The base loaded again, unsharded, with the adapter just exported (as a user loads it)."""
    from peft import PeftModel

    from rolecraft.modeling.base import load_base

    base, _, _ = load_base(cfg.model, cfg.paths.cache_dir)
    return PeftModel.from_pretrained(base, str(adapter_dir))


def _fit(trainer, module, dm, ckpt_path, out: Path) -> None:
    """trainer.fit, with a failed checkpoint write (or a disk that filled up under the logs) as one
    line: Lightning's teardown after the failure may itself fail to write (the CSV logger on the
    same full disk), and that second error must not hide the first."""
    import errno

    from rolecraft.errors import RolecraftError
    from rolecraft.training.checkpoints import CheckpointWriteError

    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    except OSError as e:
        first = _cause_of_type(e, CheckpointWriteError)
        if first is not None:
            raise first from None
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise RolecraftError(f"{getattr(e, 'filename', None) or out}: the disk is full ({e.strerror}); the run "
                                 f"stopped; checkpoints already in {out / 'checkpoints'} are whole, resume from the "
                                 "last one with ckpt_path= once there is room") from None
        raise


def _cause_of_type(e: BaseException, kind):
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, kind):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _check_eval_split(cfg, ds) -> None:
    """Refuse before training when the end-of-run evaluation would have nothing to score: a run
    that trains for hours and ends without test metrics (and without saying so) is worse than a
    refusal that costs nothing and says how to go on."""
    from rolecraft.evaluation.benchmarks import from_dataset

    split = cfg.eval.split
    if not from_dataset(ds, split, cfg.data.max_eval_samples).items:
        raise ConfigError(f"eval.split={split!r}: data.root={cfg.data.root} has no samples in that split, so the "
                          f"trained model could not be evaluated; add samples with \"split\": \"{split}\", choose "
                          "another eval.split, or train without the end-of-run evaluation: eval.enabled=false")


def evaluate_trained(cfg, model, tok, ds, prompts, spec, out: Path) -> dict:
    """The evaluation package on the trained model: greedy answers for the eval split through the
    inference layer, Rouge-L per kind, samples.jsonl; keys under ``<split>/``."""
    from rolecraft.evaluation.answers import answers_from_engine
    from rolecraft.evaluation.benchmarks import from_dataset
    from rolecraft.evaluation.metrics import score_predictions
    from rolecraft.evaluation.results import result_rows, write_results
    from rolecraft.evaluation.rouge import RougeOptions
    from rolecraft.inference.engines import LocalEngine

    split = cfg.eval.split
    bench = from_dataset(ds, split, cfg.data.max_eval_samples)
    if not bench.items:
        return {}
    engine = LocalEngine(model, tok, cfg.model, None, cfg.data.max_source_length, accelerator=cfg.trainer.accelerator)
    answers = answers_from_engine(out.name, engine, bench, prompts, cfg.eval.generation, cfg.eval.batch_size,
                                  cfg.seed, spec.template, progress=True)  # on stderr, after 1 s of work
    rows = result_rows(bench, answers)
    r = cfg.eval.rouge
    m = score_predictions(rows, RougeOptions(r.tokenizer, r.stat, r.references, r.postprocess), prefix=split,
                          cache_dir=cfg.paths.cache_dir)
    write_results(out, bench, rows)
    m[f"{split}/truncated_prompts"] = answers.stats["truncated_prompts"]
    m[f"{split}/generation_seconds"] = answers.stats["generation_seconds"]
    return m


def _log_wandb(cfg, trainer, metrics: dict, out: Path) -> None:
    from lightning.pytorch.loggers import WandbLogger

    for lg in trainer.loggers:
        if isinstance(lg, WandbLogger):
            from rolecraft.rundir import read_samples, samples_path
            from rolecraft.tracking import log_results

            rows = read_samples(out) if samples_path(out) else []
            log_results(lg.experiment, metrics, rows, out / "adapter" if cfg.logger.wandb.log_model else None)


def _log_metrics(trainer, metrics: dict) -> None:
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for lg in trainer.loggers:
        lg.log_metrics(numeric, step=trainer.global_step)
        lg.save()
