"""GPU training throughput and model FLOPs utilisation (MFU) of rolecraft's training step.

A ~1B-parameter model of a real architecture with random weights (built from a config: nothing to
download), LoRA r8 on all linear layers (real peft), rows of --seq-len tokens with no padding,
through the real RolePlayModule + Lightning Trainer (its training_step: accumulation over
micro-batches, manual backward, gradient clipping, AdamW, scheduler).

    python benchmarks/gpu_train_throughput.py                      # one variant, from the flags
    python benchmarks/gpu_train_throughput.py --preset issue7      # the sweep behind the README table
    python benchmarks/gpu_train_throughput.py --variant arch=llama3.2-1b,precision=bf16-true,compile=layers
    python benchmarks/gpu_train_throughput.py --tiny --preset issue7   # CPU smoke test of every code path

Measured on one H200 (torch 2.11, transformers 5.17, peft 0.21; the whole --preset issue7 sweep takes
about 3 minutes there), the fastest honest configuration, 45.8% MFU:

    python benchmarks/gpu_train_throughput.py --arch llama3.2-1b --micro 16 --batch 16 --precision bf16-true \
        --lora-dropout 0 --compile layers --loss fused --checkpointing off

What mattered: torch.compile of the decoder layers (LoRA's and the model's elementwise work is memory-
bound in eager: +37%), not materialising fp32 (tokens x vocab) logits (+13% at vocab 128k), and keeping
bf16 activations out of peft's fp32 input cast under bf16-mixed (bf16-true, or lora_cast=off).

Each --variant is a comma-separated list of key=value overriding the flags (keys: the flag names
with '_' for '-': arch, micro, batch, precision, attn, compile, loss, checkpointing, lora_dropout,
lora_cast, packing). One JSON line is printed per variant, then a Markdown table.

Variants
  arch        qwen2-1b (hidden 2048, 18 layers, MLP 5632, 16 heads, vocab 32k: the first README
              baseline) | llama3.2-1b (Llama-3.2-1B's dimensions: hidden 2048, 16 layers, MLP 8192,
              32 heads of 64, 8 KV heads, vocab 128,256, tied) | tinyllama-1.1b | qwen2.5-1.5b
  precision   bf16-mixed (autocast; peft keeps the LoRA weights fp32) | bf16-true (everything bf16)
  lora_cast   on: peft's default, which casts each LoRA layer's input to the LoRA weights' dtype: under
              bf16-mixed a full fp32 copy of every activation entering a LoRA layer | off: peft's
              ``cast_input_dtype_enabled = False`` (what ``peft.helpers.disable_input_dtype_casting``
              sets): bf16 activations, autocast casts the small LoRA weights instead
  compile     none | layers (torch.compile of each decoder layer, LoRA included: fuses norms, RoPE,
              SwiGLU and LoRA's scale/add into few kernels) | model
  loss        module: rolecraft's token_loss_sum, unchanged (fp32 copy of the full logits) |
              fused: a benchmark-local replacement of token_loss_sum (same value) that computes
              lm_head + cross-entropy chunk by chunk, with the gradient of the hidden states in the
              same pass, so no fp32 (rows x vocab) logits exist. The lm_head is frozen in LoRA
              training, so it does exactly the counted FLOPs (no recomputation).
  packing     off: one sample per row | on: rows made of several samples (lengths 128..1152, the
              RoleInstruct source+target range) with position_ids restarting per sample and no
              attention_mask, so transformers builds a block-causal (per sample) mask. The step then
              uses the benchmark's loss function to pass position_ids (rolecraft's token_loss_sum
              passes none). Attention FLOPs are then counted per sample (sum of len^2).
  attn        sdpa | flex_attention | eager

Model FLOPs per token count what LoRA training must compute: forward 2N, backward through the
activations 2N (no weight gradients for the frozen base; LoRA's own are negligible), plus causal
attention (2 * layers * seq * heads*head_dim forward, twice that backward). N counts the matmul
weights including lm_head (the embedding lookup is no matmul). Recomputation from gradient
checkpointing is not counted (the MFU convention). Peak: dense bf16 of the card (--peak-tflops;
989 for H100/H200).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
import time
import traceback

ARCHS = {
    # the first README baseline: a Qwen2 of TinyLlama's width, full multi-head attention (0.99 B)
    "qwen2-1b": ("qwen2", {
        "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 18,
        "num_attention_heads": 16, "num_key_value_heads": 16, "max_position_embeddings": 4096,
        "tie_word_embeddings": True}),
    # meta-llama/Llama-3.2-1B's dimensions (1.24 B)
    "llama3.2-1b": ("llama", {
        "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "max_position_embeddings": 131072,
        "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": True}),
    # TinyLlama/TinyLlama-1.1B (1.10 B)
    "tinyllama-1.1b": ("llama", {
        "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
        "num_attention_heads": 32, "num_key_value_heads": 4, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False}),
    # Qwen/Qwen2.5-1.5B (1.54 B)
    "qwen2.5-1.5b": ("qwen2", {
        "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
        "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 32768,
        "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True}),
}
# --tiny: CPU smoke test of the same code paths
_TINY = {"vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
         "tie_word_embeddings": True}
ARCHS["tiny-llama"], ARCHS["tiny-qwen2"] = ("llama", _TINY), ("qwen2", _TINY)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclasses.dataclass
class Variant:
    arch: str = "qwen2-1b"
    seq_len: int = 2048
    micro: int = 4
    batch: int = 8
    precision: str = "bf16-mixed"
    attn: str = "sdpa"
    compile: str = "none"
    loss: str = "module"
    checkpointing: str = "off"
    lora_dropout: float = 0.1
    lora_cast: str = "on"
    packing: str = "off"

    def label(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))


# The sweep behind the README table, most telling first (--time-budget drops the tail).
_Q = {"arch": "qwen2-1b", "micro": 16, "batch": 16}
_LL = {"arch": "llama3.2-1b", "micro": 8, "batch": 16, "lora_dropout": 0.0, "precision": "bf16-true"}
_FAST = {**_LL, "compile": "layers", "loss": "fused"}
PRESETS = {
    "issue7": [
        _Q,  # the README's unoptimised baseline, reproduced on this card
        {**_Q, "lora_dropout": 0.0, "precision": "bf16-true"},
        {**_Q, "lora_dropout": 0.0, "precision": "bf16-mixed", "lora_cast": "off"},
        _LL,
        {**_LL, "compile": "layers"},
        _FAST,
        {**_FAST, "micro": 16},
        {**_FAST, "checkpointing": "on"},
        {**_FAST, "precision": "bf16-mixed", "lora_cast": "off"},
        {**_FAST, "packing": "on", "attn": "flex_attention"},
        {**_FAST, "packing": "on", "attn": "sdpa"},
        {**_FAST, "lora_dropout": 0.1},
        {**_Q, "lora_dropout": 0.0, "precision": "bf16-true", "compile": "layers", "loss": "fused"},
    ],
}


def parse_variant(text: str, base: Variant) -> Variant:
    kw = {}
    types = {f.name: f.type for f in dataclasses.fields(Variant)}
    for item in filter(None, (s.strip() for s in text.split(","))):
        k, _, v = item.partition("=")
        k = k.strip().replace("-", "_")
        if k not in types:
            raise SystemExit(f"--variant: unknown key {k!r}; keys: {sorted(types)}")
        kw[k] = {"int": int, "float": float}.get(str(types[k]), str)(v.strip())
    return dataclasses.replace(base, **kw)


# ---- the data ---------------------------------------------------------------------------------


def packed_row(rng, seq_len: int, vocab: int, ignore: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """One row of several samples: ids, labels (a sample's first token is no target), position ids
    restarting at each sample, and the sample lengths."""
    ids, labels, pos, lens = [], [], [], []
    lo, hi = max(2, seq_len // 16), max(3, seq_len * 9 // 16)  # 128..1152 at 2,048
    while len(ids) < seq_len:
        n = min(rng.randint(lo, hi), seq_len - len(ids))
        tok = [rng.randrange(vocab) for _ in range(n)]
        ids += tok
        labels += [ignore] + tok[1:]
        pos += list(range(n))
        lens.append(n)
    return ids, labels, pos, lens


class PackedCollator:
    """StepCollator's output format (micro-batches of input_ids/attention_mask/labels) plus
    position_ids; attention_mask is all ones and is not passed to the model (see the loss)."""

    def __init__(self, micro_batch_size: int):
        self.micro = micro_batch_size

    def __call__(self, rows):
        import torch

        micro = []
        for i in range(0, len(rows), self.micro):
            part = rows[i:i + self.micro]
            ids = torch.tensor([r[0] for r in part])
            micro.append({"input_ids": ids, "attention_mask": torch.ones_like(ids),
                          "labels": torch.tensor([r[1] for r in part]),
                          "position_ids": torch.tensor([r[2] for r in part])})
        return {"micro": micro, "label_tokens": sum(int((m["labels"] != -100).sum()) for m in micro),
                "tokens": sum(len(r[0]) for r in rows)}


# ---- the benchmark's loss function (loss=fused) ----------------------------------------------


def make_loss_fn(kind: str, compile_chunk: bool, chunk_tokens: int = 8192):
    """A drop-in for rolecraft.modeling.lit_module.token_loss_sum: same value (summed next-token
    cross-entropy over label tokens, and their count)."""
    import torch
    import torch.nn.functional as F

    from rolecraft.data.tokenize import IGNORE_INDEX

    def ce_chunk(h, w, y):
        logits = (h @ w.t()).float()
        lse = torch.logsumexp(logits, dim=-1)
        valid = y != IGNORE_INDEX
        yc = torch.where(valid, y, 0)
        loss = torch.where(valid, lse - logits.gather(1, yc[:, None])[:, 0], 0.0).sum()
        # d loss / d logits = softmax - one_hot, zero for ignored positions
        grad = torch.exp(logits - lse[:, None])
        grad = grad - F.one_hot(yc, logits.size(-1)).to(grad.dtype)
        grad = grad * valid[:, None].to(grad.dtype)
        return loss, grad.to(h.dtype) @ w

    chunk_fn = torch.compile(ce_chunk, dynamic=False) if compile_chunk else ce_chunk

    class LinearCrossEntropy(torch.autograd.Function):
        """sum CE(h @ w.T, y) for a frozen w; the gradient of h is computed chunk by chunk in the
        forward, so (tokens x vocab) logits exist only one chunk at a time."""

        @staticmethod
        def forward(ctx, h, w, y):
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            grad_h = torch.empty_like(h)
            for i in range(0, h.size(0), chunk_tokens):
                loss, grad_h[i:i + chunk_tokens] = chunk_fn(h[i:i + chunk_tokens], w, y[i:i + chunk_tokens])
                total += loss
            ctx.save_for_backward(grad_h)
            return total

        @staticmethod
        def backward(ctx, g):
            (grad_h,) = ctx.saved_tensors
            return grad_h * g.to(grad_h.dtype), None, None

    def loss_fn(model, batch, label_logits_only=False):  # every position is projected (chunk by chunk)
        kw = {"input_ids": batch["input_ids"]}
        if "position_ids" in batch:  # packed rows: transformers derives the per-sample mask from them
            kw.update(position_ids=batch["position_ids"], attention_mask=None, use_cache=False)
        else:
            kw["attention_mask"] = batch["attention_mask"]
        labels = batch["labels"]
        shift_labels = labels[:, 1:]
        n = int((shift_labels != IGNORE_INDEX).sum())
        if kind == "module":  # rolecraft's computation, only with position_ids passed
            logits = model(**kw).logits
            shift_logits = logits[:, :-1, :].float()
            loss = F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                                   ignore_index=IGNORE_INDEX, reduction="sum")
            return loss, n
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        lm_head = base.get_output_embeddings()
        if lm_head.weight.requires_grad or getattr(lm_head, "bias", None) is not None:
            raise RuntimeError("loss=fused needs a frozen, bias-free lm_head")
        hidden = base.model(**kw).last_hidden_state
        # the same targets, aligned with every position (the last has none), so h needs no slicing
        y = torch.cat([shift_labels, torch.full_like(labels[:, :1], IGNORE_INDEX)], dim=1)
        w = lm_head.weight
        h = hidden.reshape(-1, hidden.size(-1))
        if h.dtype != w.dtype:  # under autocast lm_head would run in the autocast dtype
            h = h.to(torch.get_autocast_dtype(h.device.type) if torch.is_autocast_enabled(h.device.type) else w.dtype)
            w = w.to(h.dtype)
        with torch.autocast(h.device.type, enabled=False):
            loss = LinearCrossEntropy.apply(h, w, y.reshape(-1))
        return loss, n

    return loss_fn


# ---- one variant ------------------------------------------------------------------------------


def run_variant(v: Variant, args) -> dict:
    import lightning as L
    import torch
    from omegaconf import OmegaConf
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    import rolecraft.modeling.lit_module as lit
    from rolecraft.config import LoraConfig, ModelConfig, OptimConfig
    from rolecraft.data.batching import StepCollator
    from rolecraft.data.tokenize import IGNORE_INDEX, Encoded
    from rolecraft.modeling.lora import apply_lora

    cuda = args.device == "cuda"
    family, dims = ARCHS[v.arch]
    cfg_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if family == "llama" else (Qwen2Config, Qwen2ForCausalLM)
    cfg = cfg_cls(**dims)
    cfg.use_cache = False  # training: no KV cache object
    torch.manual_seed(0)
    with torch.device(args.device):
        model = model_cls._from_config(cfg, dtype=torch.bfloat16, attn_implementation=v.attn)
    n_params = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    n_matmul = n_params - emb.numel() + (head.numel() if head is emb else 0)  # lookup out, (tied) lm_head in

    mcfg = OmegaConf.structured(ModelConfig(lora_targets=LORA_TARGETS, attn_implementation=v.attn,
                                            gradient_checkpointing=v.checkpointing == "on"))
    peft_model = apply_lora(model, OmegaConf.structured(LoraConfig(dropout=v.lora_dropout)), mcfg, f"random-{v.arch}")
    peft_model.train()
    if v.lora_cast == "off":
        switched = 0
        for m in peft_model.modules():
            if hasattr(m, "cast_input_dtype_enabled"):
                m.cast_input_dtype_enabled = False
                switched += 1
        if not switched:
            raise RuntimeError("lora_cast=off: this peft has no cast_input_dtype_enabled switch")
    if v.compile == "layers":  # what trainer.compile=layers does
        from rolecraft.modeling.compile import apply_compile

        apply_compile(peft_model, "layers")
    elif v.compile == "model":  # the whole decoder stack (lm_head and loss stay outside)
        peft_model.get_base_model().model.compile(dynamic=False)

    # the step's loss: rolecraft's own unless a variant needs the benchmark's
    orig_loss = lit.token_loss_sum
    if v.loss == "fused":  # (the module's own loss handles packed rows itself)
        lit.token_loss_sum = make_loss_fn(v.loss, compile_chunk=v.compile != "none")
    try:
        ocfg = OmegaConf.structured(OptimConfig(batch_size=v.batch, micro_batch_size=v.micro))
        module = lit.RolePlayModule(peft_model, ocfg, args.steps)
        import random

        rng = random.Random(0)
        n_rows = v.batch * args.steps
        if v.packing == "on":
            rows = [packed_row(rng, v.seq_len, cfg.vocab_size, IGNORE_INDEX) for _ in range(n_rows)]
            attn_sq = [sum(n * n for n in r[3]) for r in rows]
            collate = PackedCollator(v.micro)
        else:
            g = torch.Generator().manual_seed(0)
            ids = torch.randint(0, cfg.vocab_size, (n_rows, v.seq_len), generator=g).tolist()
            rows = [Encoded(r, r) for r in ids]
            attn_sq = [v.seq_len ** 2] * n_rows
            collate = StepCollator(pad_id=0, micro_batch_size=v.micro)
        loader = torch.utils.data.DataLoader(rows, batch_size=v.batch, collate_fn=collate, shuffle=False)

        sync = torch.cuda.synchronize if cuda else (lambda: None)
        times: list[float] = []

        class Timer(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                sync()
                self.t = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                sync()
                times.append(time.perf_counter() - self.t)

        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        trainer = L.Trainer(accelerator="gpu" if cuda else "cpu", devices=1, precision=v.precision,
                            max_steps=args.steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[Timer()], limit_val_batches=0)
        trainer.fit(module, train_dataloaders=loader)
        wall = time.perf_counter() - t0
    finally:
        lit.token_loss_sum = orig_loss
    measured = times[args.warmup:]
    step_s = sorted(measured)[len(measured) // 2]
    tokens = v.batch * v.seq_len
    # model FLOPs of a step: 4 N per token, plus causal attention: 2 * layers * width * len^2 per sample forward, x3
    L_, width = cfg.num_hidden_layers, cfg.num_attention_heads * (getattr(cfg, "head_dim", None)
                                                                   or cfg.hidden_size // cfg.num_attention_heads)
    step_rows = attn_sq[:v.batch]  # every step has the same shape of rows (packing: close to it)
    flops_step = 4 * n_matmul * tokens + 3 * 2 * L_ * width * sum(step_rows)
    tok_s = tokens / step_s
    tflops = flops_step / step_s / 1e12
    peak = args.peak_tflops
    out = dataclasses.asdict(v)
    import peft
    import transformers

    out.update(card=args.card, versions=f"torch {torch.__version__}, transformers {transformers.__version__}, "
                                        f"peft {peft.__version__}, lightning {L.__version__}",
               params=n_params, median_step_s=round(step_s, 4),
               step_s_min_max=[round(min(measured), 4), round(max(measured), 4)], tokens_per_s=round(tok_s),
               model_tflops_per_s=round(tflops, 1), mfu=round(tflops / peak, 4) if peak else None, peak_tflops=peak,
               peak_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None,
               first_step_s=round(times[0], 1), wall_s=round(wall, 1), final_loss=module.last_train_loss)
    del trainer, module, peft_model, model
    return out


def cleanup() -> None:
    import torch

    gc.collect()
    torch._dynamo.reset()  # fresh compile caches: each variant compiles its own model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def table(results: list[dict]) -> str:
    lines = [("| model | micro × seq | precision | LoRA dropout / input cast | attention | packing | compile | loss "
             "| checkpointing | tokens/s | model TFLOP/s | MFU | peak memory |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        head = (f"| {r['arch']} | {r['micro']} × {r['seq_len']} | {r['precision']} "
                f"| {r['lora_dropout']} / {r['lora_cast']} "
                f"| {r['attn']} | {r['packing']} | {r['compile']} | {r['loss']} | {r['checkpointing']} ")
        if "error" in r:
            lines.append(head + f"| {r['error'][:60]} | | | |")
        else:
            mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
            mem = f"{r['peak_mem_gib']} GiB" if r["peak_mem_gib"] is not None else "n/a"
            lines.append(head + f"| {r['tokens_per_s']:,} | {r['model_tflops_per_s']} | {mfu} | {mem} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), default="qwen2-1b")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--precision", choices=["bf16-mixed", "bf16-true"], default="bf16-mixed")
    ap.add_argument("--attn", choices=["sdpa", "flex_attention", "eager"], default="sdpa")
    ap.add_argument("--compile", choices=["none", "layers", "model"], default="none")
    ap.add_argument("--loss", choices=["module", "fused"], default="module")
    ap.add_argument("--checkpointing", choices=["on", "off", "both"], default="both")
    ap.add_argument("--lora-dropout", type=float, default=0.1)
    ap.add_argument("--lora-cast", choices=["on", "off"], default="on")
    ap.add_argument("--packing", choices=["on", "off"], default="off")
    ap.add_argument("--variant", action="append", default=[], help="key=value,... overriding the flags (repeatable)")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="a named list of variants (on top of the flags)")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak; default from the card name")
    ap.add_argument("--time-budget", type=float, default=None, help="seconds: start no variant after this")
    ap.add_argument("--jsonl", default=None, help="also append each result line to this file")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test: tiny model, seq 128, micro 2, batch 4")
    args = ap.parse_args()

    import torch

    if args.tiny:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        args.device, args.card = "cpu", "cpu"
        args.steps, args.warmup = min(args.steps, 3), min(args.warmup, 1)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device (use --tiny for a CPU smoke test)")
        args.device, args.card = "cuda", torch.cuda.get_device_name()
        if args.peak_tflops is None and any(k in args.card for k in ("H100", "H200", "H800", "GH200")):
            args.peak_tflops = 989.0
        elif args.peak_tflops is None and "A100" in args.card:
            args.peak_tflops = 312.0
    base = Variant(arch=args.arch, seq_len=args.seq_len, micro=args.micro, batch=args.batch, precision=args.precision,
                   attn=args.attn, compile=args.compile, loss=args.loss,
                   checkpointing="off" if args.checkpointing == "both" else args.checkpointing,
                   lora_dropout=args.lora_dropout, lora_cast=args.lora_cast, packing=args.packing)
    if args.preset or args.variant:
        variants = [dataclasses.replace(base, **d) for d in PRESETS.get(args.preset, [])]
        variants += [parse_variant(t, base) for t in args.variant]
    else:
        variants = [dataclasses.replace(base, checkpointing=c)
                    for c in (["on", "off"] if args.checkpointing == "both" else [args.checkpointing])]
    if args.tiny:  # same code paths, tiny sizes
        variants = [dataclasses.replace(v, arch=f"tiny-{ARCHS[v.arch][0]}", seq_len=128, micro=2, batch=4)
                    for v in variants]

    t_start = time.perf_counter()
    results = []
    for v in variants:
        if args.time_budget is not None and time.perf_counter() - t_start > args.time_budget:
            print(json.dumps({"skipped": v.label(), "why": "time budget"}), flush=True)
            continue
        try:
            r = run_variant(v, args)
        except Exception as e:  # noqa: BLE001 - one failing variant must not lose the others
            traceback.print_exc(file=sys.stderr)
            r = dataclasses.asdict(v)
            r.update(card=args.card, error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        cleanup()
        results.append(r)
        line = json.dumps(r)
        print(line, flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(line + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
