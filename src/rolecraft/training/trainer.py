"""Lightning Trainer, callbacks and loggers from the config."""

from __future__ import annotations

from pathlib import Path

from rolecraft.errors import ConfigError


def check_strategy(tcfg) -> None:
    """Refuse, before any model loads, strategies known to fail later in the run."""
    from rolecraft.modeling.compile import MODES

    if str(tcfg.accelerator) in ("gpu", "cuda", "mps"):
        import torch

        has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        if not torch.cuda.is_available() and not has_mps:
            cpu_twin = {"ddp": "trainer=ddp_cpu", "fsdp": "trainer=fsdp_cpu"}.get(str(tcfg.strategy), "trainer=cpu")
            raise ConfigError(f"trainer.accelerator={tcfg.accelerator}: this machine has no GPU torch can use "
                              f"(torch {torch.__version__}); train on the CPU with {cpu_twin}")

    if tcfg.compile not in MODES:
        raise ConfigError(f"trainer.compile={tcfg.compile!r}: use one of {', '.join(MODES)}")


def build_strategy(tcfg):
    if tcfg.strategy == "fsdp":  # FSDP2 (fully_shard), CPU or GPU: see rolecraft.training.fsdp
        from rolecraft.training.fsdp import ShardedStrategy

        return ShardedStrategy(process_group_backend=tcfg.process_group_backend)
    if tcfg.strategy == "ddp" and tcfg.process_group_backend:
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(process_group_backend=tcfg.process_group_backend)
    return tcfg.strategy


def build_loggers(cfg, out: Path):
    name = cfg.logger.name
    if name == "none":
        return False
    if name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return [CSVLogger(save_dir=str(out), name="logs", version="")]
    if name == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        from rolecraft.tracking import define_metrics, group_of, run_config

        w = cfg.logger.wandb
        logger = WandbLogger(project=w.project, entity=w.entity, group=group_of(cfg), job_type=w.job_type,
                             tags=list(w.tags) + list(cfg.tags), mode=w.mode, save_dir=str(out),
                             log_model=False, config=run_config(cfg))
        define_metrics(logger.experiment)
        return [logger]
    raise ConfigError(f"logger.name={name!r}: use csv, wandb or none")


def build_trainer(cfg, out: Path):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    t = cfg.trainer
    if t.max_steps < 0 and t.max_epochs < 0:
        raise ConfigError("trainer.max_steps and trainer.max_epochs are both -1; set one of them")
    from rolecraft.console import adopt_lightning_logging, is_quiet

    adopt_lightning_logging()  # its records print once, through our handler, on stderr
    callbacks = [ModelCheckpoint(dirpath=str(out / "checkpoints"), filename="step-{step}", auto_insert_metric_name=False,
                                 every_n_train_steps=max(1, t.checkpoint_every_n_steps),
                                 save_top_k=-1, save_last=True, save_on_train_epoch_end=False)]
    show_bar = t.enable_progress_bar and not is_quiet()
    if show_bar:
        from rolecraft.training.progress import StderrProgressBar

        callbacks.append(StderrProgressBar(refresh_rate=10))
    from rolecraft.training.checkpoint_io import AtomicCheckpointIO

    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=build_strategy(t),
        precision=t.precision, max_steps=t.max_steps, max_epochs=t.max_epochs,
        val_check_interval=t.val_check_interval, check_val_every_n_epoch=None if t.val_check_interval else 1,
        limit_val_batches=t.limit_val_batches, log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=show_bar, deterministic=t.deterministic,
        logger=build_loggers(cfg, out), callbacks=callbacks, default_root_dir=str(out),
        use_distributed_sampler=False, num_sanity_val_steps=0, enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],  # written in the checkpoint directory, renamed into place
    )

