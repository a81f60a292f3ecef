"""GPU training throughput and model FLOPs utilisation (MFU) of rolecraft's training step.

A ~1B-parameter Qwen2-architecture model with random weights (built from a config: nothing to
download), bf16, SDPA attention, LoRA r8 on all linear layers, rows of --seq-len tokens with no
padding (what sequence packing delivers), through the real RolePlayModule + Lightning Trainer.

    python benchmarks/gpu_train_throughput.py [--seq-len 2048] [--micro 4] [--batch 8] [--steps 12]

Model FLOPs per token count what LoRA training must compute: forward 2N, backward through the
activations 2N (no weight gradients for the frozen base; LoRA's own are negligible), plus causal
attention (2 * layers * seq * hidden forward, twice that backward). Recomputation from gradient
checkpointing is not counted (the MFU convention). Peak: dense bf16 of the card (--peak-tflops).
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--checkpointing", choices=["on", "off", "both"], default="both")
    ap.add_argument("--lora-dropout", type=float, default=0.1)
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak; default from the card name")
    args = ap.parse_args()

    import lightning as L
    import torch
    from omegaconf import OmegaConf
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rolecraft.config import LoraConfig, ModelConfig, OptimConfig
    from rolecraft.data.batching import StepCollator
    from rolecraft.data.tokenize import Encoded
    from rolecraft.modeling.lit_module import RolePlayModule
    from rolecraft.modeling.lora import apply_lora

    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or (989.0 if "H100" in name or "H200" in name else 312.0)
    cfg = Qwen2Config(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=18,
                      num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=4096,
                      tie_word_embeddings=True)
    results = []
    for ckpt in (["on", "off"] if args.checkpointing == "both" else [args.checkpointing]):
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = Qwen2ForCausalLM._from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
        n_params = sum(p.numel() for p in model.parameters())
        mcfg = OmegaConf.structured(ModelConfig(lora_targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                               "up_proj", "down_proj"], gradient_checkpointing=ckpt == "on"))
        peft_model = apply_lora(model, OmegaConf.structured(LoraConfig(dropout=args.lora_dropout)), mcfg, "random-qwen2-1b")
        peft_model.train()
        ocfg = OmegaConf.structured(OptimConfig(batch_size=args.batch, micro_batch_size=args.micro))
        module = RolePlayModule(peft_model, ocfg, args.steps)
        g = torch.Generator().manual_seed(0)
        rows = [Encoded(ids, ids) for ids in torch.randint(0, cfg.vocab_size, (args.batch * args.steps, args.seq_len),
                                                           generator=g).tolist()]
        collate = StepCollator(pad_id=0, micro_batch_size=args.micro)
        loader = torch.utils.data.DataLoader(rows, batch_size=args.batch, collate_fn=collate, shuffle=False)

        times: list[float] = []

        class Timer(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                torch.cuda.synchronize()
                self.t = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                torch.cuda.synchronize()
                times.append(time.perf_counter() - self.t)

        torch.cuda.reset_peak_memory_stats()
        trainer = L.Trainer(accelerator="gpu", devices=1, precision="bf16-mixed", max_steps=args.steps, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[Timer()], limit_val_batches=0)
        trainer.fit(module, train_dataloaders=loader)
        step_s = sorted(times[args.warmup:])[len(times[args.warmup:]) // 2]
        tokens = args.batch * args.seq_len
        tok_s = tokens / step_s
        L_, d, s = cfg.num_hidden_layers, cfg.hidden_size, args.seq_len
        n_matmul = n_params - cfg.vocab_size * d  # embeddings are a lookup; the tied lm_head is counted below
        flops_tok = 4 * (n_matmul + cfg.vocab_size * d) + 3 * 2 * L_ * s * d
        mfu = tok_s * flops_tok / (peak * 1e12)
        results.append({"card": name, "lora_dropout": args.lora_dropout, "params": n_params, "gradient_checkpointing": ckpt, "seq_len": s,
                        "micro_batch": args.micro, "batch": args.batch, "median_step_s": round(step_s, 4),
                        "tokens_per_s": round(tok_s), "model_tflops_per_s": round(tok_s * flops_tok / 1e12, 1),
                        "mfu": round(mfu, 4), "peak_tflops": peak,
                        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)})
        print(json.dumps(results[-1]), flush=True)
        del trainer, module, peft_model, model
        torch.cuda.empty_cache()
    print("| micro-batch × seq | LoRA dropout | checkpointing | tokens/s | model TFLOP/s | MFU | peak memory |\n"
          "|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['micro_batch']} × {r['seq_len']} | {r['lora_dropout']} | {r['gradient_checkpointing']} | "
              f"{r['tokens_per_s']:,} | {r['model_tflops_per_s']} | "
              f"{100 * r['mfu']:.1f}% | {r['peak_mem_gib']} GiB |")


if __name__ == "__main__":
    main()
