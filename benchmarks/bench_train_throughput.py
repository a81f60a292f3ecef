"""Training throughput (issue 7): rolecraft's training step against a plain `transformers` Trainer.

    python benchmarks/bench_train_throughput.py [--steps 40] [--repeats 1] [--samples 2048] [--pack-length N[,N...]]

One process, CPU, the embedded tiny model (built on first use in $ROLECRAFT_CACHE, default
<repo>/.rc-cache), the RoleInstruct paper data from <repo>/../shared/data/roleinstruct-v1 imported
with the real importer: hybrid train samples (general + specific), rendered with emotions and 6
exemplars, encoded with max_source_length 1024 / max_target_length 128 (labels only on the answer).
The first --samples of the seeded hybrid order form the pool both sides draw their batches from.

Baseline: `transformers.Trainer` + peft LoRA + `DataCollatorForSeq2Seq` (dynamic padding), micro-batch
2 x 2 accumulation, lr 2e-4 constant, AdamW (0.9, 0.999), max_grad_norm 1.0, seed 42.
Ours: Lightning + `RolePlayModule` on `RoleDataModule` with the same effective batch (4 = 2 x 2), lr,
betas, schedule and clipping, in four variants: group_by_length on/off x packing on/off (packing:
each step's samples packed first-fit into rows of --pack-length tokens, position ids restarting per
sample, no attention across samples; default pack length = 1024 + 128, what train.py derives).
Every run reloads the base and applies a fresh LoRA after seeding 42, so all start from the same
weights (checked: the trainable-weight checksum is printed).

Metric: real (non-padding) tokens per second = the summed lengths of the samples of a step over
that step's seconds (optimizer-step callback begin -> end: forward, backward, clipping, optimizer;
the data loading before the step is excluded on both sides), summed over the steps after --warmup.
"loop" rates divide the same tokens by the wall time from the end of the last warm-up step to the
end of the last step, so they include data loading, collation and per-step logging.

Threads: --threads (default 1). On the shared 2-core development VM two OpenMP threads made every
op 8-10x slower than one (a forward+backward of 2 x 740 tokens: ~3 s vs ~0.3 s), so one thread is
both faster and far more stable there; both sides always run with the same setting.

Loss agreement: the two sides see different batch orders (HF's RandomSampler vs our
StepBatchSampler), so per-step losses differ by the batch-to-batch spread of the loss. Compared:
per-step mean absolute difference (raw, and of 10-step trailing means), the mean over the last 10
steps (tolerance: 2 standard errors of the difference of two 10-step means, from the per-step
scatter of both curves around their centred 10-step running means), and the per-token loss on fixed held-out (val) samples
after training, the same rows for every run. A control run (the baseline again with seed 43: other
data order and dropout) shows how much two runs of one recipe differ (--no-control skips it).
Prints one JSON line per run, then Markdown tables.

Measured (2-core shared CPU VM, 1 thread, torch 2.13, transformers 5.24, --repeats 2, ~12 min): baseline
4417 real tokens/s; ours with the defaults (group_by_length, packing at 1152, label-only logits)
1.74x (1.86x in an earlier run), label-only logits off 1.11x. A 1152-token row holds one sample
here (lengths 528-1014), so packing means one unpadded, mask-free sample per forward; rows of 2304 /
4608 tokens (2 / 4 samples and a block-diagonal mask) were slower than padding on this CPU. Loss
curves agree within the tolerance, as closely as the control run agrees with the baseline.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "roleinstruct-v1"
SEED = 42
BATCH, MICRO, LR = 4, 2, 2e-4
MAX_SOURCE, MAX_TARGET = 1024, 128


# ---- data ---------------------------------------------------------------------------------------
def load_rows(data: Path, n_train: int, n_eval: int, cache_dir: str):
    from omegaconf import OmegaConf

    from rolecraft.config import ModelConfig
    from rolecraft.data.importers import IMPORTERS
    from rolecraft.data.mixing import training_samples
    from rolecraft.data.prompts import PromptBuilder
    from rolecraft.data.tokenize import ChatEncoder
    from rolecraft.modeling.base import load_base

    t0 = time.perf_counter()
    ds, defects = IMPORTERS["roleinstruct-v1"](data)
    model_cfg = OmegaConf.structured(ModelConfig())
    _, tok, _ = load_base(model_cfg, cache_dir)
    prompts = PromptBuilder(ds, emotions=True, num_exemplars=6)
    enc = ChatEncoder(tok, MAX_SOURCE, MAX_TARGET, model_cfg.chat_template)
    train = training_samples(ds, "hybrid", "train", seed=SEED)
    held = training_samples(ds, "hybrid", "val", seed=SEED) or train[n_train:]  # never in the pool
    rows = [enc.encode(prompts.messages(s, s.references[0]), s.id) for s in train[:n_train]]
    eval_rows = [enc.encode(prompts.messages(s, s.references[0]), s.id) for s in held[:n_eval]]
    lengths = [len(r.input_ids) for r in rows]
    info = {"samples": len(ds.samples), "defects": len(defects), "hybrid_train": len(train), "pool": len(rows),
            "held_out": len(eval_rows), "len_min": min(lengths), "len_median": statistics.median(lengths),
            "len_mean": round(statistics.mean(lengths), 1), "len_max": max(lengths),
            "truncated_responses": enc.truncated.responses, "truncated_prompts": enc.truncated.prompts,
            "prep_seconds": round(time.perf_counter() - t0, 1)}
    return rows, eval_rows, tok, info


def fresh_model(cache_dir: str):
    """The base reloaded and a fresh LoRA, after seeding: every run starts from identical weights."""
    import lightning as L
    from omegaconf import OmegaConf

    from rolecraft.config import LoraConfig, ModelConfig
    from rolecraft.modeling.base import load_base
    from rolecraft.modeling.lora import apply_lora

    L.seed_everything(SEED, workers=True, verbose=False)
    model_cfg = OmegaConf.structured(ModelConfig())
    base, tok, _ = load_base(model_cfg, cache_dir)
    base.train()  # transformers 5 returns models in eval mode
    model = apply_lora(base, OmegaConf.structured(LoraConfig()), model_cfg, "embedded:tiny")
    checksum = sum(float(p.detach().double().sum()) for p in model.parameters() if p.requires_grad)
    return model, tok, checksum


def held_out_loss(model, rows) -> float:
    """Per-token loss on fixed rows, one row at a time (no padding), dropout off."""
    import torch

    from rolecraft.data.batching import pad_batch
    from rolecraft.modeling.lit_module import token_loss_sum

    was = model.training
    model.eval()
    s, n = 0.0, 0
    with torch.no_grad():
        for r in rows:
            ls, k = token_loss_sum(model, pad_batch([r], 0))
            s, n = s + float(ls), n + k
    model.train(was)
    return s / max(1, n)


# ---- the two sides ------------------------------------------------------------------------------
def run_baseline(rows, eval_rows, steps: int, seed: int, cache_dir: str, workdir: str) -> dict:
    from transformers import (
        DataCollatorForSeq2Seq,
        PrinterCallback,
        ProgressCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    model, tok, checksum = fresh_model(cache_dir)

    class CountingTrainer(Trainer):  # per micro-batch: real and padded tokens (a tensor sum, nothing else)
        real = padded = forwards = 0

        def training_step(self, model, inputs, num_items_in_batch=None):
            self.real += int(inputs["attention_mask"].sum())
            self.padded += inputs["input_ids"].numel()
            self.forwards += 1
            return super().training_step(model, inputs, num_items_in_batch)

    rec = {"loss": [], "seconds": [], "tokens": [], "padded": [], "end": [], "forwards": []}

    class Recorder(TrainerCallback):
        trainer = None

        def on_step_begin(self, args, state, control, **kw):
            self.r0, self.p0, self.f0 = self.trainer.real, self.trainer.padded, self.trainer.forwards
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            t = time.perf_counter()
            rec["seconds"].append(t - self.t0)
            rec["end"].append(t)
            rec["tokens"].append(self.trainer.real - self.r0)
            rec["padded"].append(self.trainer.padded - self.p0)
            rec["forwards"].append(self.trainer.forwards - self.f0)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                rec["loss"].append(float(logs["loss"]))

    args = TrainingArguments(
        output_dir=workdir, per_device_train_batch_size=MICRO, gradient_accumulation_steps=BATCH // MICRO,
        learning_rate=LR, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, weight_decay=0.0,
        lr_scheduler_type="constant", warmup_steps=0, max_steps=steps, logging_steps=1, report_to=[],
        save_strategy="no", eval_strategy="no", use_cpu=True, dataloader_num_workers=0, seed=seed, data_seed=seed,
        max_grad_norm=1.0, disable_tqdm=True, remove_unused_columns=False)
    data = [{"input_ids": r.input_ids, "attention_mask": [1] * len(r.input_ids), "labels": r.labels} for r in rows]
    recorder = Recorder()
    trainer = CountingTrainer(model=model, args=args, train_dataset=data,
                              data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100),
                              callbacks=[recorder])
    recorder.trainer = trainer
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    t0 = time.perf_counter()
    trainer.train()
    rec["fit_seconds"] = time.perf_counter() - t0
    rec["held_out_loss"] = held_out_loss(model, eval_rows)
    rec["checksum"] = checksum
    rec["loss_per_token_window"] = bool(trainer.model_accepts_loss_kwargs)
    rec["optim"] = str(args.optim.value if hasattr(args.optim, "value") else args.optim)
    return rec


def run_ours(rows, eval_rows, steps: int, group_by_length: bool, packing: bool, pack_length: int | None,
             cache_dir: str, label_logits_only: bool = True) -> dict:
    import lightning as L
    from omegaconf import OmegaConf

    from rolecraft.config import OptimConfig
    from rolecraft.data.datamodule import RoleDataModule
    from rolecraft.modeling.lit_module import RolePlayModule

    model, tok, checksum = fresh_model(cache_dir)
    rec = {"loss": [], "seconds": [], "tokens": [], "padded": [], "end": [], "forwards": []}

    class Recorder(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            rec["tokens"].append(int(batch["tokens"]))
            rec["padded"].append(sum(m["input_ids"].numel() for m in batch["micro"]))
            rec["forwards"].append(len(batch["micro"]))
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            t = time.perf_counter()
            rec["seconds"].append(t - self.t0)
            rec["end"].append(t)
            rec["loss"].append(float(pl_module.last_train_loss))

    optim = OmegaConf.structured(OptimConfig(lr=LR, batch_size=BATCH, micro_batch_size=MICRO))
    kw = {"packing": packing, "pack_length": pack_length} if packing else {}
    dm = RoleDataModule(rows, [], tok.pad_token_id, BATCH, MICRO, SEED, group_by_length, **kw)
    module = RolePlayModule(model, optim, steps, label_logits_only=label_logits_only)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, precision="32-true", callbacks=[Recorder()])
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    rec["fit_seconds"] = time.perf_counter() - t0
    rec["held_out_loss"] = held_out_loss(model, eval_rows)
    rec["checksum"] = checksum
    return rec


# ---- summaries ----------------------------------------------------------------------------------
def rates(rec: dict, warmup: int) -> dict:
    tok, sec = rec["tokens"][warmup:], rec["seconds"][warmup:]
    loop = sum(tok) / (rec["end"][-1] - rec["end"][warmup - 1]) if warmup >= 1 else float("nan")
    return {"tokens_per_s": sum(tok) / sum(sec), "median_step_tokens_per_s": statistics.median(t / s for t, s in zip(tok, sec)),
            "loop_tokens_per_s": loop, "median_step_s": statistics.median(sec),
            "padding_share": 1 - sum(rec["tokens"]) / sum(rec["padded"]), "steps": len(rec["seconds"]),
            "forwards_per_step": statistics.mean(rec["forwards"])}


def trailing_mean(xs: list[float], w: int) -> list[float]:
    return [statistics.mean(xs[max(0, i - w + 1):i + 1]) for i in range(len(xs))]


def agreement(base: list[float], ours: list[float], window: int = 10) -> dict:
    n = min(len(base), len(ours))
    b, o = base[:n], ours[:n]
    sb, so = trailing_mean(b, window), trailing_mean(o, window)
    # per-step scatter: residuals around a centred running mean of each curve (trend removed)
    def scatter(xs):
        h = window // 2
        res = [x - statistics.mean(xs[max(0, i - h):i + h + 1]) for i, x in enumerate(xs)]
        return statistics.pstdev(res)
    sd = math.sqrt((scatter(b) ** 2 + scatter(o) ** 2) / 2)
    tol = 2 * sd * math.sqrt(2 / window)
    lb, lo = statistics.mean(b[-window:]), statistics.mean(o[-window:])
    return {"mad_raw": statistics.mean(abs(x - y) for x, y in zip(b, o)),
            "mad_smoothed": statistics.mean(abs(x - y) for x, y in zip(sb[window - 1:], so[window - 1:])),
            "last_base": lb, "last_ours": lo, "last_diff": lo - lb, "tolerance": tol,
            "within": abs(lo - lb) <= tol, "step_sd": sd}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of the rates")
    ap.add_argument("--samples", type=int, default=2048, help="encoded hybrid train samples in the pool")
    ap.add_argument("--eval-samples", type=int, default=32, help="held-out (val) samples for the after-training loss")
    ap.add_argument("--pack-length", default=None,
                    help="tokens per packed row, or a comma-separated list to sweep (default 1024+128)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: on the shared 2-core VM, 2 OpenMP threads ran 8-10x slower)")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--repeats", type=int, default=1, help="round-robin repeats of all runs (rates: median)")
    ap.add_argument("--no-control", action="store_true", help="skip the second baseline run (seed 43)")
    args = ap.parse_args()
    if args.steps <= args.warmup + 10:
        sys.exit(f"--steps must exceed --warmup + 10 (the final loss window); got {args.steps}")

    data = Path(args.data)
    if not data.is_dir():
        sys.exit(f"{data}: RoleInstruct paper data not found; this benchmark needs ../shared/data/roleinstruct-v1 "
                 "(the authors' role/ folders) next to the repository, or --data PATH")
    os.environ.setdefault("ROLECRAFT_CACHE", str(REPO / ".rc-cache"))
    os.environ.setdefault("WANDB_MODE", "disabled")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before torch loads
        os.environ[var] = str(args.threads)
    cache_dir = os.environ["ROLECRAFT_CACHE"]
    for pattern in (r".*base_model_name_or_path.*was renamed.*", r".*Could not find a config file in embedded.*",
                    r".*Using ModelCheckpoint with manual optimization.*", r".*LeafSpec.*deprecated.*",
                    r".*does not have many workers.*", r".*trainer.limit_val_batches.*", r".*max_steps.*"):
        warnings.filterwarnings("ignore", message=pattern)
    import lightning  # noqa: F401  (sets its loggers to INFO on import: quieten after)
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)

    from rolecraft.data.datamodule import RoleDataModule

    has_packing = "packing" in inspect.signature(RoleDataModule.__init__).parameters
    pack_lengths = [int(x) for x in args.pack_length.split(",")] if args.pack_length else [MAX_SOURCE + MAX_TARGET]

    rows, eval_rows, _, info = load_rows(data, args.samples, args.eval_samples, cache_dir)
    info.update(torch=torch.__version__, transformers=transformers.__version__, threads=torch.get_num_threads(),
                packing_api=has_packing, pack_lengths=pack_lengths if has_packing else None)
    print(json.dumps({"data": info}), flush=True)

    workdir = tempfile.mkdtemp(prefix="rolecraft-bench-tp-")
    plan = [("baseline", lambda: run_baseline(rows, eval_rows, args.steps, SEED, cache_dir, workdir))]
    # (group_by_length, pack length or None, label_logits_only); the first shows the other two alone
    variants = [(True, None, False), (False, None, True), (True, None, True)]
    if has_packing:
        variants += [(gbl, n, True) for n in pack_lengths for gbl in (False, True)]
    for gbl, pack, lab in variants:
        name = (f"ours group_by_length={'on' if gbl else 'off'} packing=" + (f"on ({pack})" if pack else "off")
                + ("" if lab else " label_logits_only=off"))
        plan.append((name, lambda gbl=gbl, pack=pack, lab=lab: run_ours(rows, eval_rows, args.steps, gbl,
                                                                        pack is not None, pack, cache_dir, lab)))
    if not args.no_control:
        plan.append(("control: baseline, seed 43",
                     lambda: run_baseline(rows, eval_rows, args.steps, SEED + 1, cache_dir, workdir)))

    runs: dict[str, list[dict]] = {name: [] for name, _ in plan}
    for rep in range(args.repeats):  # round-robin, so a slow spell of the shared machine hits every run alike
        for name, fn in plan:
            rec = fn()
            runs[name].append(rec)
            r = rates(rec, args.warmup)
            print(json.dumps({"run": name, "repeat": rep, **{k: round(v, 4) if isinstance(v, float) else v
                                                              for k, v in r.items()},
                              "fit_seconds": round(rec["fit_seconds"], 1), "held_out_loss": round(rec["held_out_loss"], 4),
                              "final10_loss": round(statistics.mean(rec["loss"][-10:]), 4),
                              "lora_checksum": round(rec["checksum"], 6)}), flush=True)

    def med(name, key):
        return statistics.median(rates(rec, args.warmup)[key] for rec in runs[name])

    # ---- tables ------------------------------------------------------------------------------
    base = runs["baseline"][0]
    bt, bl = med("baseline", "tokens_per_s"), med("baseline", "loop_tokens_per_s")
    print(f"\nData: {info['pool']} hybrid RoleInstruct train samples (of {info['hybrid_train']}), lengths "
          f"{info['len_min']}-{info['len_max']} tokens (median {info['len_median']:.0f}); {args.steps} steps of "
          f"{BATCH} samples ({MICRO} x {BATCH // MICRO} accumulation), rates over steps {args.warmup + 1}-{args.steps}, "
          f"median of {args.repeats} round-robin repeat(s) [min-max]; "
          f"CPU, {info['threads']} thread(s), torch {info['torch']}, transformers {info['transformers']}. "
          f"Baseline optimizer: {base['optim']}; HF loss normalised per label token of the accumulation window: "
          f"{base['loss_per_token_window']}."
          + ("" if has_packing else " RoleDataModule has no packing yet: packing variants not run."))
    print("\n| run | forwards / step | padding share | real tokens/s (step) | vs baseline | median step "
          "| real tokens/s (loop) | vs baseline |\n|---|---|---|---|---|---|---|---|")
    for name, recs in runs.items():
        r = rates(recs[0], args.warmup)
        ts = [rates(x, args.warmup)["tokens_per_s"] for x in recs]
        spread = f" [{min(ts):.0f}-{max(ts):.0f}]" if len(ts) > 1 else ""
        t, lp = med(name, "tokens_per_s"), med(name, "loop_tokens_per_s")
        print(f"| {name} | {r['forwards_per_step']:.2f} | {r['padding_share']:.1%} | {t:.0f}{spread} | {t / bt:.2f}x "
              f"| {med(name, 'median_step_s') * 1000:.0f} ms | {lp:.0f} | {lp / bl:.2f}x |")
    print("\n| run vs baseline | per-step loss MAD | 10-step-mean MAD | last-10 mean (baseline / run) | difference "
          "| tolerance (2 SE) | held-out loss (baseline / run) |\n|---|---|---|---|---|---|---|")
    for name, recs in runs.items():
        if name == "baseline":
            continue
        rec = recs[0]
        a = agreement(base["loss"], rec["loss"])
        print(f"| {name} | {a['mad_raw']:.3f} | {a['mad_smoothed']:.3f} | {a['last_base']:.3f} / {a['last_ours']:.3f} "
              f"| {a['last_diff']:+.3f} {'ok' if a['within'] else 'OUT'} | {a['tolerance']:.3f} "
              f"| {base['held_out_loss']:.4f} / {rec['held_out_loss']:.4f} |")
    print("\nStart of training (identical LoRA init, checksums): "
          + ", ".join(sorted({f'{r["checksum"]:.6f}' for recs in runs.values() for r in recs})))


if __name__ == "__main__":
    main()
