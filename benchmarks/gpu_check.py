"""One GPU check of RoleCraft's real paths, on a random-weight ~1B model built here (no download).

    python benchmarks/gpu_check.py                 # one H100/H200: about 4-6 minutes, bounded at 7.5
    python benchmarks/gpu_check.py --cpu-smoke     # tiny sizes, few steps, on CPU (what tests/ runs)

The model is a Qwen2-architecture ``Qwen2ForCausalLM`` with random weights (hidden 2048, 20 layers,
MLP 5632, 16 heads: 0.99 B parameters with the embedded tokenizer's 4,096-token vocabulary), built
from ``transformers.Qwen2Config`` and saved with RoleCraft's embedded byte-level BPE tokenizer and
ChatML template, so every path loads it as a user's local model directory
(``model.name_or_path=DIR``). Every path drives RoleCraft's own code, in this process:
``rolecraft.training.run.run`` on a config composed from ``conf/`` with overrides (as ``train.py``
does), the inference layer's engines, and ``rolecraft.export``.

Paths (one table row each):
  bf16-lora       trainer=gpu (bf16-mixed), LoRA r8 on all linear layers (dropout 0, so paths
                  compare exactly), the demo data
  fsdp-1dev       trainer=fsdp trainer.devices=1 (FSDP2 on one device: sharding, gathered checkpoints
                  and adapter); the adapter loads with plain peft; loss close to bf16-lora's
  fsdp-resume     the FSDP run again from its mid-run checkpoint (ckpt_path=): same last loss and
                  adapter as the uninterrupted run
  compile-layers  trainer.compile=layers; loss close to bf16-lora's (with --cpu-smoke only given
                  --cpu-compile: inductor's CPU compilation takes minutes)
  generation      the trained run through the inference layer: continuous batching (batch 16) vs one
                  prompt at a time through transformers' generate; greedy answers must be identical
                  (compared in fp32 with TF32 off: random weights leave near-ties that bf16 kernels
                  for different batch shapes may break differently)
  export-merge    rolecraft export --adapter and --merge; the adapter reloads with plain peft, the
                  merged model (AutoModelForCausalLM, no peft) gives base + adapter's logits
  qlora-4bit      model.quantization=4bit: SKIP where that option or bitsandbytes is absent
  fsdp-compile    trainer=fsdp with trainer.compile=layers (compiled layers inside FSDP2 units); last,
                  so the budget goes to the paths above first (CPU: only with --cpu-compile)

Columns: tokens/s (training: all real tokens over the second half of the steps, warm-up and
compilation excluded; generation: new tokens per second of the continuous-batching run), peak GPU
memory (torch.cuda.max_memory_allocated during the path), MFU (training only: model FLOPs of LoRA
training, forward 2N + backward through activations 2N + causal attention, against --peak-tflops,
989 dense bf16 for H100/H200), and PASS / FAIL (with the one-line reason) / SKIP.

Robustness: each path runs under its own alarm and inside try/except (a failure is its row, and
the next path runs); paths that would start after --total-timeout are SKIPped; a watchdog prints
the table so far and exits if the process is still running 60 s after the total timeout (a hung
collective). Exit status: 0 when no path failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SIZES = {
    # 0.99 B parameters: the README's GPU benchmark model, at the tokenizer's vocabulary
    "gpu": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 20, "num_attention_heads": 16,
            "num_key_value_heads": 16, "max_position_embeddings": 4096, "tie_word_embeddings": True},
    "cpu": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 2048, "tie_word_embeddings": True},
}
PATHS = ("bf16-lora", "fsdp-1dev", "fsdp-resume", "compile-layers", "generation", "export-merge", "qlora-4bit",
         "fsdp-compile")
LORA_TARGETS = "[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"


@dataclasses.dataclass
class Row:
    path: str
    status: str = "SKIP"
    tokens_per_s: float | None = None
    peak_gib: float | None = None
    mfu: float | None = None
    seconds: float | None = None
    note: str = ""


class PathTimeout(Exception):
    pass


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return f"{type(e).__name__}: {text}"[:220]


class Check:
    def __init__(self, args):
        self.args = args
        self.cpu = args.cpu_smoke
        self.work = Path(args.workdir or tempfile.mkdtemp(prefix="rolecraft-gpu-check-")).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.cache = Path(os.environ.get("ROLECRAFT_CACHE") or self.work / "cache")
        self.steps = args.steps or (4 if self.cpu else 24)
        self.rows: list[Row] = []
        self.runs: dict[str, dict] = {}
        self.base_dir: Path | None = None
        self.n_matmul = 0
        self.arch: dict = {}

    # ---- the model --------------------------------------------------------------------------
    def build_base(self) -> Path:
        import torch
        from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

        from rolecraft.modeling.tiny import ensure_embedded

        out = self.work / "base"
        tok = AutoTokenizer.from_pretrained(str(ensure_embedded("tiny", self.cache)))
        self.arch = dict(SIZES["cpu" if self.cpu else "gpu"])
        # weights drawn with std 2/sqrt(hidden), so the logits spread over ~1 and greedy answers are varied
        # token sequences (at transformers' 0.02 a small random model repeats one token: nothing to compare)
        config = Qwen2Config(vocab_size=len(tok), bos_token_id=None, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                             pad_token_id=tok.pad_token_id, initializer_range=2 / math.sqrt(self.arch["hidden_size"]),
                             **self.arch)
        device = "cpu" if self.cpu else "cuda"
        dtype = torch.float32 if self.cpu else torch.bfloat16
        torch.manual_seed(0)
        with torch.device(device):
            model = Qwen2ForCausalLM(config).to(dtype)
        self.n_params = sum(p.numel() for p in model.parameters())
        # matmul weights: every Linear, lm_head included (tied to the embedding, which is no matmul)
        self.n_matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        model.generation_config.eos_token_id = config.eos_token_id
        model.generation_config.pad_token_id = config.pad_token_id
        model.save_pretrained(str(out))
        tok.save_pretrained(str(out))
        del model
        self._free()
        self.base_dir = out
        return out

    # ---- helpers ----------------------------------------------------------------------------
    def overrides(self) -> list[str]:
        common = [f"model.name_or_path={self.base_dir}", "model.name=qwen2-random", f"model.lora_targets={LORA_TARGETS}",
                  f"trainer.max_steps={self.steps}", "trainer.val_check_interval=null", "trainer.limit_val_batches=0",
                  f"trainer.checkpoint_every_n_steps={max(1, self.steps // 2)}", "trainer.enable_progress_bar=false",
                  "eval.enabled=false", "logger=none", "lora.dropout=0", f"paths.cache_dir={self.cache}"]
        if self.cpu:
            return [*common, "trainer=cpu", "model.dtype=float32", "optim.batch_size=4", "optim.micro_batch_size=2"]
        return [*common, "trainer=gpu", "trainer.devices=1", "model.dtype=bfloat16", "model.attn_implementation=sdpa",
                "optim.batch_size=16", "optim.micro_batch_size=8"]

    def fsdp(self) -> list[str]:
        return ["trainer=fsdp_cpu" if self.cpu else "trainer=fsdp", "trainer.devices=1"]

    def train(self, name: str, extra: list[str]) -> tuple[dict, Path]:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        import rolecraft.config
        from rolecraft.paths import config_dir
        from rolecraft.training.run import run

        out = self.work / name
        rolecraft.config.register()
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir(), version_base="1.3"):
            cfg = compose("train", overrides=[*self.overrides(), *extra, f"paths.output_dir={out}"])
        metrics = run(cfg)
        if not metrics or not math.isfinite(metrics.get("train/loss") or float("nan")):
            raise RuntimeError(f"train/loss is {None if not metrics else metrics.get('train/loss')}")
        if not (out / "adapter" / "adapter_config.json").is_file():
            raise RuntimeError(f"{out}/adapter was not written")
        self.runs[name] = metrics
        return metrics, out

    def mfu(self, m: dict) -> float | None:
        tps = m.get("train/tokens_per_second")
        if self.cpu or not tps:
            return None
        rows = max(1, m["train/steps"] * int(self._cfg_batch()) * m.get("train/world_size", 1))
        seq = m["train/tokens"] / rows  # mean real row length
        a = self.arch
        attn = 6 * a["num_hidden_layers"] * seq * a["hidden_size"]  # causal: forward 2·L·s·d, backward twice that
        return tps * (4 * self.n_matmul + attn) / (self.args.peak_tflops * 1e12)

    def _cfg_batch(self) -> int:
        return 4 if self.cpu else 16

    def train_row(self, row: Row, m: dict) -> None:
        row.tokens_per_s = m.get("train/tokens_per_second")
        row.mfu = self.mfu(m)

    def _free(self) -> None:
        gc.collect()
        if not self.cpu:
            import torch

            torch.cuda.empty_cache()

    def compare_adapters(self, a: Path, b: Path) -> float:
        """max |a - b| over the adapters' tensors, relative to the largest lora_B weight of a."""
        from safetensors.torch import load_file

        x, y = load_file(str(a / "adapter_model.safetensors")), load_file(str(b / "adapter_model.safetensors"))
        if sorted(x) != sorted(y):
            raise RuntimeError("the adapters hold different tensors")
        scale = max(float(v.abs().max()) for k, v in x.items() if "lora_B" in k) or 1.0
        return max(float((x[k].float() - y[k].float()).abs().max()) for k in x) / scale

    # ---- the paths --------------------------------------------------------------------------
    def p_bf16_lora(self, row: Row) -> None:
        m, _ = self.train("bf16-lora", [])
        self.train_row(row, m)
        row.note = f"loss {m['train/loss']:.4f} after {m['train/steps']} steps" + (" (fp32 on CPU)" if self.cpu else "")

    def p_fsdp_1dev(self, row: Row) -> None:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        m, out = self.train("fsdp", self.fsdp())
        self.train_row(row, m)
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(self.base_dir)), str(out / "adapter"))
        lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
        if not lora_b or not all(float(p.abs().sum()) > 0 for p in lora_b):
            raise RuntimeError("the exported adapter's lora_B weights are not all trained")
        del model
        ref = self.runs.get("bf16-lora")
        note = f"loss {m['train/loss']:.4f}; adapter loads with plain peft"
        if ref:
            rel = abs(m["train/loss"] - ref["train/loss"]) / abs(ref["train/loss"])
            note += f"; vs bf16-lora loss {rel:.2%}"
            if rel > (1e-5 if self.cpu else 0.03):
                raise RuntimeError(f"loss {m['train/loss']:.4f} differs from bf16-lora's {ref['train/loss']:.4f} by {rel:.2%}")
        row.note = note

    def p_fsdp_resume(self, row: Row) -> None:
        whole = self.runs.get("fsdp")
        if whole is None:
            raise RuntimeError("needs the fsdp-1dev run")
        mid = max(1, self.steps // 2)
        ckpt = self.work / "fsdp" / "checkpoints" / f"step-{mid}.ckpt"
        m, out = self.train("fsdp-resume", [*self.fsdp(), f"ckpt_path='{ckpt}'"])  # quoted: a path may hold Hydra grammar

        rel = abs(m["train/loss"] - whole["train/loss"]) / abs(whole["train/loss"])
        diff = self.compare_adapters(self.work / "fsdp" / "adapter", out / "adapter")
        row.note = f"resumed at step {mid}: last loss {m['train/loss']:.4f} vs {whole['train/loss']:.4f}, adapter Δ {diff:.1e}"
        # CPU fp32 is exact; GPU kernels (SDPA backward, bf16 atomics) are not bitwise deterministic
        if m["train/steps"] != self.steps or rel > (1e-6 if self.cpu else 1e-2) or diff > (1e-5 if self.cpu else 5e-2):
            raise RuntimeError(row.note)

    def p_compile_layers(self, row: Row) -> None:
        if self.cpu and not self.args.cpu_compile:
            row.status, row.note = "SKIP", "inductor on CPU compiles for minutes; --cpu-compile runs it"
            return
        m, _ = self.train("compile", ["trainer.compile=layers"])
        self.train_row(row, m)
        ref = self.runs.get("bf16-lora")
        row.note = f"loss {m['train/loss']:.4f}"
        if ref:
            rel = abs(m["train/loss"] - ref["train/loss"]) / abs(ref["train/loss"])
            row.note += f"; vs bf16-lora {rel:.2%}"
            if ref.get("train/tokens_per_second") and m.get("train/tokens_per_second"):
                row.note += f"; speed-up {m['train/tokens_per_second'] / ref['train/tokens_per_second']:.2f}x"
            if rel > (1e-3 if self.cpu else 0.03):
                raise RuntimeError(f"loss {m['train/loss']:.4f} differs from eager's {ref['train/loss']:.4f} by {rel:.2%}")

    def p_fsdp_compile(self, row: Row) -> None:
        if self.cpu and not self.args.cpu_compile:
            row.status, row.note = "SKIP", "inductor on CPU compiles for minutes; --cpu-compile runs it"
            return
        m, _ = self.train("fsdp-compile", [*self.fsdp(), "trainer.compile=layers"])
        self.train_row(row, m)
        ref = self.runs.get("fsdp")
        row.note = f"loss {m['train/loss']:.4f}"
        if ref:
            rel = abs(m["train/loss"] - ref["train/loss"]) / abs(ref["train/loss"])
            row.note += f"; vs fsdp-1dev {rel:.2%}"
            if rel > (1e-3 if self.cpu else 0.03):
                raise RuntimeError(f"loss {m['train/loss']:.4f} differs from eager FSDP's {ref['train/loss']:.4f} by {rel:.2%}")

    def p_generation(self, row: Row) -> None:
        import torch
        from omegaconf import OmegaConf

        from rolecraft.config import GenerationConfig
        from rolecraft.data import resolve_data_root, schema
        from rolecraft.data.prompts import PromptBuilder
        from rolecraft.inference.sources import load_run, run_engine

        if "bf16-lora" not in self.runs:
            raise RuntimeError("needs the bf16-lora run")
        if not self.cpu:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        trained = load_run(str(self.work / "bf16-lora"), str(self.cache))
        trained.model.float()
        engine = run_engine(trained, "cpu" if self.cpu else "cuda")
        ds = schema.load(resolve_data_root("embedded:demo"))
        prompts = PromptBuilder(ds, emotions=True, num_exemplars=2)
        samples = [s for s in ds.samples if s.split == "test"][:16 if not self.cpu else 6]
        chats = [prompts.messages(s) for s in samples]
        new = 8 if self.cpu else 32
        fast = OmegaConf.structured(GenerationConfig(max_new_tokens=new))
        one = OmegaConf.structured(GenerationConfig(max_new_tokens=new, share_prefix=False, drop_finished=False,
                                                    continuous=False))
        batched = engine.answer(chats, fast, batch_size=16)
        single = [engine.answer([c], one, batch_size=1) for c in chats]
        single_texts = [a.texts[0] for a in single]
        same = sum(a == b for a, b in zip(batched.texts, single_texts))
        if sum(bool(t) for t in batched.texts) < len(chats) / 2:
            raise RuntimeError(f"{sum(not t for t in batched.texts)}/{len(chats)} answers are empty: the comparison "
                               "would prove nothing")
        tokens = sum(len(engine.tok(t, add_special_tokens=False)["input_ids"]) for t in batched.texts)
        secs = batched.stats["generation_seconds"]
        one_secs = sum(a.stats["generation_seconds"] for a in single)
        row.tokens_per_s = tokens / secs if secs > 0 else None
        row.note = (f"{same}/{len(chats)} greedy answers identical; continuous {secs:.2f}s vs one at a time "
                    f"{one_secs:.2f}s ({one_secs / secs if secs else float('nan'):.1f}x)")
        del trained, engine
        if same != len(chats):
            raise RuntimeError(row.note)

    def p_export_merge(self, row: Row) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        from rolecraft.export import export

        run = self.work / "bf16-lora"
        if "bf16-lora" not in self.runs:
            raise RuntimeError("needs the bf16-lora run")
        adapter, merged = self.work / "export-adapter", self.work / "export-merged"
        export(str(run), str(adapter), merge=False, cache_dir=str(self.cache), force=True)
        export(str(run), str(merged), merge=True, cache_dir=str(self.cache), force=True)
        device = "cpu" if self.cpu else "cuda"
        ids = torch.tensor([list(range(5, 69))], device=device)
        with torch.no_grad():
            m = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32).to(device).eval()
            merged_logits = m(input_ids=ids).logits.float()
            del m
            base = AutoModelForCausalLM.from_pretrained(str(self.base_dir), dtype=torch.float32)
            p = PeftModel.from_pretrained(base, str(adapter)).to(device).eval()
            peft_logits = p(input_ids=ids).logits.float()
            del p, base
        scale = float(peft_logits.abs().max())
        diff = float((merged_logits - peft_logits).abs().max()) / scale
        agree = float((merged_logits.argmax(-1) == peft_logits.argmax(-1)).float().mean())
        row.note = f"merged vs base+adapter: max |Δlogit| {diff:.1e} of the largest, argmax agrees {agree:.0%}"
        # the merged weights are stored in the run's dtype (bf16 on GPU): rounding, not a different model
        if diff > (1e-4 if self.cpu else 5e-2) or agree < (1.0 if self.cpu else 0.9):
            raise RuntimeError(row.note)

    def p_qlora_4bit(self, row: Row) -> None:
        import importlib.util

        from rolecraft.config import ModelConfig

        if "quantization" not in {f.name for f in dataclasses.fields(ModelConfig)}:
            row.status, row.note = "SKIP", "model.quantization does not exist in this version of RoleCraft"
            return
        if importlib.util.find_spec("bitsandbytes") is None:
            row.status, row.note = "SKIP", "bitsandbytes is not installed"
            return
        if self.cpu:
            row.status, row.note = "SKIP", "4-bit training is a CUDA path (--cpu-smoke)"
            return
        m, _ = self.train("qlora", ["model.quantization=4bit", "model.gradient_checkpointing=true"])
        self.train_row(row, m)
        row.note = f"loss {m['train/loss']:.4f}"

    # ---- driver -----------------------------------------------------------------------------
    def run_all(self) -> list[Row]:
        deadline = time.monotonic() + self.args.total_timeout
        t0 = time.perf_counter()
        try:
            self.build_base()
            build_note = f"built {self.n_params / 1e9:.2f} B params in {time.perf_counter() - t0:.1f}s"
        except BaseException as e:  # nothing can run without the model
            if isinstance(e, KeyboardInterrupt):
                raise
            self.rows = [Row(p, "FAIL", note=f"model not built: {one_line(e)}") for p in self.selected()]
            return self.rows
        print(f"gpu_check: {build_note} ({self.work})", file=sys.stderr)
        for name in self.selected():
            row = Row(name)
            self.rows.append(row)
            left = deadline - time.monotonic()
            if left < (5 if self.cpu else 20):
                row.note = "not run: the total time budget is spent"
                continue
            self.run_one(name, row, min(left, self.args.path_timeout))
        return self.rows

    def selected(self) -> list[str]:
        return [p for p in PATHS if not self.args.only or p in self.args.only]

    def run_one(self, name: str, row: Row, budget: float) -> None:
        fn = getattr(self, "p_" + name.replace("-", "_"))
        if not self.cpu:
            import torch

            torch.cuda.reset_peak_memory_stats()

        def alarm(signum, frame):
            raise PathTimeout(f"did not finish within {budget:.0f}s")

        old = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, max(1.0, budget))
        t = time.perf_counter()
        row.status = "PASS"
        try:
            fn(row)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - every failure is one row, the next path runs
            row.status, row.note = "FAIL", one_line(e)
            if self.args.verbose:
                traceback.print_exc()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            row.seconds = time.perf_counter() - t
            if not self.cpu:
                import torch

                row.peak_gib = torch.cuda.max_memory_allocated() / 2**30
            self._free()
        print(f"gpu_check: {name}: {row.status} in {row.seconds:.1f}s {row.note}", file=sys.stderr)


def table(rows: list[Row], device: str) -> str:
    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = [f"device: {device}", "", "| path | status | tokens/s | peak GPU memory (GiB) | MFU | seconds | note |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        mfu = "-" if r.mfu is None else f"{r.mfu:.1%}"
        lines.append(f"| {r.path} | {r.status} | {f(r.tokens_per_s, ',.0f')} | {f(r.peak_gib, '.1f')} | {mfu} | "
                     f"{f(r.seconds, '.1f')} | {r.note} |")
    return "\n".join(lines)


def describe_device(cpu: bool) -> str:
    import torch

    versions = f"torch {torch.__version__}"
    try:
        import transformers

        versions += f", transformers {transformers.__version__}"
    except ImportError:
        pass
    if cpu or not torch.cuda.is_available():
        return f"CPU ({os.cpu_count()} cores), {versions}"
    return f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, {versions}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model, few steps, on CPU")
    ap.add_argument("--cpu-compile", action="store_true", help="with --cpu-smoke: run compile-layers too (slow)")
    ap.add_argument("--workdir", help="where the model and runs go (default: a new temporary directory)")
    ap.add_argument("--steps", type=int, default=0, help="optimizer steps per training path (default 24; 4 on CPU)")
    ap.add_argument("--total-timeout", type=float, default=None, help="seconds for everything (default 450; 240 on CPU)")
    ap.add_argument("--path-timeout", type=float, default=None, help="seconds per path (default 150; 120 on CPU)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 TFLOP/s of the card (H100/H200: 989)")
    ap.add_argument("--only", nargs="*", choices=PATHS, help="run these paths only")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    args = ap.parse_args(argv)
    args.total_timeout = args.total_timeout or (240.0 if args.cpu_smoke else 450.0)
    args.path_timeout = args.path_timeout or (120.0 if args.cpu_smoke else 150.0)
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(REPO / "src"))

    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run with --cpu-smoke for the CPU version", file=sys.stderr)
        return 2
    check = Check(args)
    device = describe_device(args.cpu_smoke)

    def watchdog():  # a hung collective or kernel: print what is known and leave
        time.sleep(args.total_timeout + 60)
        print(table(check.rows, device) + "\n(watchdog: the check overran its total timeout; exiting)", flush=True)
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    rows = check.run_all()
    print(table(rows, device), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "rows": [dataclasses.asdict(r) for r in rows]},
                                              indent=1))
    return 1 if any(r.status == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
